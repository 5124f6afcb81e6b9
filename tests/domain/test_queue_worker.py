"""What the worker does with one queue message (domain/queue_worker.py) over the in-memory
ports: S3 notifications of inbox/ (images and manifests) and queued API jobs. What the handler
adds (SQS records, receive counts, partial batch failures) is tested in
tests/handlers/test_worker_handler.py."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from img2img.domain import errors
from img2img.domain.caller import Caller
from img2img.domain.records import ManifestJobs, Metadata, Summary
from img2img.domain.request import parse_request
from img2img.domain.s3_door import output_keys
from tests.fakes import INPUT, OUTPUT, ULTRA, House, bedrock_error, png_bytes
from tests.handlers.sqs_events import DROPPER_ID, DROPPER_UPLOADS, s3_notification

pytestmark = pytest.mark.unit

DROPPER = Caller("iam", DROPPER_ID)
IMAGE = png_bytes()


def drop(house: House, key: str, data: bytes | None = None, /, **metadata: str) -> dict[str, Any]:
    """Put an object under inbox/ as a user would, and answer S3's notification of it."""
    put = house.store.add(INPUT, key, IMAGE if data is None else data, metadata=metadata)
    return s3_notification(INPUT, key, version_id=put.version_id, etag=put.etag)


def handle(house: House, message: dict[str, Any], *, final: bool = False) -> list[Summary]:
    return house.deliver(message, final_attempt=final)


def meta(house: House, key: str) -> Metadata:
    return Metadata.model_validate(house.meta(key))


def manifest(**body: Any) -> bytes:
    return json.dumps({"text_prompts": [{"text": "watercolour"}], **body}).encode()


# --- images dropped with their parameters in their metadata ------------------------------------


def test_an_image_with_metadata_gives_a_result_and_its_metadata(house: House) -> None:
    event = drop(
        house, "inbox/trips/my cat+1.png", prompt="a cat astronaut", **{"style-preset": "anime", "seed": "42"}
    )
    [summary] = handle(house, event)
    found = meta(house, "results/trips/my cat+1.png.json")
    assert summary.status == found.status == "SUCCEEDED" and summary.job_id == found.job_id
    assert found.door == "s3" and found.source.key == "inbox/trips/my cat+1.png"
    assert found.result is not None and found.result.key == "results/trips/my cat+1.png.png"
    assert found.result.seed == 42 and house.store.read(OUTPUT, found.result.key).startswith(b"\x89PNG")
    assert house.model.calls[0].body["prompt"] == "a cat astronaut, anime style"
    assert house.jobs.get(found.job_id).caller == DROPPER  # the principal S3 named


def test_a_dropped_images_metadata_names_the_version_it_ran_on(house: House) -> None:
    event = drop(house, "inbox/versioned.png", prompt="x")
    handle(house, event)
    source = meta(house, "results/versioned.png.json").source
    stored = house.store.object(INPUT, "inbox/versioned.png")
    assert (source.etag, source.version_id) == (stored.etag, stored.version_id)


def test_the_same_event_twice_costs_one_model_call(house: House) -> None:
    event = drop(house, "inbox/dup.png", prompt="twice")
    [first] = handle(house, event)
    [again] = handle(house, event)
    assert first == again and len(house.model.calls) == 1 and len(house.finished) == 1


def test_an_image_without_a_prompt_gets_failed_metadata_and_no_call(house: House) -> None:
    [summary] = handle(house, drop(house, "inbox/bare.png"))
    found = meta(house, "results/bare.png.json")
    assert summary.status == found.status == "FAILED"
    assert found.error is not None and found.error.code == "missing_parameters"
    assert '--metadata \'{"prompt"' in found.error.message  # the JSON form README shows
    assert found.model is None and found.preparation is None  # refused before anything ran
    assert house.jobs.get(found.job_id).status == "FAILED" and house.model.calls == []


def test_metadata_that_is_not_a_number_names_the_metadata_key(house: House) -> None:
    handle(house, drop(house, "inbox/bad.png", prompt="x", **{"cfg-scale": "lots"}))
    found = meta(house, "results/bad.png.json")
    assert found.error is not None and found.error.code == "invalid_request"
    assert [d.field for d in found.error.details] == ["x-amz-meta-cfg-scale"]


