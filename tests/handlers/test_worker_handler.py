"""The S3 door and async jobs through the worker's real entry point: SQS events in, result
images and metadata JSON in the output bucket, partial batch failures out. What the worker does
with each message (metadata, manifests, refusals, redeliveries) is tested over the in-memory
ports in tests/domain/test_queue_worker.py; here what only the handler and the wiring do: SQS
records and their receive counts, partial batch failures, the real adapters and idempotency."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from img2img.handlers import api, worker
from tests.fakes import png_bytes
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.sqs_events import s3_notification, sqs_event
from tests.handlers.world import INPUT, OUTPUT, World

pytestmark = pytest.mark.handlers


def drop(world: World, key: str, data: bytes | None = None, **metadata: str) -> dict[str, Any]:
    put = world.s3.put_object(Bucket=INPUT, Key=key, Body=data or png_bytes(), Metadata=metadata)
    return s3_notification(INPUT, key, version_id=put.get("VersionId"), etag=put["ETag"].strip('"'))


def run(*bodies: Any, receive_count: int = 1) -> dict[str, Any]:
    return worker.handler(sqs_event(*bodies, receive_count=receive_count), FakeContext("img2img-unit-worker"))


def test_image_with_metadata_gives_result_and_metadata(world: World) -> None:
    out = run(
        drop(
            world,
            "inbox/trips/my cat+1.png",
            prompt="a cat astronaut",
            **{"style-preset": "anime", "seed": "42"},
        )
    )
    assert out == {"batchItemFailures": []}
    meta = world.read_json(OUTPUT, "results/trips/my cat+1.png.json")
    assert meta["status"] == "SUCCEEDED" and meta["source"]["key"] == "inbox/trips/my cat+1.png"
    head = world.s3.head_object(Bucket=INPUT, Key="inbox/trips/my cat+1.png")
    assert meta["source"]["etag"] == head["ETag"].strip('"')  # which upload it was, as README shows
    result = world.s3.get_object(Bucket=OUTPUT, Key="results/trips/my cat+1.png.png")
    assert result["ContentType"] == "image/png" and meta["result"]["sha256"]
    assert world.bedrock.calls[0]["body"]["prompt"] == "a cat astronaut, anime style"


def test_throttling_is_retried_through_the_queue_then_recorded(world: World) -> None:
    event = drop(world, "inbox/busy.png", prompt="x")
    world.bedrock.errors = ["ThrottlingException"] * 20
    first = run(event, receive_count=1)
    assert len(first["batchItemFailures"]) == 1
    assert "Contents" not in world.s3.list_objects_v2(Bucket=OUTPUT)
    last = run(event, receive_count=world.settings.max_receive_count)  # recorded, then on to the DLQ
    assert len(last["batchItemFailures"]) == 1
    meta = world.read_json(OUTPUT, "results/busy.png.json")
    assert meta["status"] == "FAILED" and meta["error"]["code"] == "model_throttled"
    world.bedrock.errors = []
    assert run(event, receive_count=1) == {"batchItemFailures": []}  # a redrive can still succeed
    assert world.read_json(OUTPUT, "results/busy.png.json")["status"] == "SUCCEEDED"


def test_partial_batch_failure_reports_only_the_failed_record(world: World) -> None:
    done = drop(world, "inbox/good.png", prompt="x")
    assert run(done) == {"batchItemFailures": []}
    world.bedrock.errors = ["ServiceUnavailableException"] * 3  # outlasts the adapter's attempts
    event = sqs_event(drop(world, "inbox/third.png", prompt="z"), done)
    out = worker.handler(event, FakeContext("img2img-unit-worker"))
    # The first record hit a 5xx and comes back; the second was already done (idempotent replay).
    assert [f["itemIdentifier"] for f in out["batchItemFailures"]] == [event["Records"][0]["messageId"]]


def test_async_api_job_runs_in_the_worker(world: World) -> None:
    request = {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(png_bytes()).decode()}
    response = api.handler(api_event("POST", "/v1/jobs", request), FakeContext())
    job_id = json.loads(response["body"])["job_id"]
    (message,) = world.queued()
    assert run(message["Body"]) == {"batchItemFailures": []}
    view = json.loads(api.handler(api_event("GET", f"/v1/jobs/{job_id}"), FakeContext())["body"])
    assert view["status"] == "SUCCEEDED"
    assert view["image"]["s3_uri"] == f"s3://{OUTPUT}/jobs/{job_id}/result.png"
    run(message["Body"], receive_count=2)
    assert len(world.bedrock.calls) == 1


def test_message_that_is_not_json_is_dropped(world: World) -> None:
    assert run("{{nope") == {"batchItemFailures": []}


def queued_message(world: World) -> dict[str, Any]:
    request = {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(png_bytes()).decode()}
    api.handler(api_event("POST", "/v1/jobs", request), FakeContext())
    (message,) = world.queued()
    return dict(json.loads(message["Body"]))


def test_a_forged_queued_job_goes_to_the_dead_letters_recording_nothing(world: World) -> None:
    forged = {**queued_message(world), "job_id": "f" * 32}  # a job no API door created
    out = run(json.dumps(forged), receive_count=world.settings.max_receive_count)
    assert len(out["batchItemFailures"]) == 1  # on to the dead-letter queue, where someone looks
    assert world.bedrock.calls == []
    assert json.loads(api.handler(api_event("GET", f"/v1/jobs/{'f' * 32}"), FakeContext())["body"])["error"]


def test_a_queued_job_whose_model_retired_since_ends_failed_at_once(world: World) -> None:
    message = {**queued_message(world), "model_id": "stability.stable-diffusion-xl-v1"}  # retired
    assert run(json.dumps(message)) == {"batchItemFailures": []}
    view = json.loads(api.handler(api_event("GET", f"/v1/jobs/{message['job_id']}"), FakeContext())["body"])
    assert view["status"] == "FAILED" and view["error"]["code"] == "model_unavailable"
    assert world.bedrock.calls == []


def test_the_worker_reads_its_model_read_timeout(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """IMG2IMG_MODEL_READ_TIMEOUT_SECONDS (the stack: the worker's timeout less the margin) is
    the worker's bedrock-runtime read timeout."""
    import boto3

    from img2img.config import Settings
    from img2img.handlers import wiring

    monkeypatch.setenv("IMG2IMG_MODEL_READ_TIMEOUT_SECONDS", "117")
    made: dict[str, Any] = {}
    real_client = boto3.session.Session.client

    def client(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        made[service] = kwargs.get("config")
        return real_client(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    wiring.build_service(Settings.from_environment(), sync=False)
    assert made["bedrock-runtime"].read_timeout == 117


def test_a_refused_job_event_is_counted_and_changes_nothing_about_the_job(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """PutEvents refused past its retries (the functions' role lost events:PutEvents): the job
    still succeeds with one model call, and the JobEventsUndelivered metric says so."""
    from botocore.awsrequest import AWSResponse

    from img2img.handlers import wiring

    refused = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized to PutEvents"}}
    client = wiring.get_service(sync=False).clients.events
    client.meta.events.register(
        "before-call.events.PutEvents",
        lambda params, **_: (AWSResponse(params["url"], 400, {}, None), refused),
    )
    out = run(drop(world, "inbox/quiet.png", prompt="x"))
    assert out == {"batchItemFailures": []} and len(world.bedrock.calls) == 1
    assert world.read_json(OUTPUT, "results/quiet.png.json")["status"] == "SUCCEEDED"
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(
        m.get("JobEventsUndelivered") == [1.0] or m.get("JobEventsUndelivered") == 1.0 for m in emitted
    )
