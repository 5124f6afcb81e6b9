"""Who the caller is, through the API handler: callers are named as API Gateway's authorizers
name them (requestContext.identity / authorizer.claims), a request without one is refused
before any work, and the principal S3 names as an image's dropper is the IAM caller the API
names. That callers see only their own (jobs, idempotency keys, uploads, manifests, queued
messages) is tested over the in-memory ports in tests/domain/test_callers.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from img2img.domain.caller import Caller
from img2img.handlers import api, worker
from tests.fakes import png_bytes
from tests.handlers.api_events import IAM_USER, OTHER_IAM_USER, FakeContext, api_event
from tests.handlers.sqs_events import DROPPER_ID, s3_notification, sqs_event
from tests.handlers.world import INPUT, World

pytestmark = pytest.mark.handlers
EVENTS = Path(__file__).resolve().parents[1] / "events"

# $context.identity.apiKeyId of a key-authorized request; the key itself is never used.
API_KEY_CALLER = {"apiKey": "s3cr3t-key-value-0123456789", "apiKeyId": "k1a2b3c4d5"}
OTHER_API_KEY_CALLER = {"apiKey": "an0ther-key-value-987654321", "apiKeyId": "z9y8x7w6v5"}
# A Cognito user pool authorizer puts the token's claims under requestContext.authorizer.
USER_POOL_SUB = "7d8ca528-4931-4254-9273-ea5ee853f271"


def call(
    method: str, path: str, body: Any = None, identity: dict[str, Any] | None = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    response = api.handler(api_event(method, path, body, identity=identity, **kw), FakeContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def request(**overrides: Any) -> dict[str, Any]:
    return {
        "text_prompts": [{"text": "a lighthouse"}],
        "init_image": base64.b64encode(png_bytes()).decode(),
        **overrides,
    }


def by_key(key: str) -> dict[str, Any]:
    return {"text_prompts": [{"text": "a lighthouse"}], "init_image_s3_key": key}


@pytest.mark.parametrize(
    ("identity", "authorizer", "expected"),
    [
        (API_KEY_CALLER, None, Caller("api_key", API_KEY_CALLER["apiKeyId"])),
        ({}, {"claims": {"sub": USER_POOL_SUB, "email": "a@example.com"}}, Caller("user", USER_POOL_SUB)),
        (IAM_USER, None, Caller("iam", IAM_USER["user"])),
    ],
    ids=["api_key", "user_pool", "iam"],
)
def test_each_authorizer_names_the_caller(
    world: World, identity: dict[str, Any], authorizer: dict[str, Any] | None, expected: Caller
) -> None:
    event = api_event("POST", "/v1/uploads", {"content_type": "image/png"}, identity=identity)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    payload = json.loads(api.handler(event, FakeContext())["body"])
    assert payload["init_image_s3_key"].startswith(expected.upload_prefix)


def test_the_cognito_authorizers_documented_event_names_the_user(world: World) -> None:
    """tests/events/apigw_get_job_cognito.json (sources in its .md): the claims API Gateway's
    Cognito user pools authorizer passes, as strings, with no AWS principal in identity."""
    documented = json.loads((EVENTS / "apigw_get_job_cognito.json").read_text())
    context = documented["requestContext"]
    event = api_event("POST", "/v1/uploads", {"content_type": "image/png"}, identity=context["identity"])
    event["requestContext"]["authorizer"] = context["authorizer"]
    payload = json.loads(api.handler(event, FakeContext())["body"])
    owner = Caller("user", context["authorizer"]["claims"]["sub"])
    assert payload["init_image_s3_key"].startswith(owner.upload_prefix)


@pytest.mark.parametrize("route", ["/v1/image-to-image", "/v1/jobs", "/v1/uploads", "/v1/jobs/abc"])
def test_a_request_without_a_caller_is_refused_before_any_work(world: World, route: str) -> None:
    """Only a stack whose methods lost their authorizer can send one: nothing runs."""
    method = "GET" if route == "/v1/jobs/abc" else "POST"
    payload_in = {"content_type": "image/png"} if route == "/v1/uploads" else request()
    status, payload = call(method, route, None if method == "GET" else payload_in, identity={})
    assert status == 403 and payload["error"]["code"] == "no_caller_identity"
    assert world.bedrock.calls == [] and world.queued() == []
    assert call("GET", "/v1/health", identity={})[0] == 200  # what needs no caller still answers


def test_an_s3_door_job_is_its_droppers_through_the_api(world: World) -> None:
    """S3 names the dropper as userIdentity.principalId = AWS:<id>; API Gateway names the same
    IAM principal as identity.user. The S3-door job is visible to that principal alone."""
    world.s3.put_object(Bucket=INPUT, Key="inbox/d.png", Body=png_bytes(), Metadata={"prompt": "x"})
    assert worker.handler(sqs_event(s3_notification(INPUT, "inbox/d.png")), FakeContext("w")) == {
        "batchItemFailures": []
    }
    meta = json.loads(world.s3.get_object(Bucket="out-bucket", Key="results/d.png.json")["Body"].read())
    dropper = {**IAM_USER, "user": DROPPER_ID, "caller": DROPPER_ID}
    status, view = call("GET", f"/v1/jobs/{meta['job_id']}", identity=dropper)
    assert status == 200 and view["caller"] == {"kind": "iam", "id": DROPPER_ID}
    assert call("GET", f"/v1/jobs/{meta['job_id']}", identity=OTHER_IAM_USER)[0] == 404