def test_out_of_range_metadata_names_the_metadata_keys(house: House) -> None:
    handle(
        house,
        drop(house, "inbox/range.png", prompt="x", **{"cfg-scale": "99", "style-preset": "watercolour"}),
    )
    found = meta(house, "results/range.png.json")
    assert found.error is not None
    assert {d.field for d in found.error.details} == {"x-amz-meta-cfg-scale", "x-amz-meta-style-preset"}


def test_not_an_image_fails_without_a_model_call(house: House) -> None:
    handle(house, drop(house, "inbox/notes.png", b"just text", prompt="x"))
    found = meta(house, "results/notes.png.json")
    assert found.status == "FAILED" and found.error is not None and found.error.code == "unsupported_image"
    assert house.model.calls == []


def test_objects_outside_inbox_start_nothing(house: House) -> None:
    assert handle(house, s3_notification(INPUT, "api/x.png")) == []
    assert handle(house, s3_notification("another-bucket", "inbox/x.png")) == []
    assert handle(house, s3_notification(INPUT, "inbox/folder/")) == []
    assert house.store.keys(OUTPUT) == [] and house.model.calls == []
    assert len(house.skipped) == 3 and all(reason.startswith("not an input") for reason in house.skipped)


def test_a_retryable_failure_comes_back_then_is_recorded_on_the_last_delivery(house: House) -> None:
    event = drop(house, "inbox/busy.png", prompt="x")
    house.model.errors = [bedrock_error("ThrottlingException") for _ in range(2)]
    with pytest.raises(errors.ModelThrottled):
        handle(house, event)
    assert house.store.keys(OUTPUT) == []  # nothing written: the message comes back
    with pytest.raises(errors.ModelThrottled):  # recorded, then on to the dead-letter queue
        handle(house, event, final=True)
    found = meta(house, "results/busy.png.json")
    assert found.status == "FAILED" and found.error is not None and found.error.code == "model_throttled"
    [summary] = handle(house, event)  # a redrive can still succeed: the record left no trace
    assert summary.status == "SUCCEEDED" and meta(house, "results/busy.png.json").status == "SUCCEEDED"


def test_a_retryable_read_of_the_dropped_object_comes_back_then_is_recorded(house: House) -> None:
    event = drop(house, "inbox/unreadable.png", prompt="x")
    house.store.fail("get", where="inbox/unreadable.png", times=2)
    with pytest.raises(errors.StorageError):
        handle(house, event)
    assert house.store.keys(OUTPUT) == []
    with pytest.raises(errors.StorageError):
        handle(house, event, final=True)
    found = meta(house, "results/unreadable.png.json")
    assert found.status == "FAILED" and found.error is not None and found.error.code == "storage_error"
    assert house.model.calls == []


# --- manifests -----------------------------------------------------------------------------------


def drain(house: House) -> list[Summary]:
    """Deliver every queued message once, as the queue would (the fan-out's messages)."""
    summaries: list[Summary] = []
    while house.queue.messages:
        summaries += handle(house, house.queue.messages.pop(0))
    return summaries


def job_meta(house: House, manifest_key: str, image: str) -> Metadata:
    return meta(house, output_keys(OUTPUT, image, manifest_key).metadata_key)


def test_a_manifest_fans_out_one_job_per_image_and_lists_them(house: House) -> None:
    house.store.add(INPUT, f"{DROPPER_UPLOADS}a.png", IMAGE)
    images = [f"{DROPPER_UPLOADS}a.png", f"{DROPPER_UPLOADS}missing.png", f"{DROPPER_UPLOADS}a.png"]
    assert handle(house, drop(house, "inbox/batch.json", manifest(init_image_s3_keys=images))) == []
    assert [m["kind"] for m in house.queue.messages] == ["manifest_image"] * 2  # a.png named twice: one job
    assert house.model.calls == []  # nothing ran in the manifest's receive
    listed = ManifestJobs.model_validate(house.meta("results/batch.json.json"))
    assert [j.image for j in listed.jobs] == images[:2] and listed.manifest.key == "inbox/batch.json"

    assert [s.status for s in drain(house)] == ["SUCCEEDED", "FAILED"]
    done, missing = (meta(house, j.metadata_key) for j in listed.jobs)
    assert [done.job_id, missing.job_id] == [j.job_id for j in listed.jobs]
    assert done.result is not None and done.result.key == listed.jobs[0].result_key
    assert done.result.key.startswith("manifest-results/") and done.result.key.endswith("a.png.png")
    assert missing.error is not None and missing.error.code == "source_not_found"
    assert len(house.model.calls) == 1


