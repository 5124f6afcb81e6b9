"""The API door's use cases (domain/api_door.py) over the in-memory ports: run now, queue a
job, look it up, hand out an upload. What the handler adds (routes, HTTP statuses, headers,
Powertools' body validation) is tested in tests/handlers/test_api_handler.py."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from img2img.domain import errors
from img2img.domain.answers import SyncAnswer
from img2img.domain.caller import Caller
from img2img.domain.records import Metadata, QueuedJob
from img2img.domain.request import ImageToImageRequest, parse_request
from tests.corpus import IMAGE_CASES, Case
from tests.fakes import INPUT, OUTPUT, SD3, House, bedrock_error, png_bytes

pytestmark = pytest.mark.unit

ALICE = Caller("iam", "AIDACKCEVSQ6C2EXAMPLE")
SOURCE = png_bytes()
INLINE = base64.b64encode(SOURCE).decode()


def request(**overrides: Any) -> ImageToImageRequest:
    body: dict[str, Any] = {
        "text_prompts": [{"text": "A space ship."}],
        "init_image": INLINE,
        "style_preset": "isometric",
    }
    body.update(overrides)
    if body["init_image"] is None:
        del body["init_image"]
    return parse_request(body)


def by_key(key: str) -> ImageToImageRequest:
    return request(init_image=None, init_image_s3_key=key)


def run_now(
    house: House, req: ImageToImageRequest | None = None, key: str | None = None, **kw: Any
) -> SyncAnswer:
    return house.api.run_now(req or request(), ALICE, key, **kw)


def metadata(house: House, job_id: str) -> Metadata:
    return Metadata.model_validate(house.meta(f"jobs/{job_id}/metadata.json"))


def nothing_happened(house: House) -> bool:
    return (
        house.model.calls == []
        and house.store.writes == []
        and house.jobs.saved == []
        and not house.queue.messages
    )


# --- run now -------------------------------------------------------------------------------------


def test_run_now_answers_bedrocks_shape_and_stores_the_job(house: House) -> None:
    answer = run_now(house)
    job_id = answer.job_id
    assert answer.result == "success" and answer.status == "SUCCEEDED" and answer.error is None
    [artifact] = answer.artifacts
    assert artifact.finishReason == "SUCCESS" and artifact.seed == 1234
    image = base64.b64decode(artifact.base64 or "")
    assert image == house.store.read(OUTPUT, f"jobs/{job_id}/result.png")
    assert Image.open(io.BytesIO(image)).format == "PNG"
    assert answer.image is not None and answer.image.s3_uri == f"s3://{OUTPUT}/jobs/{job_id}/result.png"
    assert answer.image.url and f"jobs/{job_id}/result.png" in answer.image.url
    assert (
        answer.metadata is not None and answer.metadata.s3_uri == f"s3://{OUTPUT}/jobs/{job_id}/metadata.json"
    )
    # The inline source went to the input bucket first, so the job's metadata can point to it.
    assert house.store.read(INPUT, f"api/{job_id}/source.png") == SOURCE
    meta = metadata(house, job_id)
    assert meta.status == "SUCCEEDED" and meta.door == "api"
    assert meta.source.bucket == INPUT and meta.source.key == f"api/{job_id}/source.png"
    assert meta.source.format == "png"
    assert meta.request["style_preset"] == "isometric" and "init_image" not in meta.request
    assert meta.timings_ms is not None and set(meta.timings_ms) >= {
        "read",
        "prepare",
        "model",
        "write",
        "total",
    }
    # The seed's own body, translated for the default model (SD3.5 Large).
    [call] = house.model.calls
    assert call.model_id == SD3
    assert call.body["prompt"] == "A space ship., isometric style" and call.body["mode"] == "image-to-image"
    assert house.jobs.get(job_id).caller == ALICE


def test_want_url_leaves_out_base64(house: House) -> None:
    answer = run_now(house, request(init_image_s3_key=None), want_url=True)  # an explicit null is no key
    assert answer.artifacts[0].base64 is None and "base64" not in answer.model_dump(exclude_none=True)
    assert answer.image is not None and answer.image.url and answer.image.url.startswith("https://")


def test_content_filtered_answers_that_finish_reason_without_an_image(house: House) -> None:
    house.model.finish_reason = "CONTENT_FILTERED"
    answer = run_now(house)
    assert answer.status == "CONTENT_FILTERED" and answer.artifacts[0].finishReason == "CONTENT_FILTERED"
    assert answer.artifacts[0].base64 == "" and answer.image is None  # the documented answer has none
    assert answer.metadata is not None


def test_a_model_finishing_with_error_answers_failed_with_the_error(house: House) -> None:
    house.model.finish_reason = "ERROR"
    answer = run_now(house)
    assert answer.status == "FAILED" and answer.artifacts[0].finishReason == "ERROR"
    assert answer.error is not None and answer.error.code == "model_error"


@pytest.mark.parametrize(
    "model_id",
    ["stability.stable-diffusion-xl-v1", "amazon.nova-canvas-v1:0", "us.amazon.titan-image-generator-v2:0"],
)
def test_a_retired_model_is_refused_at_once_naming_its_end_and_successor(house: House, model_id: str) -> None:
    for door in (house.api.run_now, house.api.submit):
        with pytest.raises(errors.ModelUnavailable) as caught:
            door(request(model_id=model_id), ALICE, None)
        error = caught.value
        assert [d.field for d in error.details] == ["model_id"] and error.status == 503
        assert "end of life" in error.message and SD3 in error.message
    assert nothing_happened(house)


@pytest.mark.parametrize(
    ("overrides", "field", "error"),
    [
        ({"init_image": "not base64!"}, "init_image", errors.InvalidRequest),
        ({"model_id": "stability.sd3-5-large-v1:0x"}, "model_id", errors.InvalidRequest),
        ({"model_id": "stability.stable-image-core-v1:1"}, "model_id", errors.InvalidRequest),  # not enabled
        ({"init_image": "A" * (28 * 1024 * 1024)}, "init_image", errors.PayloadTooLarge),
    ],
)
def test_a_request_refused_before_the_job_names_the_field_and_costs_nothing(
    house: House, overrides: dict[str, Any], field: str, error: type[errors.ServiceError]
) -> None:
    with pytest.raises(error) as caught:
        run_now(house, request(**overrides))
    assert field in [d.field for d in caught.value.details] and caught.value.job_id is None
    assert nothing_happened(house)


@pytest.mark.parametrize("route", ["sync", "async"])
def test_a_models_own_prompt_rule_is_a_400_before_anything_is_stored(house: House, route: str) -> None:
    """Six 2,000-character prompts pass the SDXL schema, but joined they pass SD3.5's 10,000:
    refused on both routes before the source is stored, a job recorded or a message queued."""
    long = request(text_prompts=[{"text": "a" * 2000}] * 6, model_id=SD3)
    with pytest.raises(errors.InvalidRequest) as caught:
        if route == "sync":
            run_now(house, long)
        else:
            house.api.submit(long, ALICE, None)
    assert [d.field for d in caught.value.details] == ["text_prompts"] and caught.value.job_id is None
    assert nothing_happened(house)


REFUSED_SOURCES = [c for c in IMAGE_CASES if not c.expect.accepted and not c.found_by_decoding]


@pytest.mark.parametrize("case", REFUSED_SOURCES, ids=[c.name for c in REFUSED_SOURCES])
@pytest.mark.parametrize("by", ["inline", "upload"])
def test_both_routes_refuse_a_bad_source_alike_before_anything_is_stored(
    house: House, case: Case, by: str
) -> None:
    """The corpus's refused sources, inline or uploaded: the sync route and POST /v1/jobs
    answer the same status and code at once; no source stored, no job, no message, no call."""
    assert case.image is not None
    data = case.image()
    if by == "inline":
        req = request(init_image=base64.b64encode(data).decode())
    else:
        key = f"{ALICE.upload_prefix}{case.name}.{case.extension}"
        house.store.add(INPUT, key, data)
        req = by_key(key)
    writes = list(house.store.writes)
    answers = []
    for route in (house.api.run_now, house.api.submit):
        with pytest.raises(errors.ServiceError) as caught:
            route(req, ALICE, None)
        answers.append((caught.value.status, caught.value.code, caught.value.job_id))
    assert answers[0] == answers[1] == (case.expect.status, case.expect.code, None)
    assert house.store.writes == writes and house.jobs.saved == [] and not house.queue.messages
    assert house.model.calls == []


def test_a_missing_source_of_ones_own_is_source_not_found_naming_the_key(house: House) -> None:
    with pytest.raises(errors.SourceNotFound) as caught:
        run_now(house, by_key(f"{ALICE.upload_prefix}missing.png"))
    assert [d.field for d in caught.value.details] == ["init_image_s3_key"]
    assert house.model.calls == []


def test_a_source_by_key_in_the_input_bucket_runs(house: House) -> None:
    house.store.add(INPUT, f"{ALICE.upload_prefix}cat.png", SOURCE)
    answer = run_now(house, by_key(f"{ALICE.upload_prefix}cat.png"))
    assert answer.status == "SUCCEEDED"
    meta = metadata(house, answer.job_id)
    assert meta.source.key == f"{ALICE.upload_prefix}cat.png" and meta.source.version_id
    assert not any(key.startswith("api/") for key in house.store.keys(INPUT))  # nothing copied


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ThrottlingException", errors.ModelThrottled),
        ("ModelTimeoutException", errors.ModelTimeout),
        ("ResourceNotFoundException", errors.ModelUnavailable),
        ("AccessDeniedException", errors.ModelUnavailable),
        ("ServiceUnavailableException", errors.ModelBusy),
        ("ModelErrorException", errors.ModelError),
    ],
)
def test_a_model_error_is_raised_naming_the_job_it_recorded_as_failed(
    house: House, code: str, error: type[errors.ServiceError]
) -> None:
    house.model.errors = [bedrock_error(code)]
    with pytest.raises(error) as caught:
        run_now(house)
    job_id = caught.value.job_id
    assert job_id is not None and len(house.model.calls) == 1
    record = house.jobs.get(job_id)
    assert record.status == "FAILED" and record.error is not None and record.error.code == caught.value.code
    assert metadata(house, job_id).error == record.error


def test_out_of_time_is_a_model_timeout_naming_its_recorded_job(house: House) -> None:
    with pytest.raises(errors.ModelTimeout) as caught:
        run_now(house, time_left=lambda: 3.5)  # less than the 3 s reserve + 1
    assert caught.value.job_id is not None and house.model.calls == []
    answer = house.api.job(caught.value.job_id, ALICE)
    assert answer.status == "FAILED" and answer.error is not None and answer.error.code == "model_timeout"
    assert answer.metadata is not None  # the failed job's metadata is there to read


# --- idempotency ---------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer_without_a_second_call(house: House) -> None:
    first = run_now(house, key="abc-123")
    second = run_now(house, key="abc-123")
    assert first.job_id == second.job_id and first.artifacts == second.artifacts  # read back from S3
    assert first.image == second.image and len(house.model.calls) == 1
    assert len(house.finished) == 1  # a replay counts nothing


def test_an_idempotency_key_with_another_body_is_a_conflict(house: House) -> None:
    first = run_now(house, key="abc-123")
    writes = list(house.store.writes)
    with pytest.raises(errors.IdempotencyConflict) as caught:
        run_now(
            house, request(seed=7, init_image=base64.b64encode(png_bytes(64, 64)).decode()), key="abc-123"
        )
    assert caught.value.status == 409 and len(house.model.calls) == 1
    # Refused before anything was stored: the first job's source and metadata stand.
    assert house.store.writes == writes and metadata(house, first.job_id).status == "SUCCEEDED"


def test_a_keyed_retry_after_a_failure_finishes_from_the_stored_answer(house: House) -> None:
    """The first request failed after its result was stored (the metadata write): the same key
    is the same job, which finishes from the result it stored. Billed once."""
    house.store.fail("put", where="metadata.json", times=1)
    with pytest.raises(errors.StorageError) as caught:
        run_now(house, key="retry-me")
    answer = run_now(house, key="retry-me")
    assert answer.status == "SUCCEEDED" and answer.job_id == caught.value.job_id
    assert len(house.model.calls) == 1 and metadata(house, answer.job_id).model.replayed


def test_an_unkeyed_repeat_is_a_new_job(house: House) -> None:
    first, second = run_now(house), run_now(house)
    assert first.job_id != second.job_id and len(house.model.calls) == 2


# --- jobs ----------------------------------------------------------------------------------------


def test_a_submitted_job_is_recorded_and_queued_without_image_bytes(house: House) -> None:
    accepted = house.api.submit(request(), ALICE, None)
    job_id = accepted.job_id
    assert accepted.status == "QUEUED" and accepted.links.self_ == f"/v1/jobs/{job_id}"
    [message] = house.queue.messages
    queued = QueuedJob.model_validate(message)
    assert queued.kind == "api_job" and queued.job_id == job_id and queued.caller == ALICE
    assert (
        "init_image" not in queued.request
        and queued.request["init_image_s3_key"] == f"api/{job_id}/source.png"
    )
    assert house.store.read(INPUT, f"api/{job_id}/source.png") == SOURCE
    assert queued.output.metadata_key == f"jobs/{job_id}/metadata.json" and queued.model_id == SD3
    view = house.api.job(job_id, ALICE)
    assert view.status == "QUEUED" and view.image is None and view.metadata is None
    assert house.model.calls == []


def test_a_queued_job_notes_only_fields_its_caller_sent(house: House) -> None:
    """The queued request carries what the caller set, not the contract's defaults: a job
    whose caller sent no cfg_scale or steps notes neither as dropped; one that did, does."""
    for body, noted in (({}, set()), ({"cfg_scale": 9.0, "steps": 40}, {"cfg_scale", "steps"})):
        job_id = house.api.submit(request(**body), ALICE, None).job_id
        message = house.queue.messages[-1]
        assert "cfg_scale" not in message["request"] or body
        house.deliver(message, final_attempt=True)
        notes = metadata(house, job_id).model.notes or []  # type: ignore[union-attr]
        assert {n.split()[0] for n in notes if " dropped" in n} & {"cfg_scale", "steps"} == noted


def test_a_job_that_could_not_be_queued_says_so_in_its_record(house: House) -> None:
    house.queue.fail()
    with pytest.raises(errors.StorageError):
        house.api.submit(request(), ALICE, None)
    [(job_id, _), _] = house.jobs.saved
    record = house.jobs.get(job_id)
    assert record.status == "FAILED" and record.error is not None and record.error.code == "storage_error"


def test_a_keyed_submit_replays_its_job(house: House) -> None:
    first = house.api.submit(request(), ALICE, "order-1")
    second = house.api.submit(request(), ALICE, "order-1")
    assert first == second and len(house.queue.messages) == 1
    with pytest.raises(errors.IdempotencyConflict):
        house.api.submit(request(seed=3), ALICE, "order-1")


def test_a_keyed_submit_after_a_failed_send_is_queued_again(house: House) -> None:
    """The send failed (the record says FAILED); the caller retries with the same key: the same
    job is queued again and its record says QUEUED, so a poller does not stop at the old FAILED."""
    house.queue.fail(times=1)
    with pytest.raises(errors.StorageError):
        house.api.submit(request(), ALICE, "order-2")
    accepted = house.api.submit(request(), ALICE, "order-2")
    assert accepted.status == "QUEUED" and house.api.job(accepted.job_id, ALICE).status == "QUEUED"
    assert [QueuedJob.model_validate(m).job_id for m in house.queue.messages] == [accepted.job_id]


def test_one_key_on_both_routes_names_two_jobs(house: House) -> None:
    """A sync request that ran out of time (504, its job FAILED) retried on POST /v1/jobs with the
    same key, as the 504 advises: a new job, QUEUED, not the FAILED one's id; and a sync success
    followed by a keyed submit never overwrites the first job's result."""
    with pytest.raises(errors.ModelTimeout) as caught:
        run_now(house, key="both", time_left=lambda: 3.5)
    accepted = house.api.submit(request(), ALICE, "both")
    assert accepted.job_id != caught.value.job_id
    assert house.api.job(accepted.job_id, ALICE).status == "QUEUED"
    assert house.api.job(str(caught.value.job_id), ALICE).status == "FAILED"


