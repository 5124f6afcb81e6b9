"""pipeline.run(job) on its own, over the in-memory ports: metadata contents, statuses, the
stored model answer that keeps a job to one model call whatever fails after it, fallbacks,
and the sync route's deadline."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from typing import Any

import pytest
from PIL import Image

from img2img.domain.errors import ModelThrottled, StorageError
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.ports import ModelReply
from img2img.domain.records import Metadata
from img2img.domain.request import parse_request
from tests import imagegen
from tests.fakes import INPUT, OUTPUT, SD3, STRUCTURE, ULTRA, House, bedrock_error

pytestmark = pytest.mark.unit

SOURCE = imagegen.png(1024, 1024)  # an SDXL size: sent to the model as it is


def make_job(
    job_id: str = "job1", data: bytes | None = SOURCE, key: str = "uploads/src.png", **fields: Any
) -> Job:
    request = parse_request({"text_prompts": [{"text": "x"}], "init_image_s3_key": key, **fields})
    return Job(
        job_id=job_id,
        door="api",
        request=request,
        model_id=request.model_id or SD3,
        source=SourceRef(INPUT, key),
        output=OutputKeys(OUTPUT, f"jobs/{job_id}/result", f"jobs/{job_id}/metadata.json"),
        created_at="2026-11-25T10:00:00.000Z",
        source_data=data,
    )


def metadata(house: House, job_id: str = "job1") -> Metadata:
    return Metadata.model_validate(house.meta(f"jobs/{job_id}/metadata.json"))


def test_metadata_has_every_documented_part(house: House) -> None:
    stored = house.store.add(INPUT, "uploads/src.png", imagegen.jpeg(1600, 1200))
    outcome = house.pipeline.run(make_job(data=None, output_format="jpeg", seed=7))
    meta = metadata(house)
    assert outcome.status == meta.status == "SUCCEEDED" and outcome.metadata == meta
    assert (meta.job_id, meta.door, meta.created_at, meta.completed_at) == (
        "job1",
        "api",
        "2026-11-25T10:00:00.000Z",
        "2026-11-25T10:00:01.000Z",
    )
    source = meta.source
    assert (source.bucket, source.key, source.format, source.width, source.height) == (
        INPUT,
        "uploads/src.png",
        "jpeg",
        1600,
        1200,
    )
    assert source.etag == stored.etag and source.version_id == stored.version_id
    assert source.sha256 is not None and len(source.sha256) == 64 and source.size == len(stored.data)
    assert meta.preparation is not None
    assert meta.preparation.from_ == [1600, 1200] and meta.preparation.to == [1152, 896]
    assert meta.preparation.passthrough is False and meta.preparation.resize_mode == "fit"
    assert meta.request["seed"] == 7 and meta.request["model_id"] == SD3
    assert meta.request["init_image_s3_key"] == "uploads/src.png"
    assert meta.model is not None and meta.model.to_json_dict() == {
        "id": SD3,
        "region": "us-east-1",
        "engine": "sd3",
        "notes": [],
        "emulated": False,
        "attempts": 1,
    }
    assert meta.result is not None
    assert (meta.result.bucket, meta.result.key, meta.result.seed, meta.result.format) == (
        OUTPUT,
        "jobs/job1/result.jpg",
        7,
        "jpeg",
    )
    assert meta.timings_ms is not None and set(meta.timings_ms) == {
        "read",
        "prepare",
        "model",
        "write",
        "total",
    }
    assert meta.service.to_json_dict() == {"name": "img2img", "version": "0.1.0", "environment": "unit"}
    assert meta.error is None and meta.output.metadata_key == "jobs/job1/metadata.json"
    result = house.store.object(OUTPUT, "jobs/job1/result.jpg")
    assert result.content_type == "image/jpeg" and meta.result.bytes == len(result.data)
    assert Image.open(io.BytesIO(result.data)).format == "JPEG"
    view = house.jobs.get("job1")
    assert view.status == "SUCCEEDED" and view.result == meta.result and view.output == meta.output
    assert house.jobs.statuses("job1") == ["RUNNING", "SUCCEEDED"]
    # The answer first, the image, then the metadata last: whoever sees it finds the image there.
    assert [key for _, key in house.store.writes[1:]] == [
        "answers/job1.json",
        "jobs/job1/result.jpg",
        "jobs/job1/metadata.json",
    ]
    assert [s.job_id for s in house.finished] == ["job1"] and house.started == ["job1"]


def test_allowed_size_png_is_sent_untouched(house: House) -> None:
    house.pipeline.run(make_job())
    [call] = house.model.calls
    assert base64.b64decode(call.body["image"]) == SOURCE and call.model_id == SD3
    assert metadata(house).preparation.passthrough is True


def test_model_error_finish_is_failed_with_reason(house: House) -> None:
    house.model.finish_reason = "ERROR"
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "FAILED" and outcome.error is None
    assert outcome.metadata.error is not None and outcome.metadata.error.code == "model_error"
    assert "Inference error" in outcome.metadata.error.message
    assert house.jobs.get("job1").status == "FAILED"


def test_a_passing_storage_fault_is_retried_in_place(house: House) -> None:
    house.store.fail("put", bucket=OUTPUT, times=2)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1
    assert house.sleeps == [0.2, 0.4]  # backoff between the in-place attempts


# Every write after the model answered: its stored answer, the result image, the metadata JSON
# and the final job record. A fault that outlasts the in-place retries fails the attempt; the
# next attempt finishes from the stored answer. One model call, whatever failed.
WRITE_STEPS = ["result.png", "metadata.json", "job record"]


def fail_after_the_model(house: House, step: str) -> None:
    if step == "job record":
        house.jobs.fail("save", when=lambda record: record.status != "RUNNING", times=3)
    else:
        house.store.fail("put", bucket=OUTPUT, where=step, times=3)


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_storage_fault_after_the_model_answered_never_costs_a_second_call(house: House, step: str) -> None:
    fail_after_the_model(house, step)
    with pytest.raises(StorageError):
        house.pipeline.run(make_job(), final_attempt=False)
    assert len(house.model.calls) == 1 and house.finished == []
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED"
    assert len(house.model.calls) == 1  # the redelivery finished from the stored answer
    meta = metadata(house)
    assert meta.status == "SUCCEEDED" and meta.model is not None and meta.model.replayed is True
    assert house.jobs.get("job1").status == "SUCCEEDED"


@pytest.mark.parametrize("where", ["answers/", "result.png"])
def test_a_storage_fault_on_the_last_attempt_is_recorded_as_failed(house: House, where: str) -> None:
    """No attempt follows: the job ends FAILED (storage_error), its metadata written."""
    house.store.fail("put", bucket=OUTPUT, where=where, times=3)
    outcome = house.pipeline.run(make_job(), final_attempt=True)
    assert outcome.status == "FAILED" and outcome.error is not None and outcome.error.code == "storage_error"
    assert metadata(house).error == outcome.metadata.error
    assert house.jobs.get("job1").status == "FAILED" and len(house.model.calls) == 1


@pytest.mark.parametrize("step", ["metadata.json", "job record"])
def test_the_last_attempt_failing_to_write_its_outcome_still_ends_the_job(house: House, step: str) -> None:
    """The outcome's own writes fail past the retries on the last attempt: the error names the
    job, the record says FAILED (storage_error) if the table takes it, never RUNNING for ever,
    and the failure is counted once. A keyed retry or redrive finishes from the stored answer."""
    fail_after_the_model(house, step)
    with pytest.raises(StorageError) as caught:
        house.pipeline.run(make_job(), final_attempt=True)
    assert caught.value.job_id == "job1" and len(house.model.calls) == 1
    assert [(s.status, s.error.code if s.error else None) for s in house.finished] == [
        ("FAILED", "storage_error")
    ]
    record = house.jobs.get("job1")
    assert record.status == "FAILED" and record.error is not None and record.error.code == "storage_error"
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1
    assert house.jobs.get("job1").status == "SUCCEEDED"


def test_when_the_job_table_refuses_the_failure_too_the_error_still_names_the_job(house: House) -> None:
    house.jobs.fail("save", when=lambda record: record.status != "RUNNING")  # every time
    with pytest.raises(StorageError) as caught:
        house.pipeline.run(make_job(), final_attempt=True)
    assert caught.value.job_id == "job1" and house.jobs.get("job1").status == "RUNNING"
    assert [s.status for s in house.finished] == ["FAILED"]


def test_in_place_retries_stop_at_the_sync_routes_deadline(house: House) -> None:
    """Past the deadline a retry would outlast API Gateway's timeout: the job is recorded FAILED
    (storage_error) at once and the sync route answers a 500 naming it (its answer stored, a
    keyed retry finishes it), instead of a gateway timeout that answers nothing."""

    # Seconds of the invocation left: plenty for the model call, which then took nearly all.
    def time_left() -> float:
        return 1.1 if house.model.calls else 20.0

    house.store.fail("put", bucket=OUTPUT, where="result.png")
    outcome = house.pipeline.run(make_job(), final_attempt=True, time_left=time_left)
    assert outcome.error is not None and outcome.error.code == "storage_error"
    assert outcome.error.job_id == "job1" and house.sleeps == [] and len(house.model.calls) == 1
    assert house.jobs.get("job1").status == "FAILED"


def test_a_job_table_fault_at_the_start_of_the_last_attempt_still_ends_the_job(house: House) -> None:
    house.jobs.fail("save", when=lambda record: record.status == "RUNNING")
    outcome = house.pipeline.run(make_job(), final_attempt=True)
    assert outcome.status == "FAILED" and outcome.error is not None and outcome.error.code == "storage_error"
    assert metadata(house).status == "FAILED" and house.jobs.get("job1").status == "FAILED"
    assert house.model.calls == []


def test_a_fault_storing_the_answer_itself_is_the_one_case_that_calls_again(house: House) -> None:
    house.store.fail("put", where="answers/", times=3)
    with pytest.raises(StorageError):
        house.pipeline.run(make_job(), final_attempt=False)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 2


def test_a_fault_reading_the_stored_answer_is_retried_in_place(house: House) -> None:
    house.jobs.save(make_job().record("RUNNING", "2026-12-02T00:00:00Z"))  # an earlier attempt
    house.store.fail("find", where="answers/", times=2)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1


def test_the_stored_answer_is_the_same_json_whether_its_text_is_reused_or_serialised(house: House) -> None:
    """A reply that carries the answer's JSON text (the Bedrock adapter's, for plain ASCII) is
    stored with that text spliced in; one without it is serialised. Either way the same record,
    and a redelivery finishes from it with no second call."""
    invoke = house.model.invoke

    def with_text(model_id: str, body: dict[str, Any], *, timeout: float | None = None) -> ModelReply:
        reply = invoke(model_id, body, timeout=timeout)
        text = b" " + json.dumps(reply.payload, indent=1).encode() + b"\n"  # as a model may space it
        return dataclasses.replace(reply, text=text)

    house.pipeline.run(make_job("serialised"))
    house.model.invoke = with_text  # type: ignore[method-assign]
    house.pipeline.run(make_job("reused"))
    reused, serialised = (house.meta(f"answers/{job}.json") for job in ("reused", "serialised"))
    assert reused.pop("job_id") == "reused" and serialised.pop("job_id") == "serialised"
    assert reused == serialised and set(reused["payload"]) == {"seeds", "finish_reasons", "images"}
    house.store.fail("put", where="result.png", times=3)
    with pytest.raises(StorageError):
        house.pipeline.run(make_job("again"), final_attempt=False)
    outcome = house.pipeline.run(make_job("again"))
    assert outcome.status == "SUCCEEDED" and outcome.metadata.model is not None
    assert outcome.metadata.model.replayed is True and len(house.model.calls) == 3


def test_a_job_new_to_the_table_reads_no_stored_answer(house: House) -> None:
    """Every attempt records RUNNING before it calls the model, so a job with no record has no
    answer to find: no read of answers/ (a round trip saved on nearly every job)."""
    house.store.fail("find", where="answers/")  # any read would fail the job
    outcome = house.pipeline.run(make_job(), final_attempt=False)
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1


def test_a_job_found_recorded_reads_its_stored_answer_whatever_the_delivery_count(house: House) -> None:
    """A dead-letter redrive arrives as a new message: the record, not the receive count, says
    an earlier attempt may have called the model."""
    house.store.fail("put", where="result.png", times=3)
    house.pipeline.run(make_job(), final_attempt=True)  # recorded FAILED, its answer stored
    outcome = house.pipeline.run(make_job(), final_attempt=False)
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1


def test_a_stored_answer_of_another_job_is_not_replayed(house: House) -> None:
    house.jobs.save(make_job().record("RUNNING", "2026-12-02T00:00:00Z"))  # an earlier attempt
    house.store.put(OUTPUT, "answers/job1.json", b'{"job_id": "job2", "payload": {}}', "application/json")
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and len(house.model.calls) == 1
    assert outcome.metadata.model is not None and outcome.metadata.model.replayed is None


def test_a_stored_answer_keeps_the_fallback_it_came_from(house: House) -> None:
    house.model.gone = {SD3}
    house.fallbacks = (ULTRA,)
    house.store.fail("put", where="metadata.json", times=3)
    with pytest.raises(StorageError):
        house.pipeline.run(make_job(), final_attempt=False)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and house.model.model_ids == [SD3, ULTRA]
    model = outcome.metadata.model
    assert model is not None and model.id == ULTRA and model.replayed is True
    assert model.fallback_from and [f.model_id for f in model.fallback_from] == [SD3]


def test_failed_job_writes_its_metadata_too(house: House) -> None:
    outcome = house.pipeline.run(make_job(data=None, key="uploads/missing.png"))
    meta = metadata(house)
    assert outcome.status == meta.status == "FAILED"
    assert meta.error is not None and meta.error.code == "source_not_found" and meta.timings_ms
    assert outcome.error is not None and outcome.error.job_id == "job1"
    assert house.model.calls == [] and house.jobs.get("job1").error == meta.error


# --- models that are gone: fallback -------------------------------------------------------


def test_a_model_at_end_of_life_falls_back_once_to_the_next_and_says_so(house: House) -> None:
    house.model.gone = {SD3}
    house.fallbacks = (ULTRA, STRUCTURE)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED"
    assert house.model.model_ids == [SD3, ULTRA]  # one call each
    meta = metadata(house)
    assert meta.model is not None and meta.model.id == ULTRA and meta.model.engine == "ultra"
    [gone] = meta.model.fallback_from or []
    assert gone.model_id == SD3 and gone.code == "model_unavailable"
    assert "reached the end of its life" in gone.reason
    view = house.jobs.get("job1")
    assert view.model_id == ULTRA and view.fallback_from == meta.model.fallback_from
    assert outcome.summary().fallback_from == meta.model.fallback_from
    assert house.finished[0].fallback_from == meta.model.fallback_from  # what the alarm counts


def test_every_model_gone_fails_after_one_call_each_naming_each(house: House) -> None:
    house.model.gone = {SD3, ULTRA, STRUCTURE}
    house.fallbacks = (ULTRA, STRUCTURE)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_unavailable"
    assert house.model.model_ids == [SD3, ULTRA, STRUCTURE]
    meta = metadata(house)
    assert meta.model is not None
    assert [g.model_id for g in meta.model.fallback_from or []] == [SD3, ULTRA, STRUCTURE]


def test_access_denied_falls_back_too(house: House) -> None:
    house.model.errors = [bedrock_error("AccessDeniedException")]
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and house.model.model_ids == [SD3, ULTRA]


@pytest.mark.parametrize("error", ["ValidationException", "ModelErrorException", "ThrottlingException"])
def test_bad_input_model_errors_and_throttling_never_fall_back(house: House, error: str) -> None:
    house.model.errors = [bedrock_error(error)]
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "FAILED" and len(house.model.calls) == 1
    assert outcome.metadata.model and outcome.metadata.model.fallback_from is None


def test_a_retryable_model_error_is_raised_when_another_attempt_follows(house: House) -> None:
    house.model.errors = [ModelThrottled("Bedrock throttled")]
    with pytest.raises(ModelThrottled):
        house.pipeline.run(make_job(), final_attempt=False)
    assert house.jobs.get("job1").status == "RUNNING" and house.finished == []
    assert "jobs/job1/metadata.json" not in house.store.keys(OUTPUT)


def test_a_content_filter_never_falls_back(house: House) -> None:
    house.model.finish_reason = "CONTENT_FILTERED"
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "CONTENT_FILTERED" and len(house.model.calls) == 1
    meta = metadata(house)
    assert meta.status == "CONTENT_FILTERED" and meta.result is not None
    assert meta.result.finish_reason == "CONTENT_FILTERED" and meta.result.detail == "Filter reason: prompt"
    assert meta.result.key is None and outcome.image is None  # the documented filtered answer has no image


def test_retired_fallbacks_are_skipped_without_a_call(house: House) -> None:
    house.model.gone = {SD3}
    house.fallbacks = ("amazon.nova-canvas-v1:0", STRUCTURE)
    outcome = house.pipeline.run(make_job())
    assert outcome.status == "SUCCEEDED" and house.model.model_ids == [SD3, STRUCTURE]


# --- the sync route's deadline -----------------------------------------------------------------


def test_the_model_call_ends_at_the_deadline_less_the_reserve(house: House) -> None:
    outcome = house.pipeline.run(make_job(), time_left=lambda: 10.4)
    assert outcome.status == "SUCCEEDED"
    assert [call.timeout for call in house.model.calls] == [pytest.approx(7.4)]  # 3 s kept back
    house.pipeline.run(make_job("job2"))
    assert house.model.calls[-1].timeout is None  # no deadline: the client's own


def test_no_time_left_is_a_model_timeout_recorded_on_the_job_without_a_call(house: House) -> None:
    outcome = house.pipeline.run(make_job(), time_left=lambda: 3.5)
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_timeout"
    assert house.model.calls == []
    view = house.jobs.get("job1")
    assert view.status == "FAILED" and view.error is not None and view.error.code == "model_timeout"