def test_a_redelivered_manifest_or_image_message_costs_nothing(house: House) -> None:
    house.store.add(INPUT, f"{DROPPER_UPLOADS}m.png", IMAGE)
    event = drop(house, "inbox/m.json", manifest(init_image_s3_key=f"{DROPPER_UPLOADS}m.png"))
    handle(house, event)
    [message] = house.queue.messages
    handle(house, event)  # S3 delivered the event twice: listed already, nothing sent
    assert house.queue.messages == [message]
    [first] = drain(house)
    [again] = handle(house, message)  # the image's message delivered twice
    assert first.job_id == again.job_id and len(house.model.calls) == 1


def test_a_send_that_fails_part_way_is_sent_again_and_costs_nothing_twice(house: House) -> None:
    for name in "ab":
        house.store.add(INPUT, f"{DROPPER_UPLOADS}{name}.png", IMAGE)
    keys = [f"{DROPPER_UPLOADS}{n}.png" for n in "ab"]
    event = drop(house, "inbox/ab.json", manifest(init_image_s3_keys=keys))
    house.queue.send = _failing_after(house.queue.send, 1)  # type: ignore[method-assign]
    with pytest.raises(errors.StorageError):
        handle(house, event)
    assert house.store.find(OUTPUT, "results/ab.json.json") is None  # listed only once all are sent
    handle(house, event)
    assert len(drain(house)) == 3 and len(house.model.calls) == 2  # a's message went twice


def _failing_after(send: Callable[[dict[str, Any]], None], n: int) -> Callable[[dict[str, Any]], None]:
    sent = [0]

    def once(message: dict[str, Any]) -> None:
        sent[0] += 1
        if sent[0] == n + 1:
            raise errors.StorageError("could not queue the jobs", internal="injected")
        send(message)

    return once


def test_a_manifest_dropped_again_runs_again(house: House) -> None:
    house.store.add(INPUT, f"{DROPPER_UPLOADS}m.png", IMAGE)
    body = manifest(init_image_s3_key=f"{DROPPER_UPLOADS}m.png")
    handle(house, drop(house, "inbox/m.json", body))
    [first] = drain(house)
    handle(house, drop(house, "inbox/m.json", body))  # a new version: the user asked again
    [second] = drain(house)
    assert first.job_id != second.job_id and len(house.model.calls) == 2


def test_a_refused_manifest_fixed_and_dropped_again_runs(house: House) -> None:
    house.store.add(INPUT, f"{DROPPER_UPLOADS}m.png", IMAGE)
    [refused] = handle(house, drop(house, "inbox/m.json", manifest(init_image_s3_key="elsewhere/m.png")))
    assert refused.status == "FAILED"  # its metadata at results/m.json.json
    handle(house, drop(house, "inbox/m.json", manifest(init_image_s3_key=f"{DROPPER_UPLOADS}m.png")))
    assert [s.status for s in drain(house)] == ["SUCCEEDED"]
    assert house.meta("results/m.json.json")["status"] == "QUEUED"


def test_a_manifest_over_its_count_is_refused_before_anything_is_sent(house: House) -> None:
    house.settings = replace(house.settings, max_manifest_images=2)
    body = manifest(init_image_s3_keys=[f"sources/{n}.png" for n in "abc"])
    [summary] = handle(house, drop(house, "inbox/many.json", body))
    found = meta(house, "results/many.json.json")
    assert summary.status == found.status == "FAILED" and found.error is not None
    assert [d.field for d in found.error.details] == ["init_image_s3_keys"]
    assert "at most 2 images" in found.error.message
    assert house.queue.messages == [] and house.model.calls == []


def test_an_image_message_for_no_manifest_is_refused(house: House) -> None:
    message = {"kind": "manifest_image", "bucket": INPUT, "key": "inbox/a.png", "etag": "e", "index": 0}
    with pytest.raises(errors.InvalidRequest):
        handle(house, {**message, "request": {"text_prompts": [{"text": "x"}], "init_image_s3_key": "x"}})
    assert house.store.keys(OUTPUT) == [] and house.model.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "manifest"),
        (b"[1, 2]", "manifest"),
        (manifest(), "init_image_s3_key"),
        (manifest(init_image_s3_keys=[]), "init_image_s3_keys"),
        (manifest(init_image_s3_key="elsewhere/a.png"), "init_image_s3_key"),
        (manifest(init_image_s3_key="sources/a.png", cfg_scale=99), "cfg_scale"),
    ],
    ids=["not_json", "not_an_object", "no_image", "empty_list", "outside_sources", "bad_field"],
)
def test_a_bad_manifest_gets_failed_metadata_naming_the_field(house: House, body: bytes, field: str) -> None:
    [summary] = handle(house, drop(house, "inbox/bad.json", body))
    found = meta(house, "results/bad.json.json")
    assert summary.status == found.status == "FAILED" and found.error is not None
    assert field in [d.field for d in found.error.details] and house.model.calls == []