def test_an_unknown_job_is_not_found(house: House) -> None:
    with pytest.raises(errors.JobNotFound) as caught:
        house.api.job("nope", ALICE)
    assert caught.value.message == "no job nope" and caught.value.status == 404


def test_a_finished_job_shows_where_its_image_and_metadata_are(house: House) -> None:
    done = run_now(house)
    view = house.api.job(done.job_id, ALICE)
    assert view.status == "SUCCEEDED" and view.result is not None and view.result.seed == 1234
    assert view.image == done.image and view.metadata == done.metadata
    assert view.metadata is not None and view.metadata.url and "metadata.json" in view.metadata.url


# --- uploads -------------------------------------------------------------------------------------


def test_an_upload_ticket_is_a_presigned_post_into_the_callers_folder(house: House) -> None:
    house.ids = lambda: "f" * 32
    ticket = house.api.upload("image/jpeg", ALICE)
    assert ticket.init_image_s3_key == f"{ALICE.upload_prefix}{'f' * 32}.jpg"
    assert ticket.upload.fields["key"] == ticket.init_image_s3_key and ticket.upload.method == "POST"
    assert ticket.upload.fields["Content-Type"] == "image/jpeg"
    assert (ticket.max_bytes, ticket.expires_in) == (house.settings.upload_max_bytes, 3600)


