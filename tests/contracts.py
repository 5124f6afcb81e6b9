"""The ports' contracts: one set of assertions per port, run against the in-memory fake
(tests/domain/test_fake_contracts.py) and against the real adapter (over moto in
tests/handlers/test_adapter_contracts.py; Bedrock's over FakeBedrock in
tests/unit/test_bedrock_adapter.py). A fake that drifts from its adapter fails here, not in a
domain test that trusted it.

Each `...Contract` class is collected only through a `Test...` subclass that supplies the
`rig` fixture: the port under test and what a test needs around it."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import pytest
from PIL import Image

from img2img.domain import errors
from img2img.domain.caller import Caller
from img2img.domain.job_events import DETAIL_TYPE, SOURCE, JobFinished
from img2img.domain.job_states import State
from img2img.domain.ports import (
    JobEventsPort,
    JobQueuePort,
    JobStorePort,
    ModelInvokerPort,
    ObjectStorePort,
    StoredObject,
    Written,
)
from img2img.domain.records import FINAL_STATUSES, JobRecord, OutputInfo, ResultInfo, SourceInfo, Status
from tests.fakes import INPUT, OUTPUT, REGION, SD3
from tests.fixtures.eventbridge_docs import MAX_ENTRIES, MAX_ENTRY_BYTES, entry_size

FIXTURES = "tests/fixtures/bedrock"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --- ObjectStorePort ----------------------------------------------------------------------------


class StoreRig(Protocol):
    store: ObjectStorePort

    def add(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> StoredObject:
        """Put an object as a user would (not through the port); answers its ETag and version."""
        ...


class ObjectStoreContract:
    """INPUT is versioned, OUTPUT is not, "no-such-bucket" does not exist."""

    def test_a_write_reads_back_with_its_etag_and_content_type(self, rig: StoreRig) -> None:
        key = "jobs/j1/result.png"
        etag = rig.store.put(OUTPUT, key, b"png-bytes", "image/png")
        got = rig.store.get(OUTPUT, key, max_bytes=100)
        assert etag == got.etag == md5(b"png-bytes")
        assert (got.bucket, got.key, got.data, got.content_type, got.version_id, got.metadata) == (
            OUTPUT,
            key,
            b"png-bytes",
            "image/png",
            None,
            {},
        )
        found = rig.store.find(OUTPUT, key)
        assert found is not None and found.data == b"png-bytes"
        rig.store.put(OUTPUT, key, b"again", "image/png", {"img2img-answer": '{"seed":7}'})  # replaced
        again = rig.store.find(OUTPUT, key)
        assert again is not None and (again.data, again.metadata) == (
            b"again",
            {"img2img-answer": '{"seed":7}'},
        )

    def test_a_versioned_bucket_answers_each_version_with_its_metadata(self, rig: StoreRig) -> None:
        first = rig.add(INPUT, "inbox/a b.png", b"one", {"Prompt": "a cat", "seed": "4"})
        second = rig.add(INPUT, "inbox/a b.png", b"two!")
        assert first.version_id and second.version_id and first.version_id != second.version_id
        assert (first.etag, second.etag) == (md5(b"one"), md5(b"two!"))
        latest = rig.store.get(INPUT, "inbox/a b.png", max_bytes=10)
        assert (latest.data, latest.version_id, latest.metadata) == (b"two!", second.version_id, {})
        old = rig.store.get(INPUT, "inbox/a b.png", max_bytes=10, version_id=first.version_id)
        assert (old.data, old.etag, old.version_id) == (b"one", first.etag, first.version_id)
        assert old.metadata == {"prompt": "a cat", "seed": "4"}  # S3 lower-cases metadata names

    def test_a_version_that_is_not_there_is_source_not_found(self, rig: StoreRig) -> None:
        """S3's NoSuchVersion (404): the dropped version was deleted before the worker read it.
        No redelivery brings it back, so it is not retried."""
        rig.add(INPUT, "inbox/v.png", b"one")
        with pytest.raises(errors.SourceNotFound) as caught:
            rig.store.get(INPUT, "inbox/v.png", max_bytes=10, version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH")
        assert [d.field for d in caught.value.details] == ["init_image_s3_key"] and not caught.value.retryable
        assert "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH" in str(caught.value.internal)
        assert INPUT not in caught.value.message and "inbox/v.png" not in caught.value.message

    def test_a_missing_source_is_source_not_found_naming_the_key_field(self, rig: StoreRig) -> None:
        with pytest.raises(errors.SourceNotFound) as caught:
            rig.store.get(INPUT, "uploads/t/missing.png", max_bytes=10)
        error = caught.value
        # A caller reads the message: neither the bucket (it holds the account id) nor the key.
        assert (
            error.message
            == "init_image_s3_key names no object in the input bucket (never uploaded, or expired)"
        )
        assert error.internal == f"s3://{INPUT}/uploads/t/missing.png"
        assert [d.field for d in error.details] == ["init_image_s3_key"] and not error.retryable

    def test_a_source_over_the_cap_is_refused_naming_its_size(self, rig: StoreRig) -> None:
        rig.add(INPUT, "uploads/t/big.png", b"x" * 11)
        with pytest.raises(errors.ImageTooLarge) as caught:
            rig.store.get(INPUT, "uploads/t/big.png", max_bytes=10)
        assert caught.value.message == "the source is 11 bytes; the limit is 10"
        assert [d.field for d in caught.value.details] == ["init_image"]
        assert rig.store.get(INPUT, "uploads/t/big.png", max_bytes=11).data == b"x" * 11

    def test_a_missing_object_of_our_own_is_none_to_find(self, rig: StoreRig) -> None:
        assert rig.store.find(OUTPUT, "jobs/none/result.png") is None

    @pytest.mark.parametrize("op", ["get", "find", "put"])
    def test_a_bucket_fault_is_a_retryable_storage_error_that_names_no_bucket(
        self, rig: StoreRig, op: str
    ) -> None:
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: rig.store.get("no-such-bucket", "k.png", max_bytes=10),
            "find": lambda: rig.store.find("no-such-bucket", "k.png"),
            "put": lambda: rig.store.put("no-such-bucket", "k.png", b"x", "image/png"),
        }
        with pytest.raises(errors.StorageError) as caught:
            calls[op]()
        error = caught.value
        assert error.retryable and error.code == "storage_error" and "k.png" in error.message
        assert "no-such-bucket" not in error.message and "no-such-bucket" in str(error.internal)

    def test_a_presigned_download_names_its_object(self, rig: StoreRig) -> None:
        url = rig.store.presign_get(OUTPUT, "jobs/j 1/result.png", 60)
        assert url.startswith("https://") and OUTPUT in url and quote("jobs/j 1/result.png") in url

    def test_an_upload_form_is_pinned_to_its_key_type_size_and_time(self, rig: StoreRig) -> None:
        post = rig.store.presign_post(
            INPUT, "uploads/t/x.png", content_type="image/png", max_bytes=100, expires_in=60
        )
        assert post.url.startswith("https://") and INPUT in post.url
        assert post.fields["key"] == "uploads/t/x.png" and post.fields["Content-Type"] == "image/png"
        policy = json.loads(base64.b64decode(post.fields["policy"]))
        assert ["content-length-range", 1, 100] in policy["conditions"]
        assert {"Content-Type": "image/png"} in policy["conditions"]
        expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 61


# --- JobStorePort -------------------------------------------------------------------------------


class JobsRig(Protocol):
    jobs: JobStorePort
    broken: JobStorePort  # every call fails as a store that cannot be reached


def a_record(job_id: str, status: Status, **fields: Any) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        status=status,
        door="api",
        created_at="2026-11-25T10:00:00.000Z",
        updated_at="2026-11-25T10:00:01.000Z",
        model_id=SD3,
        request={"text_prompts": [{"text": "x", "weight": 1.0}], "seed": 7},
        source=SourceInfo(bucket=INPUT, key=f"api/{job_id}/source.png"),
        output=OutputInfo(bucket=OUTPUT, metadata_key=f"jobs/{job_id}/metadata.json"),
        caller=Caller("iam", "AIDAEXAMPLE"),
        **fields,
    )


NOW = 1795600800.0


class JobStoreContract:
    """Every transition is one conditional write, applied as domain/job_states.py allows."""

    def test_a_record_reads_back_as_it_was_written(self, rig: JobsRig) -> None:
        record = a_record(
            "j1",
            "SUCCEEDED",
            result=ResultInfo(bucket=OUTPUT, key="jobs/j1/result.png", seed=7, finish_reason="SUCCESS"),
        )
        assert rig.jobs.write(record, now=NOW) == Written(True, None, None)
        assert rig.jobs.get("j1") == record

    def test_an_unknown_job_is_job_not_found(self, rig: JobsRig) -> None:
        with pytest.raises(errors.JobNotFound) as caught:
            rig.jobs.get("nope")
        assert caught.value.message == "no job nope" and caught.value.status == 404

    def test_running_counts_attempts_and_holds_its_lease(self, rig: JobsRig) -> None:
        rig.jobs.write(a_record("j", "QUEUED"), now=NOW)
        first = rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        assert first.applied and first.before is not None and first.before.status == "QUEUED"
        held = rig.jobs.write(a_record("j", "RUNNING"), now=NOW + 30, lease=NOW + 90)  # a duplicate
        assert not held.applied and held.before == State("RUNNING", 1, NOW + 60)
        taken = rig.jobs.write(a_record("j", "RUNNING"), now=NOW + 61, lease=NOW + 120)  # lease passed
        assert taken.applied and taken.before is not None and taken.before.calls == 1
        assert not rig.jobs.write(a_record("j", "SUCCEEDED"), now=NOW, calls=1).applied  # not its attempt
        assert rig.jobs.write(
            a_record("j", "QUEUED"), now=NOW, calls=2, lease=NOW + 120
        ).applied  # gives back
        again = rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        assert again.before is not None and again.before.calls == 1
        assert rig.jobs.write(a_record("j", "SUCCEEDED"), now=NOW, calls=2, lease=NOW + 60).applied

    def test_an_attempt_that_gave_its_count_back_cannot_end_the_next_claim(self, rig: JobsRig) -> None:
        rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        assert rig.jobs.write(a_record("j", "QUEUED"), now=NOW, calls=1, lease=NOW + 60).applied
        rig.jobs.write(a_record("j", "RUNNING"), now=NOW + 1, lease=NOW + 61)  # a duplicate: count 1 again
        late = rig.jobs.write(a_record("j", "FAILED"), now=NOW + 2, calls=1, lease=NOW + 60, retry=True)
        assert not late.applied and late.before == State("RUNNING", 1, NOW + 61)
        assert rig.jobs.write(a_record("j", "SUCCEEDED"), now=NOW + 3, calls=1, lease=NOW + 61).applied

    def test_a_release_after_a_call_that_may_have_billed_keeps_its_count(self, rig: JobsRig) -> None:
        rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        assert rig.jobs.write(a_record("j", "QUEUED"), now=NOW, calls=1, lease=NOW + 60, billed=True).applied
        again = rig.jobs.write(a_record("j", "RUNNING"), now=NOW + 1, lease=NOW + 61)
        assert again.applied and again.before is not None and again.before.calls == 1

    def test_a_release_without_a_record_creates_none(self, rig: JobsRig) -> None:
        written = rig.jobs.write(a_record("gone", "QUEUED"), now=NOW, calls=1, lease=NOW + 60)
        assert written == Written(False, None, None)
        with pytest.raises(errors.JobNotFound):
            rig.jobs.get("gone")

    @pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
    def test_a_settled_job_never_moves_and_answers_what_it_holds(self, rig: JobsRig, final: Status) -> None:
        rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        rig.jobs.write(a_record("j", final), now=NOW, calls=1, lease=NOW + 60)
        for late in ("QUEUED", "RUNNING", "FAILED", "SUCCEEDED"):
            written = rig.jobs.write(a_record("j", late), now=NOW + 999, lease=NOW + 9999)
            assert not written.applied and written.record == rig.jobs.get("j")
            assert written.before is not None and written.before.status == final and written.before.settled

    def test_a_failure_a_retry_may_cure_is_taken_up_again_with_its_count(self, rig: JobsRig) -> None:
        rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        rig.jobs.write(a_record("j", "FAILED"), now=NOW, calls=1, lease=NOW + 60, retry=True)
        redrive = rig.jobs.write(a_record("j", "RUNNING"), now=NOW, lease=NOW + 60)
        assert redrive.applied and redrive.before is not None and redrive.before.calls == 1
        assert redrive.before.retry and not redrive.before.settled

    def test_another_body_under_the_same_key_is_refused(self, rig: JobsRig) -> None:
        assert rig.jobs.write(a_record("k", "QUEUED"), now=NOW, request_hash="h1").applied
        other = rig.jobs.write(a_record("k", "RUNNING"), now=NOW, request_hash="h2")
        assert not other.applied and other.before is not None and other.before.request_hash == "h1"
        assert rig.jobs.write(a_record("k", "RUNNING"), now=NOW, request_hash="h1").applied

    def test_faults_are_retryable_storage_errors(self, rig: JobsRig) -> None:
        with pytest.raises(errors.StorageError) as on_get:
            rig.broken.get("x")
        with pytest.raises(errors.StorageError) as on_write:
            rig.broken.write(a_record("x", "RUNNING"), now=NOW)
        assert on_get.value.retryable and on_write.value.retryable


# --- JobQueuePort -------------------------------------------------------------------------------


class QueueRig(Protocol):
    queue: JobQueuePort
    broken: JobQueuePort

    def received(self) -> list[dict[str, Any]]: ...


class JobQueueContract:
    def test_a_message_arrives_as_sent(self, rig: QueueRig) -> None:
        message = {"kind": "api_job", "job_id": "a" * 32, "request": {"seed": 7, "cfg_scale": 7.5}, "n": None}
        rig.queue.send(message)
        assert rig.received() == [message]

    def test_a_fault_is_a_retryable_storage_error(self, rig: QueueRig) -> None:
        with pytest.raises(errors.StorageError) as caught:
            rig.broken.send({"kind": "api_job"})
        assert caught.value.message == "could not queue the job" and caught.value.retryable
        with pytest.raises(errors.StorageError) as caught:
            rig.broken.send_batch([{"kind": "manifest_image"}])
        assert caught.value.retryable

    def test_a_batch_arrives_as_sent(self, rig: QueueRig) -> None:
        messages = [{"kind": "manifest_image", "index": n} for n in range(23)]  # three batches
        rig.queue.send_batch(messages)
        assert sorted(rig.received(), key=lambda m: m["index"]) == messages


# --- JobEventsPort ------------------------------------------------------------------------------


class EventsRig(Protocol):
    events: JobEventsPort
    undelivered: list[str]  # the codes counted as undelivered (the JobEventsUndelivered metric)

    def refuse(self, code: str, *, times: int = 1) -> None:
        """The next `times` PutEvents calls refuse the entry with `code`, as PutEvents answers."""

    def delivered(self) -> list[dict[str, Any]]:
        """What the bus took: each event's source, detail-type and detail."""
        ...

    def requests(self) -> list[list[dict[str, Any]]]:
        """Each PutEvents call's Entries, as sent."""
        ...


