"""pipeline.run(job) on its own: metadata contents, statuses, failures and retries."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from PIL import Image

from img2img.adapters.bedrock import BedrockInvoker
from img2img.adapters.jobs import JobStore
from img2img.adapters.s3 import ObjectStore
from img2img.domain.errors import StorageError
from img2img.domain.imaging import ImageLimits
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.pipeline import Pipeline
from img2img.domain.records import JobRecord
from img2img.domain.request import parse_request
from tests import imagegen
from tests.handlers.world import INPUT, OUTPUT, TABLE, World

pytestmark = pytest.mark.handlers


def make_job(
    job_id: str = "job1", data: bytes | None = None, key: str = "uploads/src.png", **fields: Any
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


SD3 = "stability.sd3-5-large-v1:0"
ULTRA = "stability.stable-image-ultra-v1:1"
STRUCTURE = "us.stability.stable-image-control-structure-v1:0"


def pipeline(world: World, store: Any = None, fallbacks: tuple[str, ...] = (), jobs: Any = None) -> Pipeline:
    return Pipeline(
        fallback_model_ids=fallbacks,
        sleep=lambda seconds: None,
        store=store or ObjectStore(world.s3),
        invoker=BedrockInvoker(world.bedrock, attempts=1),  # the adapter's retries: its own tests
        jobs=jobs or JobStore(world.dynamodb, TABLE, 1),
        limits=ImageLimits(),
        environment="unit",
        clock=lambda: "2026-11-25T10:00:01.000Z",
    )


def test_metadata_has_every_documented_part(world: World) -> None:
    world.s3.put_object(Bucket=INPUT, Key="uploads/src.png", Body=imagegen.jpeg(4000, 3000))
    outcome = pipeline(world).run(make_job(output_format="jpeg", seed=7))
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert outcome.status == meta["status"] == "SUCCEEDED"
    assert set(meta) >= {
        "job_id",
        "status",
        "source",
        "preparation",
        "request",
        "model",
        "result",
        "timings_ms",
        "created_at",
        "completed_at",
        "service",
    }
    assert (
        meta["source"]["format"] == "jpeg" and meta["source"]["etag"] and len(meta["source"]["sha256"]) == 64
    )
    assert meta["preparation"]["from"] == [4000, 3000] and meta["preparation"]["to"] == [1152, 896]
    assert meta["preparation"]["passthrough"] is False
    assert meta["model"] == {
        "id": SD3,
        "region": "us-east-1",
        "engine": "sd3",
        "notes": [],
        "emulated": False,
        "attempts": 1,
    }
    assert meta["result"]["key"] == "jobs/job1/result.jpg" and meta["result"]["seed"] == 7
    assert meta["service"] == {"name": "img2img", "version": "0.1.0", "environment": "unit"}
    stored = world.s3.get_object(Bucket=OUTPUT, Key="jobs/job1/result.jpg")
    assert stored["ContentType"] == "image/jpeg"
    assert Image.open(io.BytesIO(stored["Body"].read())).format == "JPEG"
    view = JobStore(world.dynamodb, TABLE, 1).get("job1")
    assert view.status == "SUCCEEDED" and view.result and view.result.seed == 7


def test_allowed_size_png_is_sent_untouched(world: World) -> None:
    import base64

    source = imagegen.png(1024, 1024)
    pipeline(world).run(make_job(data=source))
    assert base64.b64decode(world.bedrock.calls[0]["body"]["image"]) == source
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert meta["preparation"]["passthrough"] is True


def test_model_error_finish_is_failed_with_reason(world: World) -> None:
    world.bedrock.finish_reason = "ERROR"
    outcome = pipeline(world).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "FAILED" and outcome.error is None
    assert outcome.metadata.error is not None and outcome.metadata.error.code == "model_error"


class FlakyStore(ObjectStore):
    """Output-bucket writes whose key contains `where` fail `failures` times."""

    def __init__(self, client: Any, failures: int, where: str = "") -> None:
        super().__init__(client)
        self.failures = failures
        self.where = where

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        if bucket == OUTPUT and self.where in key and self.failures:
            self.failures -= 1
            raise StorageError("S3 is having a moment")
        return super().put(bucket, key, data, content_type)


class FlakyJobs(JobStore):
    """Final job-record writes fail `failures` times (RUNNING ones go through)."""

    def __init__(self, world: World, failures: int) -> None:
        super().__init__(world.dynamodb, TABLE, 1)
        self.failures = failures

    def save(self, view: JobRecord) -> None:
        if view.status != "RUNNING" and self.failures:
            self.failures -= 1
            raise StorageError("DynamoDB is having a moment")
        super().save(view)


def test_a_passing_storage_fault_is_retried_in_place(world: World) -> None:
    outcome = pipeline(world, FlakyStore(world.s3, 2)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "SUCCEEDED" and len(world.bedrock.calls) == 1


# Every write after the model answered: its stored answer, the result image, the metadata JSON
# and the final job record. A fault that outlasts the in-place retries fails the attempt; the
# next attempt finishes from the stored answer. One model call, whatever failed.
WRITE_STEPS = ["result.png", "metadata.json", "job record"]


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_storage_fault_after_the_model_answered_never_costs_a_second_call(world: World, step: str) -> None:
    flaky_store = FlakyStore(world.s3, 3 if step != "job record" else 0, where=step)
    flaky_jobs = FlakyJobs(world, 3 if step == "job record" else 0)
    with pytest.raises(StorageError):
        pipeline(world, flaky_store, jobs=flaky_jobs).run(
            make_job(data=imagegen.png(1024, 1024)), final_attempt=False
        )
    assert len(world.bedrock.calls) == 1
    outcome = pipeline(world).run(make_job(data=imagegen.png(1024, 1024)), first_attempt=False)
    assert outcome.status == "SUCCEEDED"
    assert len(world.bedrock.calls) == 1  # the redelivery finished from the stored answer
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert meta["status"] == "SUCCEEDED" and meta["model"]["replayed"] is True
    assert JobStore(world.dynamodb, TABLE, 1).get("job1").status == "SUCCEEDED"


def test_a_fault_storing_the_answer_itself_is_the_one_case_that_calls_again(world: World) -> None:
    with pytest.raises(StorageError):
        pipeline(world, FlakyStore(world.s3, 3, where="answers/")).run(
            make_job(data=imagegen.png(1024, 1024)), final_attempt=False
        )
    outcome = pipeline(world).run(make_job(data=imagegen.png(1024, 1024)), first_attempt=False)
    assert outcome.status == "SUCCEEDED" and len(world.bedrock.calls) == 2


def test_a_first_attempt_never_reads_a_stored_answer(world: World) -> None:
    pipeline(world).run(make_job(data=imagegen.png(1024, 1024)))
    pipeline(world).run(make_job(data=imagegen.png(1024, 1024)))  # a new sync request, same id
    assert len(world.bedrock.calls) == 2


def test_a_stored_answer_keeps_the_fallback_it_came_from(world: World) -> None:
    world.bedrock.gone = {SD3}
    with pytest.raises(StorageError):
        pipeline(world, FlakyStore(world.s3, 3, where="metadata.json"), fallbacks=(ULTRA,)).run(
            make_job(data=imagegen.png(1024, 1024)), final_attempt=False
        )
    outcome = pipeline(world, fallbacks=(ULTRA,)).run(
        make_job(data=imagegen.png(1024, 1024)), first_attempt=False
    )
    assert outcome.status == "SUCCEEDED" and [c["modelId"] for c in world.bedrock.calls] == [SD3, ULTRA]
    assert (
        outcome.metadata.model and outcome.metadata.model.id == ULTRA and outcome.metadata.model.fallback_from
    )


def test_failed_job_writes_its_metadata_too(world: World) -> None:
    outcome = pipeline(world).run(make_job(key="uploads/missing.png"))
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert outcome.status == meta["status"] == "FAILED"
    assert meta["error"]["code"] == "source_not_found" and "timings_ms" in meta
    assert world.bedrock.calls == []


def test_final_status_is_never_overwritten_by_a_late_running(world: World) -> None:
    store = JobStore(world.dynamodb, TABLE, 1)
    job = make_job()
    store.save(job.record("SUCCEEDED", "t1"))
    store.save(job.record("RUNNING", "t2"))
    assert store.get("job1").status == "SUCCEEDED"
    store.save(job.record("FAILED", "t3"))  # a final state may replace a final state (a redrive)
    assert store.get("job1").status == "FAILED"


def test_job_store_faults_are_storage_errors(world: World) -> None:
    broken = JobStore(boto3.client("dynamodb"), "no-such-table", 1)
    with pytest.raises(StorageError):
        broken.get("x")
    with pytest.raises(StorageError):
        broken.save(make_job().record("RUNNING", "t"))


# --- models that are gone: fallback -------------------------------------------------------


def test_a_model_at_end_of_life_falls_back_once_to_the_next_and_says_so(world: World) -> None:
    world.bedrock.gone = {SD3}
    outcome = pipeline(world, fallbacks=(ULTRA, STRUCTURE)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "SUCCEEDED"
    assert [call["modelId"] for call in world.bedrock.calls] == [SD3, ULTRA]  # one call each
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert meta["model"]["id"] == ULTRA and meta["model"]["engine"] == "ultra"
    [gone] = meta["model"]["fallback_from"]
    assert gone["model_id"] == SD3 and gone["code"] == "model_unavailable"
    assert "reached the end of its life" in gone["reason"]
    view = JobStore(world.dynamodb, TABLE, 1).get("job1")
    assert (
        view.model_id == ULTRA
        and [f.to_json_dict() for f in view.fallback_from or []] == meta["model"]["fallback_from"]
    )
    assert outcome.summary().to_json_dict()["fallback_from"] == meta["model"]["fallback_from"]


def test_every_model_gone_fails_after_one_call_each_naming_each(world: World) -> None:
    world.bedrock.gone = {SD3, ULTRA, STRUCTURE}
    outcome = pipeline(world, fallbacks=(ULTRA, STRUCTURE)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_unavailable"
    assert [call["modelId"] for call in world.bedrock.calls] == [SD3, ULTRA, STRUCTURE]
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert [g["model_id"] for g in meta["model"]["fallback_from"]] == [SD3, ULTRA, STRUCTURE]


def test_access_denied_falls_back_too(world: World) -> None:
    world.bedrock.errors = ["AccessDeniedException"]
    outcome = pipeline(world, fallbacks=(ULTRA,)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "SUCCEEDED" and len(world.bedrock.calls) == 2


@pytest.mark.parametrize(
    ("error", "status"),
    [("ValidationException", "FAILED"), ("ModelErrorException", "FAILED"), ("ThrottlingException", "FAILED")],
)
def test_bad_input_model_errors_and_throttling_never_fall_back(world: World, error: str, status: str) -> None:
    world.bedrock.errors = [error]
    outcome = pipeline(world, fallbacks=(ULTRA,)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == status and len(world.bedrock.calls) == 1
    assert outcome.metadata.model and outcome.metadata.model.fallback_from is None


def test_a_content_filter_never_falls_back(world: World) -> None:
    world.bedrock.finish_reason = "CONTENT_FILTERED"
    outcome = pipeline(world, fallbacks=(ULTRA,)).run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "CONTENT_FILTERED" and len(world.bedrock.calls) == 1
    meta = world.read_json(OUTPUT, "jobs/job1/metadata.json")
    assert meta["status"] == "CONTENT_FILTERED"
    assert meta["result"]["finish_reason"] == "CONTENT_FILTERED"
    assert meta["result"]["detail"] == "Filter reason: prompt"


def test_retired_fallbacks_are_skipped_without_a_call(world: World) -> None:
    world.bedrock.gone = {SD3}
    jobs = pipeline(world, fallbacks=("amazon.nova-canvas-v1:0", STRUCTURE))
    outcome = jobs.run(make_job(data=imagegen.png(1024, 1024)))
    assert outcome.status == "SUCCEEDED"
    assert [call["modelId"] for call in world.bedrock.calls] == [SD3, STRUCTURE]


# --- the sync route's deadline -----------------------------------------------------------------


def test_the_model_call_ends_at_the_deadline_less_the_reserve(world: World) -> None:
    asked: list[int] = []

    def client_for(seconds: int) -> Any:
        asked.append(seconds)
        return world.bedrock

    jobs = pipeline(world)
    jobs._invoker = BedrockInvoker(world.bedrock, attempts=1, client_for_timeout=client_for)
    outcome = jobs.run(make_job(data=imagegen.png(1024, 1024)), time_left=lambda: 10.4)
    assert outcome.status == "SUCCEEDED" and asked == [7]  # 10.4 s left, 3 s kept back


def test_no_time_left_is_a_model_timeout_recorded_on_the_job_without_a_call(world: World) -> None:
    outcome = pipeline(world).run(make_job(data=imagegen.png(1024, 1024)), time_left=lambda: 3.5)
    assert outcome.status == "FAILED" and outcome.error and outcome.error.code == "model_timeout"
    assert world.bedrock.calls == []
    assert JobStore(world.dynamodb, TABLE, 1).get("job1").status == "FAILED"