def test_a_manifest_over_its_cap_is_refused_without_being_read(house: House) -> None:
    house.settings = replace(house.settings, max_manifest_bytes=64)
    body = manifest(init_image_s3_key="sources/a.png", extras={"pad": "x" * 100})
    handle(house, drop(house, "inbox/big.json", body))
    found = meta(house, "results/big.json.json")
    assert found.error is not None and found.error.code == "payload_too_large"
    assert [d.field for d in found.error.details] == ["manifest"]


# --- queued API jobs -----------------------------------------------------------------------------

ALICE = Caller("iam", "AIDACKCEVSQ6C2EXAMPLE")


def queued(house: House) -> dict[str, Any]:
    inline = base64.b64encode(IMAGE).decode()
    house.api.submit(parse_request({"text_prompts": [{"text": "x"}], "init_image": inline}), ALICE, None)
    return house.queue.messages.pop()


def test_a_queued_api_job_runs_once_and_shows_where_its_results_are(house: House) -> None:
    message = queued(house)
    [summary] = handle(house, message)
    assert summary.status == "SUCCEEDED"
    view = house.api.job(summary.job_id, ALICE)
    assert view.status == "SUCCEEDED" and view.image is not None
    assert view.image.s3_uri == f"s3://{OUTPUT}/jobs/{summary.job_id}/result.png"
    handle(house, message)  # redelivered
    assert len(house.model.calls) == 1


def test_a_queued_job_writes_where_its_id_says_whatever_the_message_claims(house: House) -> None:
    forged = queued(house)
    forged["output"] = {
        "bucket": OUTPUT,
        "stem": "results/someone-else",
        "metadata_key": "results/someone-else.json",
    }
    handle(house, forged)
    assert meta(house, f"jobs/{forged['job_id']}/metadata.json").status == "SUCCEEDED"
    assert not any(key.startswith("results/") for key in house.store.keys(OUTPUT))