def a_finished_event(**fields: Any) -> JobFinished:
    values: dict[str, Any] = {
        "job_id": "a" * 32,
        "status": "SUCCEEDED",
        "door": "api",
        "environment": "unit",
        "created_at": "2026-12-07T10:00:00.000Z",
        "completed_at": "2026-12-07T10:00:07.000Z",
        "model_id": SD3,
        "result_s3_uri": f"s3://{OUTPUT}/jobs/{'a' * 32}/result.png",
        "metadata_s3_uri": f"s3://{OUTPUT}/jobs/{'a' * 32}/metadata.json",
    }
    return JobFinished(**{**values, **fields})


class JobEventsContract:
    def test_an_event_is_put_once_with_its_source_detail_type_and_detail(self, rig: EventsRig) -> None:
        event = a_finished_event()
        rig.events.job_finished(event)
        assert rig.delivered() == [
            {"source": SOURCE, "detail-type": DETAIL_TYPE, "detail": event.to_json_dict()}
        ]
        assert rig.undelivered == []

    def test_each_put_is_one_entry_within_the_documented_size(self, rig: EventsRig) -> None:
        long_key = "results/" + "k" * 1000  # S3 keys are at most 1024 bytes
        rig.events.job_finished(
            a_finished_event(
                status="FAILED",
                result_s3_uri=f"s3://{OUTPUT}/{long_key}.png",
                metadata_s3_uri=f"s3://{OUTPUT}/{long_key}.json",
                error_code="model_unavailable",
                fallback_from=[{"model_id": SD3, "code": "model_unavailable", "reason": "r" * 2000}] * 3,
            )
        )
        (entries,) = rig.requests()
        assert len(entries) == 1 <= MAX_ENTRIES
        assert entry_size(entries[0]) < MAX_ENTRY_BYTES

    def test_a_throttled_put_is_retried_and_the_event_delivered_once(self, rig: EventsRig) -> None:
        rig.refuse("ThrottlingException", times=1)
        rig.refuse("InternalFailure", times=1)
        rig.events.job_finished(a_finished_event())
        assert (len(rig.requests()), len(rig.delivered()), rig.undelivered) == (3, 1, [])

    def test_a_refusal_past_the_retries_is_counted_never_raised(self, rig: EventsRig) -> None:
        rig.refuse("ThrottlingException", times=3)
        rig.events.job_finished(a_finished_event())
        assert len(rig.requests()) == 3 and rig.delivered() == []
        assert rig.undelivered == ["ThrottlingException"]

    @pytest.mark.parametrize(
        "code", ["AccessDeniedException", "NotAuthorizedForSourceException", "MalformedDetail"]
    )
    def test_a_refusal_no_retry_can_fix_is_counted_at_once(self, rig: EventsRig, code: str) -> None:
        rig.refuse(code)
        rig.events.job_finished(a_finished_event())
        assert len(rig.requests()) == 1 and rig.delivered() == [] and rig.undelivered == [code]


