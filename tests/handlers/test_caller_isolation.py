"""Callers see only their own: a second caller gets 404 or 400 for everything of the first's
(jobs, idempotency keys, uploads), and a refusal costs no model call and reveals nothing (a key
of someone else's answers the same whether it exists or not). Callers are named as API
Gateway's authorizers name them (requestContext.identity / authorizer.claims)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from img2img.domain.caller import Caller
from img2img.handlers import api, worker
from tests.fakes import png_bytes
from tests.handlers.api_events import IAM_USER, OTHER_IAM_USER, OWN_UPLOADS, FakeContext, api_event
from tests.handlers.sqs_events import DROPPER_ID, s3_notification, sqs_event
from tests.handlers.world import INPUT, World

pytestmark = pytest.mark.handlers

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
    "other", [OTHER_IAM_USER, API_KEY_CALLER], ids=["another_iam_principal", "an_api_key"]
)
def test_another_caller_cannot_read_a_job(world: World, other: dict[str, Any]) -> None:
    status, sync = call("POST", "/v1/image-to-image", request())
    assert status == 200
    status, queued = call("POST", "/v1/jobs", request())
    assert status == 202
    for job_id in (sync["job_id"], queued["job_id"]):
        assert call("GET", f"/v1/jobs/{job_id}")[0] == 200  # its owner
        status, payload = call("GET", f"/v1/jobs/{job_id}", identity=other)
        # Word for word what a job that does not exist answers.
        assert status == 404 and payload["error"]["code"] == "job_not_found"
        assert payload["error"]["message"] == f"no job {job_id}"


def test_a_job_record_names_its_caller(world: World) -> None:
    _, queued = call("POST", "/v1/jobs", request())
    _, view = call("GET", f"/v1/jobs/{queued['job_id']}")
    assert view["caller"] == {"kind": "iam", "id": IAM_USER["user"]}


def test_idempotency_keys_are_per_caller(world: World) -> None:
    """The same key from two callers is two requests: neither replays nor conflicts with the
    other's, and each is billed once."""
    key = {"Idempotency-Key": "order-42"}
    status, first = call("POST", "/v1/image-to-image", request(), headers=key)
    assert status == 200
    # Another body under the same key would be a 409 for the first caller; not for another one.
    status, second = call("POST", "/v1/image-to-image", request(seed=9), headers=key, identity=OTHER_IAM_USER)
    assert status == 200 and second["job_id"] != first["job_id"]
    status, again = call("POST", "/v1/image-to-image", request(seed=9), headers=key, identity=OTHER_IAM_USER)
    assert status == 200 and again["job_id"] == second["job_id"]
    assert len(world.bedrock.calls) == 2
    status, payload = call("POST", "/v1/jobs", request(), headers=key, identity=OTHER_API_KEY_CALLER)
    assert status == 202 and payload["job_id"] not in (first["job_id"], second["job_id"])


def test_an_upload_ticket_is_under_its_callers_own_prefix(world: World) -> None:
    status, mine = call("POST", "/v1/uploads", {"content_type": "image/png"})
    assert status == 201 and mine["init_image_s3_key"].startswith(OWN_UPLOADS)
    _, theirs = call("POST", "/v1/uploads", {"content_type": "image/png"}, identity=OTHER_IAM_USER)
    assert not theirs["init_image_s3_key"].startswith(OWN_UPLOADS)
    assert theirs["init_image_s3_key"].startswith(Caller("iam", OTHER_IAM_USER["user"]).upload_prefix)


@pytest.mark.parametrize("route", ["/v1/image-to-image", "/v1/jobs"])
def test_another_callers_upload_is_refused_alike_whether_it_exists_or_not(world: World, route: str) -> None:
    mine = f"{OWN_UPLOADS}cat.png"
    world.s3.put_object(Bucket=INPUT, Key=mine, Body=png_bytes())
    answers = []
    for key in (mine, f"{OWN_UPLOADS}missing.png", "inbox/dropped.png", f"api/{'0' * 32}/source.png"):
        status, payload = call("POST", route, by_key(key), identity=OTHER_IAM_USER)
        assert status == 400 and payload["error"]["details"][0]["field"] == "init_image_s3_key"
        answers.append(payload["error"])
    assert all(answer == answers[0] for answer in answers)  # nothing tells which keys exist
    assert world.bedrock.calls == [] and world.queued() == []
    assert call("POST", route, by_key(mine))[0] in (200, 202)  # its owner runs it


