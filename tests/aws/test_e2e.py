"""Both doors against a deployed stack (opt-in: `make e2e ENV=dev`). Each model call costs
cents: the suite makes three (sync, async, S3 door)."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import pytest

from tests.aws.conftest import Deployed, poll

pytestmark = pytest.mark.aws

TERMINAL = {"SUCCEEDED", "CONTENT_FILTERED", "FAILED"}


def sdxl_body(image: bytes, prompt: str) -> dict[str, Any]:
    return {
        "text_prompts": [{"text": prompt, "weight": 1.0}, {"text": "blurry, low quality", "weight": -1.0}],
        "init_image": base64.b64encode(image).decode(),
        "init_image_mode": "IMAGE_STRENGTH",
        "image_strength": 0.4,
        "cfg_scale": 7,
        "seed": 42,
        "steps": 30,
    }


def assert_is_image(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        picture.verify()


def test_health_answers_with_this_environment(deployed: Deployed) -> None:
    response = deployed.call("GET", "/v1/health")
    assert response.status_code == 200, response.text
    assert response.json()["environment"] == deployed.config.name


def test_models_lists_the_configured_default(deployed: Deployed) -> None:
    response = deployed.call("GET", "/v1/models")
    assert response.status_code == 200, response.text
    assert deployed.config.default_model_id in response.text


def test_unauthenticated_calls_are_refused(deployed: Deployed) -> None:
    response = deployed.call("GET", "/v1/health", sign=False)
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_sync_door_returns_an_sdxl_response(deployed: Deployed, source_png: bytes) -> None:
    response = deployed.call(
        "POST", "/v1/image-to-image", sdxl_body(source_png, "a watercolour lighthouse at dusk"), timeout=35
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == "success"
    (artifact,) = body["artifacts"]
    assert artifact["finishReason"] in {"SUCCESS", "CONTENT_FILTERED"}, body
    assert_is_image(base64.b64decode(artifact["base64"]))


def test_async_door_runs_a_job_to_completion(deployed: Deployed, source_png: bytes) -> None:
    submitted = deployed.call("POST", "/v1/jobs", sdxl_body(source_png, "an origami crane on a desk"))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        response = deployed.call("GET", f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view if view["status"] in TERMINAL else None

    view = poll(finished, timeout=300, what=f"job {job_id}")
    assert view["status"] in {"SUCCEEDED", "CONTENT_FILTERED"}, view
    # The caller as the stack's authorizer names them (domain/caller.py).
    assert view["caller"]["kind"] == ("iam" if deployed.config.api_auth == "iam" else "api_key"), view
    outputs = deployed.client("s3").list_objects_v2(
        Bucket=deployed.outputs["OutputBucketName"], Prefix=f"jobs/{job_id}/"
    )
    assert {o["Key"] for o in outputs.get("Contents", [])} >= {f"jobs/{job_id}/metadata.json"}


def test_s3_door_writes_result_and_metadata(deployed: Deployed, source_png: bytes) -> None:
    s3 = deployed.client("s3")
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    s3.put_object(
        Bucket=deployed.outputs["InputBucketName"],
        Key=f"inbox/{name}.png",
        Body=source_png,
        ContentType="image/png",
        Metadata={"prompt": "a pencil sketch of a fox", "seed": "7"},
    )
    output_bucket = deployed.outputs["OutputBucketName"]

    def results() -> set[str]:
        listing = s3.list_objects_v2(Bucket=output_bucket, Prefix=f"results/{name}")
        keys = {o["Key"] for o in listing.get("Contents", [])}
        return keys if f"results/{name}.png.json" in keys else set()

    keys = poll(results, timeout=300, what=f"results/{name}.png.json in {output_bucket}")
    metadata = json.loads(s3.get_object(Bucket=output_bucket, Key=f"results/{name}.png.json")["Body"].read())
    assert metadata["status"] in {"SUCCEEDED", "CONTENT_FILTERED"}, metadata
    (image_key,) = keys - {f"results/{name}.png.json"}
    assert_is_image(s3.get_object(Bucket=output_bucket, Key=image_key)["Body"].read())
    if deployed.config.api_auth == "iam":
        # What cannot be checked offline: S3 names the dropper (userIdentity.principalId =
        # AWS:<id>) as API Gateway names the same signer ($context.identity.user), so the job
        # is the dropper's through the API too (domain/caller.py).
        job = deployed.call("GET", f"/v1/jobs/{metadata['job_id']}")
        assert job.status_code == 200, job.text
        user_id = deployed.client("sts").get_caller_identity()["UserId"]
        assert job.json()["caller"] == {"kind": "iam", "id": user_id}, job.json()


def test_nothing_is_dead_lettered(deployed: Deployed) -> None:
    attributes = deployed.client("sqs").get_queue_attributes(
        QueueUrl=deployed.outputs["DeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