# --- ModelInvokerPort ---------------------------------------------------------------------------


class ModelRig(Protocol):
    invoker: ModelInvokerPort

    def gone(self, model_id: str) -> None:
        """From now on `model_id` answers Bedrock's end of life."""
        ...

    def fail_next(self, code: str) -> None:
        """The next call answers Bedrock's error `code`."""
        ...

    def finish(self, reason: str) -> None:
        """Calls finish with `reason` (SUCCESS, CONTENT_FILTERED, ERROR)."""
        ...

    def calls(self) -> list[tuple[str, dict[str, Any]]]: ...


def documented(responses: str = "success") -> Any:
    with open(f"{FIXTURES}/sd3-5-large.json") as fixture:
        return json.load(fixture)["responses"][responses]


class ModelInvokerContract:
    def test_an_answer_is_the_documented_payload_once(self, rig: ModelRig) -> None:
        reply = rig.invoker.invoke(SD3, {"prompt": "x", "seed": 7})
        assert set(reply.payload) == set(documented("success")) and reply.payload["seeds"] == [7]
        assert reply.payload["finish_reasons"] == [None]
        image = Image.open(io.BytesIO(base64.b64decode(reply.payload["images"][0])))
        assert image.format == "PNG"
        assert (reply.attempts, reply.emulated) == (1, False) and rig.invoker.region == REGION
        assert rig.calls() == [(SD3, {"prompt": "x", "seed": 7})]

    @pytest.mark.parametrize("reason", ["CONTENT_FILTERED", "ERROR"])
    def test_a_filtered_or_failed_answer_is_the_reason_alone(self, rig: ModelRig, reason: str) -> None:
        rig.finish(reason)
        payload = rig.invoker.invoke(SD3, {"prompt": "x"}).payload
        assert set(payload) == {"finish_reasons"}
        assert payload["finish_reasons"][0] in documented("finish_reasons")
        if reason == "CONTENT_FILTERED":
            assert payload == documented("filtered")[0]

    def test_a_model_at_end_of_life_is_unavailable_at_every_call(self, rig: ModelRig) -> None:
        rig.gone(SD3)
        for _ in range(2):
            with pytest.raises(errors.ModelUnavailable) as caught:
                rig.invoker.invoke(SD3, {"prompt": "x"})
            assert "end of its life" in caught.value.message and "cdk.json" in caught.value.message
            assert not caught.value.retryable
        assert [model for model, _ in rig.calls()] == [SD3, SD3]

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("ThrottlingException", errors.ModelThrottled),
            ("ModelTimeoutException", errors.ModelTimeout),
            ("ServiceUnavailableException", errors.ModelBusy),
            ("AccessDeniedException", errors.ModelUnavailable),
            ("ValidationException", errors.InvalidRequest),
            ("ModelErrorException", errors.ModelError),
        ],
    )
    def test_an_error_is_the_domain_error_for_that_call_only(
        self, rig: ModelRig, code: str, expected: type[errors.ServiceError]
    ) -> None:
        rig.fail_next(code)
        with pytest.raises(expected) as caught:
            rig.invoker.invoke(SD3, {"prompt": "x"})
        assert SD3 in caught.value.message
        assert rig.invoker.invoke(SD3, {"prompt": "x"}).payload["finish_reasons"] == [None]
        assert len(rig.calls()) == 2
