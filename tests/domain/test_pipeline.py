"""pipeline.run(job) on its own, over the in-memory ports: metadata contents, statuses, the
stored model answer that keeps a job to one model call whatever fails after it, fallbacks,
and the sync route's deadline."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from typing import Any

import pytest
from PIL import Image

from img2img.domain.errors import ModelBusy, ModelThrottled
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.pipeline import Attempt
from img2img.domain.records import Metadata
from img2img.domain.request import parse_request
from img2img.handlers.queue_messages import read_message
from tests import imagegen
from tests.fakes import INPUT, OUTPUT, SD3, STRUCTURE, ULTRA, House, bedrock_error
from tests.handlers.sqs_events import s3_notification

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
    outcome = house.pipeline.run(make_job(data=None, output_format="jpeg", seed=7), Attempt())
    meta = metadata(house)
    assert outcome.status == meta.status == "SUCCEEDED"
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
    # The image (with what the model said: the stored answer), then the metadata: whoever
    # sees it finds the image there.
    assert [key for _, key in house.store.writes[1:]] == ["jobs/job1/result.jpg", "jobs/job1/metadata.json"]
    said = json.loads(result.metadata["img2img-answer"])
    assert said == {
        "job_id": "job1",
        "seed": 7,
        "finish_reason": "SUCCESS",
        "model_id": SD3,
        "emulated": False,
        "attempts": 1,
        "fallback_from": [],
    }
    assert [s.job_id for s in house.finished] == ["job1"] and house.started == ["job1"]


def test_allowed_size_png_is_sent_untouched(house: House) -> None:
    house.pipeline.run(make_job(), Attempt())
    [call] = house.model.calls
    assert base64.b64decode(call.body["image"]) == SOURCE and call.model_id == SD3
    assert metadata(house).preparation.passthrough is True


def test_model_error_finish_is_failed_with_reason(house: House) -> None:
    house.model.finish_reason = "ERROR"
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "FAILED" and outcome.error is None
    assert metadata(house).error is not None and metadata(house).error.code == "model_error"
    assert "Inference error" in metadata(house).error.message
    assert house.jobs.get("job1").status == "FAILED"


def test_failed_job_writes_its_metadata_too(house: House) -> None:
    outcome = house.pipeline.run(make_job(data=None, key="uploads/missing.png"), Attempt())
    meta = metadata(house)
    assert outcome.status == meta.status == "FAILED"
    assert meta.error is not None and meta.error.code == "source_not_found" and meta.timings_ms
    assert outcome.error is not None and outcome.error.job_id == "job1"
    assert house.model.calls == [] and house.jobs.get("job1").error == meta.error


# --- models that are gone: fallback -------------------------------------------------------


def test_a_model_at_end_of_life_falls_back_once_to_the_next_and_says_so(house: House) -> None:
    house.model.gone = {SD3}
    house.fallbacks = (ULTRA, STRUCTURE)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "SUCCEEDED"
    assert house.model.model_ids == [SD3, ULTRA]  # one call each
    meta = metadata(house)
    assert meta.model is not None and meta.model.id == ULTRA and meta.model.engine == "ultra"
    [gone] = meta.model.fallback_from or []
    assert gone.model_id == SD3 and gone.code == "model_unavailable"
    assert "reached the end of its life" in gone.reason
    view = house.jobs.get("job1")
    assert view.model_id == ULTRA and view.fallback_from == meta.model.fallback_from
    assert outcome.summary.fallback_from == meta.model.fallback_from
    assert house.finished[0].fallback_from == meta.model.fallback_from  # what the alarm counts


def test_every_model_gone_fails_after_one_call_each_naming_each(house: House) -> None:
    house.model.gone = {SD3, ULTRA, STRUCTURE}
    house.fallbacks = (ULTRA, STRUCTURE)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_unavailable"
    assert house.model.model_ids == [SD3, ULTRA, STRUCTURE]
    meta = metadata(house)
    assert meta.model is not None
    assert [g.model_id for g in meta.model.fallback_from or []] == [SD3, ULTRA, STRUCTURE]


def test_access_denied_falls_back_too(house: House) -> None:
    house.model.errors = [bedrock_error("AccessDeniedException")]
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "SUCCEEDED" and house.model.model_ids == [SD3, ULTRA]


@pytest.mark.parametrize("error", ["ValidationException", "ModelErrorException", "ThrottlingException"])
def test_bad_input_model_errors_and_throttling_never_fall_back(house: House, error: str) -> None:
    house.model.errors = [bedrock_error(error)]
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "FAILED" and len(house.model.calls) == 1
    assert metadata(house).model and metadata(house).model.fallback_from is None


def test_a_retryable_model_error_is_raised_when_another_attempt_follows(house: House) -> None:
    house.model.errors = [ModelThrottled("Bedrock throttled")]
    with pytest.raises(ModelThrottled):
        house.pipeline.run(make_job(), Attempt(final=False))
    # Throttled: the model did not run, so the attempt gives its count back.
    state = house.jobs.state("job1")
    assert state is not None and (state.status, state.calls) == ("QUEUED", 0) and house.finished == []
    assert "jobs/job1/metadata.json" not in house.store.keys(OUTPUT)


def test_a_content_filter_never_falls_back(house: House) -> None:
    house.model.finish_reason = "CONTENT_FILTERED"
    house.fallbacks = (ULTRA,)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "CONTENT_FILTERED" and len(house.model.calls) == 1
    meta = metadata(house)
    assert meta.status == "CONTENT_FILTERED" and meta.result is not None
    assert meta.result.finish_reason == "CONTENT_FILTERED" and meta.result.detail == "Filter reason: prompt"
    assert meta.result.key is None and outcome.image is None  # the documented filtered answer has no image


def test_retired_fallbacks_are_skipped_without_a_call(house: House) -> None:
    house.model.gone = {SD3}
    house.fallbacks = ("amazon.nova-canvas-v1:0", STRUCTURE)
    outcome = house.pipeline.run(make_job(), Attempt())
    assert outcome.status == "SUCCEEDED" and house.model.model_ids == [SD3, STRUCTURE]


# --- the sync route's deadline -----------------------------------------------------------------


def test_the_model_call_ends_at_the_deadline_less_the_reserve(house: House) -> None:
    outcome = house.pipeline.run(make_job(), Attempt(time_left=lambda: 10.4))
    assert outcome.status == "SUCCEEDED"
    assert [call.timeout for call in house.model.calls] == [pytest.approx(7.4)]  # 3 s kept back
    house.pipeline.run(make_job("job2"), Attempt())
    assert house.model.calls[-1].timeout is None  # no deadline: the client's own


def test_no_time_left_is_a_model_timeout_recorded_on_the_job_without_a_call(house: House) -> None:
    outcome = house.pipeline.run(make_job(), Attempt(time_left=lambda: 3.5))
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_timeout"
    assert house.model.calls == []
    view = house.jobs.get("job1")
    assert view.status == "FAILED" and view.error is not None and view.error.code == "model_timeout"


# --- what the record decides: billing, retries, duplicates --------------------------------------


def test_a_call_cut_off_on_every_receive_costs_two_model_calls_at_most() -> None:
    now = [1795600801.0]
    house = House(clock=lambda: now[0])
    for receive in range(1, 6):
        cut = ModelBusy("the call was cut off")
        cut.may_have_billed = True  # adapters/bedrock.py: a connection fault mid-call
        house.model.errors = [cut]
        now[0] += 720
        with contextlib.suppress(ModelBusy):  # raised: the message comes back
            house.pipeline.run(make_job(), Attempt(final=receive == 5, time_left=lambda: 120.0))
    assert len(house.model.calls) == 2
    assert house.jobs.get("job1").status == "FAILED"


def test_a_retry_of_a_job_that_failed_after_its_model_answered_runs_again(house: House) -> None:
    """The result write failed: the job is FAILED (retry set), its metadata says so. A keyed
    retry or a redrive calls the model once more (the answer was lost) and succeeds."""
    house.store.fail("put", bucket=OUTPUT, where="/result.", times=1)
    first = house.pipeline.run(make_job(), Attempt())
    assert first.status == "FAILED" and metadata(house).error.code == "storage_error"
    again = house.pipeline.run(make_job(), Attempt())
    assert again.status == metadata(house).status == house.jobs.get("job1").status == "SUCCEEDED"
    assert len(house.model.calls) == 2


def test_duplicate_deliveries_of_a_refused_drop_record_and_send_it_once(house: House) -> None:
    put = house.store.add(INPUT, "inbox/x.png", imagegen.png(64, 64))  # no prompt: refused
    read = read_message(json.dumps(s3_notification(INPUT, "inbox/x.png", version_id=put.version_id)))
    [summary] = house.worker.handle(read, Attempt())  # type: ignore[arg-type]
    assert summary.status == "FAILED" and summary.error and summary.error.code == "missing_parameters"
    for _ in range(2):  # its outcome is there: skipped, nothing written or sent again
        assert house.worker.handle(read, Attempt()) == []  # type: ignore[arg-type]
    assert len(house.skipped) == 2
    assert len(house.events.entries) == 1 and len(house.finished) == 1
    assert [key for _, key in house.store.writes].count("results/x.png.json") == 1
    assert house.model.calls == []


def test_an_attempt_whose_lease_lapsed_sends_no_second_event() -> None:
    """A is slow; its lease passes and B takes the job up, finds A's stored result and ends it.
    A's own final write is then refused: it answers B's outcome and sends nothing."""
    now = [1795600801.0]
    house = House(clock=lambda: now[0])
    taken_over: list[str] = []

    def b_takes_over(record: Any) -> bool:
        if record.status == "SUCCEEDED" and not taken_over:
            taken_over.append(record.job_id)
            now[0] += 100  # past A's 10 s lease
            assert house.pipeline.run(make_job(), Attempt()).status == "SUCCEEDED"
        return False  # no fault: A's write goes on, and the record refuses it

    house.jobs.fail("write", when=b_takes_over)
    outcome = house.pipeline.run(make_job(), Attempt(time_left=lambda: 10.0))
    assert outcome.status == "SUCCEEDED" and taken_over == ["job1"]
    assert len(house.events.entries) == 1 and len(house.finished) == 1
    assert len(house.model.calls) == 1  # B finished from A's stored result