def test_inbox_sources_are_not_runnable_through_the_api(world: World) -> None:
    """Images dropped under inbox/ belong to whoever dropped them; the api role cannot read
    there at all (tests/infra checks the policy)."""
    world.s3.put_object(Bucket=INPUT, Key="inbox/someone.png", Body=png_bytes())
    status, payload = call("POST", "/v1/image-to-image", by_key("inbox/someone.png"))
    assert status == 400 and payload["error"]["code"] == "invalid_request"
    assert world.bedrock.calls == []


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


def test_a_manifest_cannot_name_another_callers_upload(world: World) -> None:
    """A manifest runs inbox/ images and its dropper's own uploads, nobody else's."""
    theirs = f"{Caller('iam', OTHER_IAM_USER['user']).upload_prefix}private.png"
    world.s3.put_object(Bucket=INPUT, Key=theirs, Body=png_bytes())
    manifest = json.dumps({"text_prompts": [{"text": "x"}], "init_image_s3_key": theirs}).encode()
    world.s3.put_object(Bucket=INPUT, Key="inbox/steal.json", Body=manifest)
    worker.handler(sqs_event(s3_notification(INPUT, "inbox/steal.json")), FakeContext("w"))
    meta = json.loads(world.s3.get_object(Bucket="out-bucket", Key="results/steal.json.json")["Body"].read())
    assert meta["status"] == "FAILED" and meta["error"]["details"][0]["field"] == "init_image_s3_key"
    assert world.bedrock.calls == []


def test_a_queued_message_naming_another_callers_source_is_refused(world: World) -> None:
    """Whoever may send to the queue could write a message; the worker checks the source is the
    named caller's own before reading it. A forged message is no user's job: it fails and, after
    its receives, waits in the dead-letter queue for an operator."""
    theirs = f"{Caller('iam', OTHER_IAM_USER['user']).upload_prefix}private.png"
    world.s3.put_object(Bucket=INPUT, Key=theirs, Body=png_bytes())
    call("POST", "/v1/jobs", request())
    (message,) = world.queued()
    forged = json.loads(message["Body"])
    forged["request"]["init_image_s3_key"] = theirs
    forged["job_id"] = "f" * 32
    event = sqs_event(json.dumps(forged))
    failed = worker.handler(event, FakeContext("w"))["batchItemFailures"]
    assert failed == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert world.bedrock.calls == []
    assert call("GET", f"/v1/jobs/{'f' * 32}")[0] == 404  # nothing was recorded for it


@pytest.mark.parametrize("named", ["sources/a.png", "own_upload"])
def test_a_manifest_names_sources_or_its_droppers_own_uploads(world: World, named: str) -> None:
    from tests.handlers.sqs_events import DROPPER_UPLOADS

    key = f"{DROPPER_UPLOADS}a.png" if named == "own_upload" else named
    world.s3.put_object(Bucket=INPUT, Key=key, Body=png_bytes())
    manifest = json.dumps({"text_prompts": [{"text": "x"}], "init_image_s3_key": key}).encode()
    world.s3.put_object(Bucket=INPUT, Key="inbox/mine.json", Body=manifest)
    worker.handler(sqs_event(s3_notification(INPUT, "inbox/mine.json")), FakeContext("w"))
    meta = json.loads(
        world.s3.get_object(Bucket="out-bucket", Key=f"manifest-results/mine.json/{key}.json")["Body"].read()
    )
    assert meta["status"] == "SUCCEEDED" and len(world.bedrock.calls) == 1
