"""The S3 door and async jobs through the worker's real entry point: SQS events in, result
images and metadata JSON in the output bucket, partial batch failures out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from img2img.handlers import api, worker
from tests.fakes import png_bytes
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.sqs_events import DROPPER_UPLOADS, s3_notification, sqs_event
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
    assert meta["status"] == "SUCCEEDED" and meta["door"] == "s3"
    assert meta["source"]["key"] == "inbox/trips/my cat+1.png"
    assert meta["result"]["key"] == "results/trips/my cat+1.png.png" and meta["result"]["seed"] == 42
    assert world.bedrock.calls[0]["body"]["prompt"] == "a cat astronaut, anime style"


def test_same_event_twice_costs_one_model_call(world: World) -> None:
    event = drop(world, "inbox/dup.png", prompt="twice")
    run(event)
    run(event, receive_count=2)
    assert len(world.bedrock.calls) == 1


def test_image_without_prompt_gets_failed_metadata_and_no_retry(world: World) -> None:
    out = run(drop(world, "inbox/bare.png"))
    assert out == {"batchItemFailures": []}
    meta = world.read_json(OUTPUT, "results/bare.png.json")
    assert meta["status"] == "FAILED" and meta["error"]["code"] == "missing_parameters"
    assert "--metadata prompt=" in meta["error"]["message"]
    assert world.bedrock.calls == []


def test_metadata_that_is_not_a_number_names_the_key(world: World) -> None:
    run(drop(world, "inbox/bad.png", prompt="x", **{"cfg-scale": "lots"}))
    meta = world.read_json(OUTPUT, "results/bad.png.json")
    assert meta["error"]["code"] == "invalid_request"
    assert meta["error"]["details"][0]["field"] == "x-amz-meta-cfg-scale"


def test_not_an_image_fails_without_model_call(world: World) -> None:
    run(drop(world, "inbox/notes.png", b"just text", prompt="x"))
    meta = world.read_json(OUTPUT, "results/notes.png.json")
    assert meta["status"] == "FAILED" and meta["error"]["code"] == "unsupported_image"
    assert world.bedrock.calls == []


def test_manifest_runs_each_named_image_and_reports_missing_ones(world: World) -> None:
    world.s3.put_object(Bucket=INPUT, Key=f"{DROPPER_UPLOADS}a.png", Body=png_bytes())
    manifest = {
        "text_prompts": [{"text": "watercolour"}],
        "init_image_s3_keys": [f"{DROPPER_UPLOADS}a.png", f"{DROPPER_UPLOADS}missing.png"],
    }
    out = run(drop(world, "inbox/batch.json", json.dumps(manifest).encode()))
    assert out == {"batchItemFailures": []}
    assert (
        world.read_json(OUTPUT, f"manifest-results/batch.json/{DROPPER_UPLOADS}a.png.json")["status"]
        == "SUCCEEDED"
    )
    missing = world.read_json(OUTPUT, f"manifest-results/batch.json/{DROPPER_UPLOADS}missing.png.json")
    assert missing["status"] == "FAILED" and missing["error"]["code"] == "source_not_found"
    assert len(world.bedrock.calls) == 1


def test_test_event_and_objects_outside_inbox_are_ignored(world: World) -> None:
    out = run(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": INPUT},
        s3_notification(INPUT, "api/x.png"),
    )
    assert out == {"batchItemFailures": []}
    assert "Contents" not in world.s3.list_objects_v2(Bucket=OUTPUT)


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


def test_manifest_dropped_again_runs_again(world: World) -> None:
    world.s3.put_object(Bucket=INPUT, Key=f"{DROPPER_UPLOADS}m.png", Body=png_bytes())
    manifest = json.dumps(
        {"text_prompts": [{"text": "x"}], "init_image_s3_key": f"{DROPPER_UPLOADS}m.png"}
    ).encode()
    run(drop(world, "inbox/m.json", manifest))
    run(drop(world, "inbox/m.json", manifest))  # a new version of the manifest: the user asked again
    assert len(world.bedrock.calls) == 2


def test_one_retryable_failure_does_not_stop_the_rest_of_a_manifest(world: World) -> None:
    for name in ("a", "b", "c"):
        world.s3.put_object(Bucket=INPUT, Key=f"{DROPPER_UPLOADS}{name}.png", Body=png_bytes())
    world.bedrock.errors = ["ThrottlingException"] * 3  # the first image only, past the adapter's attempts
    manifest = {
        "text_prompts": [{"text": "x"}],
        "init_image_s3_keys": [f"{DROPPER_UPLOADS}{n}.png" for n in "abc"],
    }
    out = run(drop(world, "inbox/abc.json", json.dumps(manifest).encode()))
    assert len(out["batchItemFailures"]) == 1  # comes back for a
    assert (
        world.read_json(OUTPUT, f"manifest-results/abc.json/{DROPPER_UPLOADS}b.png.json")["status"]
        == "SUCCEEDED"
    )
    assert (
        world.read_json(OUTPUT, f"manifest-results/abc.json/{DROPPER_UPLOADS}c.png.json")["status"]
        == "SUCCEEDED"
    )


def test_out_of_range_metadata_names_the_metadata_key(world: World) -> None:
    run(drop(world, "inbox/range.png", prompt="x", **{"cfg-scale": "99", "style-preset": "watercolour"}))
    meta = world.read_json(OUTPUT, "results/range.png.json")
    assert {d["field"] for d in meta["error"]["details"]} == {
        "x-amz-meta-cfg-scale",
        "x-amz-meta-style-preset",
    }


def queued_message(world: World) -> dict[str, Any]:
    request = {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(png_bytes()).decode()}
    api.handler(api_event("POST", "/v1/jobs", request), FakeContext())
    (message,) = world.queued()
    return dict(json.loads(message["Body"]))


def test_a_queued_job_writes_where_its_id_says_whatever_the_message_claims(world: World) -> None:
    forged = queued_message(world)
    forged["output"] = {
        "bucket": OUTPUT,
        "stem": "results/someone-else",
        "metadata_key": "results/someone-else.json",
    }
    assert run(json.dumps(forged)) == {"batchItemFailures": []}
    assert world.read_json(OUTPUT, f"jobs/{forged['job_id']}/metadata.json")["status"] == "SUCCEEDED"
    listed = [o["Key"] for o in world.s3.list_objects_v2(Bucket=OUTPUT).get("Contents", [])]
    assert not any(key.startswith("results/") for key in listed)


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "stability.stable-image-core-v1:1"},  # live, but not enabled here
        {"model_id": "stability.stable-diffusion-xl-v1"},  # retired
        {"job_id": "../results/x"},
    ],
    ids=["model_not_enabled", "model_retired", "job_id_not_an_id"],
)
def test_a_queued_job_the_api_door_would_refuse_costs_no_call(world: World, change: dict[str, str]) -> None:
    forged = {**queued_message(world), **change}
    out = run(json.dumps(forged), receive_count=world.settings.max_receive_count)
    assert len(out["batchItemFailures"]) == 1  # on to the dead-letter queue, where someone looks
    assert world.bedrock.calls == []