def _forge(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda message: {k: v for k, v in {**message, **fields}.items() if v is not None}


def _two_models(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "request": {**message["request"], "model_id": ULTRA}}  # the message says SD3


@pytest.mark.parametrize(
    ("forge", "error"),
    [
        (_forge(job_id="../results/x"), errors.InvalidRequest),
        (_forge(caller=None), errors.InvalidRequest),
        (_forge(created_at=None), errors.InvalidRequest),  # not a queued job at all
        (_two_models, errors.InvalidRequest),
    ],
    ids=["job_id_not_an_id", "no_caller", "not_a_job", "two_models"],
)
def test_a_message_no_api_door_wrote_costs_nothing_and_records_nothing(
    house: House, forge: Callable[[dict[str, Any]], dict[str, Any]], error: type[errors.ServiceError]
) -> None:
    forged = forge(queued(house))
    with pytest.raises(error) as caught:
        handle(house, forged, final=True)
    assert not caught.value.retryable  # the handler gives it back; after its receives, the dead-letter queue
    assert house.model.calls == [] and house.store.keys(OUTPUT) == []


@pytest.mark.parametrize(
    ("model_id", "code"),
    [
        ("stability.stable-image-core-v1:1", "invalid_request"),
        ("stability.stable-diffusion-xl-v1", "model_unavailable"),
    ],
    ids=["model_disabled_since", "model_retired_since"],
)
def test_a_queued_job_whose_model_went_away_ends_failed_saying_why(
    house: House, model_id: str, code: str
) -> None:
    """Queued on a model this environment no longer runs (disabled in cdk.json or retired since):
    the job ends FAILED at once, where its caller polls, instead of going around the queue to
    the dead letters and staying QUEUED."""
    message = {**queued(house), "model_id": model_id}
    [summary] = handle(house, message)
    assert summary.status == "FAILED" and summary.error is not None and summary.error.code == code
    view = house.api.job(message["job_id"], ALICE)
    assert view.status == "FAILED" and view.error is not None and view.error.code == code
    found = meta(house, f"jobs/{message['job_id']}/metadata.json")
    assert found.door == "api" and found.created_at == message["created_at"] and house.model.calls == []


def test_a_redriven_message_finishes_from_the_stored_answer(house: House) -> None:
    """A dead-letter redrive and a late duplicate S3 event arrive as new messages (receive count
    1): the job record says an attempt ran, so the worker looks for the result it stored."""
    event = drop(house, "inbox/redrive.png", prompt="x")
    house.store.fail("put", bucket=OUTPUT, where="redrive.png.json", times=1)
    with pytest.raises(errors.StorageError):  # the last receive: recorded FAILED, dead-lettered
        handle(house, event, final=True)
    assert meta(house, "results/redrive.png.json").status == "FAILED" and len(house.model.calls) == 1
    [redriven] = handle(house, event)
    assert redriven.status == "SUCCEEDED" and len(house.model.calls) == 1


def test_a_dropped_version_deleted_before_the_worker_reads_it_fails_once(house: House) -> None:
    """S3's NoSuchVersion: no redelivery brings the version back, so the job is recorded as
    failed on its first delivery instead of going around the queue to the dead letters."""
    house.store.add(INPUT, "inbox/gone.png", IMAGE, metadata={"prompt": "x"})
    [summary] = handle(house, s3_notification(INPUT, "inbox/gone.png", version_id="deleted-version"))
    found = meta(house, "results/gone.png.json")
    assert summary.status == found.status == "FAILED"
    assert found.error is not None and found.error.code == "source_not_found"
    assert [d.field for d in found.error.details] == ["init_image_s3_key"] and house.model.calls == []


def test_a_key_whose_result_keys_would_pass_s3s_limit_fails_under_a_key_that_fits(house: House) -> None:
    """S3 takes keys of up to 1,024 bytes: a drop near it would have result keys past it. Refused
    before any call, its FAILED metadata under results/key-too-long/<sha256 of the key>.json."""
    key = "inbox/" + "é" * 505 + ".png"  # 1,020 bytes: S3 takes it
    [summary] = handle(house, drop(house, key, prompt="x"))
    digest = hashlib.sha256(key.encode()).hexdigest()
    found = meta(house, f"results/key-too-long/{digest}.json")
    assert summary.status == found.status == "FAILED" and house.model.calls == []
    assert found.error is not None and found.error.code == "invalid_request"
    assert [d.field for d in found.error.details] == ["init_image_s3_key"]
    assert all(len(k.encode()) <= 1024 for k in house.store.keys(OUTPUT))


# --- a refusal never overwrites what the same object version already has (REVIEW finding 5) --


@pytest.mark.parametrize("final", [False, True])
def test_a_duplicate_event_after_the_source_is_gone_leaves_its_outcome(house: House, final: bool) -> None:
    """Inputs expire long before a message can (7 days against 18): a duplicate event that
    finds the source gone, or unreadable, leaves the job's SUCCEEDED metadata as it is, sends
    no event and costs no call."""
    event = drop(house, "inbox/kept.png", prompt="x")
    [first] = handle(house, event)
    written, events = list(house.store.writes), list(house.events.entries)
    house.store.fail("get", where="inbox/kept.png", error=lambda: errors.SourceNotFound("expired"), times=1)
    assert handle(house, event, final=final) == []
    house.store.fail("get", where="inbox/kept.png", times=1)  # a storage fault, on any receive
    assert handle(house, event, final=final) == []
    assert meta(house, "results/kept.png.json").status == first.status == "SUCCEEDED"
    assert house.store.writes == written and house.events.entries == events and len(house.model.calls) == 1


def test_a_redelivered_manifest_after_it_is_gone_leaves_its_listing_alone(house: House) -> None:
    event = drop(house, "inbox/batch.json", manifest(init_image_s3_key="inbox/a.png"))
    handle(house, event)
    listing = house.store.read(OUTPUT, "results/batch.json.json")
    house.store.fail("get", where="inbox/batch.json", error=lambda: errors.SourceNotFound("expired"))
    assert handle(house, event, final=True) == []
    assert house.store.read(OUTPUT, "results/batch.json.json") == listing and house.model.calls == []


def test_a_new_version_refused_still_says_why_over_the_last_versions_result(house: House) -> None:
    handle(house, drop(house, "inbox/again.png", prompt="x"))
    [refused] = handle(house, drop(house, "inbox/again.png"))  # no prompt this time
    found = meta(house, "results/again.png.json")
    assert refused.status == found.status == "FAILED" and found.error is not None
    assert found.error.code == "missing_parameters" and len(house.model.calls) == 1