def test_an_upload_of_another_type_is_refused_naming_the_field(house: House) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        house.api.upload("image/gif", ALICE)
    assert [d.field for d in caught.value.details] == ["content_type"]


# --- a keyed request finds its record before admission (REVIEW finding 6) -----------------------


def count_reads(house: House, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the API door and the pipeline read with ObjectStorePort.get, in order."""
    reads: list[str] = []
    get = house.store.get

    def counted(bucket: str, key: str, **kw: Any) -> Any:
        reads.append(key)
        return get(bucket, key, **kw)

    monkeypatch.setattr(house.store, "get", counted)
    return reads


@pytest.mark.parametrize("key", [None, "once"])
def test_a_source_by_key_is_read_once_per_request(
    house: House, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    """Admission's read is the pipeline's: its bytes go to the job, not fetched a second time."""
    upload = f"{ALICE.upload_prefix}cat.png"
    house.store.add(INPUT, upload, SOURCE)
    reads = count_reads(house, monkeypatch)
    answer = run_now(house, by_key(upload), key=key)
    assert answer.status == "SUCCEEDED" and reads == [upload] and len(house.model.calls) == 1
    meta = metadata(house, answer.job_id)
    assert meta.source.version_id and meta.source.etag  # what S3 said of the object, still recorded


@pytest.mark.parametrize("route", ["run_now", "submit"])
def test_a_keyed_replay_after_the_upload_expired_answers_its_job(
    house: House, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    """README promises keyed replays for job_ttl_days; uploads expire sooner. The record is
    looked up first (one GetItem), so a recorded job is never admitted again: no read at all."""
    upload = f"{ALICE.upload_prefix}cat.png"
    house.store.add(INPUT, upload, SOURCE)
    submit = route == "submit"

    def send() -> Any:
        req = by_key(upload)
        return house.api.submit(req, ALICE, "k") if submit else run_now(house, req, key="k")

    first = send()
    house.store.fail("get", where=upload, error=lambda: errors.SourceNotFound("expired"))  # S3's lifecycle
    reads = count_reads(house, monkeypatch)
    again = send()
    assert again.job_id == first.job_id and again.status == first.status and reads == []
    assert len(house.model.calls) == (0 if submit else 1) and len(house.queue.messages) == int(submit)


def test_a_keyed_replay_is_not_failed_by_a_storage_fault_on_the_source(house: House) -> None:
    upload = f"{ALICE.upload_prefix}cat.png"
    house.store.add(INPUT, upload, SOURCE)
    first = run_now(house, by_key(upload), key="k")
    house.store.fail("get", where=upload)
    again = run_now(house, by_key(upload), key="k")
    assert again.job_id == first.job_id and again.status == "SUCCEEDED" and len(house.model.calls) == 1


def test_a_repeat_while_the_first_runs_is_a_409_on_the_sync_route_and_its_status_on_jobs(
    house: House,
) -> None:
    """README's 409 row, per route: the sync route cannot answer a job another request runs;
    POST /v1/jobs answers it as it stands (202, RUNNING)."""
    import time

    from img2img.domain.job import stable_id

    queued = house.api.submit(request(), ALICE, "k")
    record = house.jobs.get(queued.job_id)
    state = house.jobs.state(queued.job_id)
    assert state is not None
    now = time.time()
    for job_id in (queued.job_id, stable_id("api-sync", ALICE.tag, "k")):
        running = record.model_copy(update={"job_id": job_id, "status": "RUNNING"})
        house.jobs.write(running, now=now, lease=now + 60, request_hash=state.request_hash)
    with pytest.raises(errors.InProgress) as caught:
        run_now(house, key="k")
    assert caught.value.status == 409
    assert house.api.submit(request(), ALICE, "k").status == "RUNNING" and house.model.calls == []


# --- a job the queue could not take, and 5xx answers that name their job (findings 8, 14) -------


def test_a_job_that_could_not_be_queued_has_its_record_only(house: House) -> None:
    """As README says: FAILED storage_error in its record (a keyed retry queues it again), no
    metadata JSON and no event."""
    house.queue.fail(times=1)
    with pytest.raises(errors.StorageError) as caught:
        house.api.submit(request(), ALICE, "q")
    job_id = caught.value.job_id
    assert job_id is not None and house.jobs.get(job_id).status == "FAILED"
    assert f"jobs/{job_id}/metadata.json" not in house.store.keys(OUTPUT) and house.events.entries == []
    assert house.api.submit(request(), ALICE, "q").status == "QUEUED" and house.model.calls == []


def test_a_job_that_could_not_be_queued_nor_recorded_so_names_its_job(house: House) -> None:
    house.queue.fail(times=1)
    house.jobs.fail("write", when=lambda record: record.status == "FAILED")
    with pytest.raises(errors.StorageError) as caught:
        house.api.submit(request(), ALICE, None)
    assert caught.value.job_id is not None and house.model.calls == []


@pytest.mark.parametrize("fault", ["gone", "unreadable"])
def test_a_keyed_replay_whose_image_cannot_be_read_back_names_its_job(
    house: House, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    first = run_now(house, key="img")
    image_key = f"jobs/{first.job_id}/result.png"
    if fault == "gone":  # deleted from the output bucket by hand
        find = house.store.find
        monkeypatch.setattr(house.store, "find", lambda b, k: None if k == image_key else find(b, k))
    else:
        house.store.fail("find", where=image_key)
    with pytest.raises(errors.StorageError) as caught:
        run_now(house, key="img")
    assert caught.value.job_id == first.job_id and len(house.model.calls) == 1
