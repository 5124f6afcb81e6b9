"""The API door through its real entry point: API Gateway proxy events in, HTTP responses out,
with moto behind S3, DynamoDB and SQS and a fake Bedrock client. What the use cases answer
(metadata, replays, refusals, callers) is tested over the in-memory ports in
tests/domain/test_api_door.py; here what only the handler and the wiring do: routes, statuses,
headers, query strings, Powertools' validation, idempotency, logging and metrics."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from img2img.handlers import api
from tests.fakes import png_bytes
from tests.handlers.api_events import IAM_USER, OWN_UPLOADS, FakeContext, api_event
from tests.handlers.world import INPUT, OUTPUT, World

pytestmark = pytest.mark.handlers


def call(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.handler(api_event(method, path, body, **kw), FakeContext())
    headers = {**(response.get("headers") or {})}
    headers.update({k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()})
    payload = json.loads(response["body"]) if response.get("body") else {}
    return response["statusCode"], payload, headers


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "text_prompts": [{"text": "A space ship."}],
        "init_image": base64.b64encode(png_bytes()).decode(),
        "style_preset": "isometric",
    }
    base.update(overrides)
    return base


def test_sync_answers_bedrock_shape_and_stores_result(world: World) -> None:
    status, payload, _ = call("POST", "/v1/image-to-image", body())
    assert status == 200
    assert payload["result"] == "success" and payload["status"] == "SUCCEEDED"
    artifact = payload["artifacts"][0]
    assert artifact["finishReason"] == "SUCCESS" and artifact["seed"] == 1234
    image = base64.b64decode(artifact["base64"])
    job_id = payload["job_id"]
    assert payload["image"]["s3_uri"] == f"s3://{OUTPUT}/jobs/{job_id}/result.png"
    assert world.s3.get_object(Bucket=OUTPUT, Key=f"jobs/{job_id}/result.png")["Body"].read() == image
    assert world.read_json(OUTPUT, f"jobs/{job_id}/metadata.json")["status"] == "SUCCEEDED"
    assert [c["modelId"] for c in world.bedrock.calls] == ["stability.sd3-5-large-v1:0"]


def test_return_url_leaves_out_base64(world: World) -> None:
    status, payload, _ = call("POST", "/v1/image-to-image", body(), query={"return": "url"})
    assert status == 200 and "base64" not in payload["artifacts"][0]
    assert payload["image"]["url"].startswith("https://") and "X-Amz-Signature=" in payload["image"]["url"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cfg_scale": 36}, "cfg_scale"),
        ({"samples": 2}, "samples"),
        ({"steps": "30"}, "steps"),
        ({"unknown": 1}, "unknown"),
        ({"text_prompts": [{"text": "x", "weight": -1.0}]}, "text_prompts"),
    ],
)
def test_bodies_the_contract_refuses_are_400_naming_the_field_and_cost_no_model_call(
    world: World, overrides: dict[str, Any], field: str
) -> None:
    status, payload, _ = call("POST", "/v1/image-to-image", body(**overrides))
    assert status == 400, payload
    assert payload["error"]["code"] == "invalid_request"
    assert field in [d["field"] for d in payload["error"]["details"]]
    assert world.bedrock.calls == []


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("ThrottlingException", 429, "model_throttled"),
        ("ModelTimeoutException", 504, "model_timeout"),
        ("ResourceNotFoundException", 503, "model_unavailable"),
        ("ServiceUnavailableException", 503, "model_busy"),
    ],
)
def test_bedrock_errors_map_to_documented_statuses(world: World, error: str, status: int, code: str) -> None:
    world.bedrock.errors = [error] * 3
    got, payload, headers = call("POST", "/v1/image-to-image", body())
    assert got == status and payload["error"]["code"] == code and payload["job_id"]
    assert headers.get("Retry-After") == {429: "5", 503: "30" if code == "model_busy" else None}.get(status)
    if status == 504:
        assert "/v1/jobs" in payload["error"]["message"]
    if code == "model_unavailable":
        assert "cdk.json" in payload["error"]["message"]
    assert len(world.bedrock.calls) == 1  # the sync route makes one attempt


def test_idempotency_key_replays_without_a_second_model_call(world: World) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = call("POST", "/v1/image-to-image", body(), headers=headers)
    second = call("POST", "/v1/image-to-image", body(), headers=headers)
    assert first[0] == second[0] == 200
    assert first[1]["job_id"] == second[1]["job_id"]
    assert first[1]["artifacts"] == second[1]["artifacts"]
    assert len(world.bedrock.calls) == 1
    status, payload, _ = call(
        "POST", "/v1/image-to-image", body(seed=7), headers={"idempotency-key": "abc-123"}
    )
    assert status == 409 and payload["error"]["code"] == "idempotency_conflict"


def test_async_job_is_queued_then_visible(world: World) -> None:
    status, payload, headers = call("POST", "/v1/jobs", body())
    assert status == 202 and payload["status"] == "QUEUED"
    # On the execute-api host the stage leads the path (api_events.STAGE is named v1).
    assert headers["Location"] == payload["links"]["self"] == f"/v1/v1/jobs/{payload['job_id']}"
    (message,) = world.queued()
    queued = json.loads(message["Body"])
    assert queued["kind"] == "api_job" and queued["job_id"] == payload["job_id"]
    status, job, _ = call("GET", f"/v1/jobs/{payload['job_id']}")
    assert status == 200 and job["status"] == "QUEUED"
    assert world.bedrock.calls == []
    status, missing, _ = call("GET", "/v1/jobs/nope")
    assert status == 404 and missing["error"]["code"] == "job_not_found"


def test_uploads_answer_a_presigned_post(world: World) -> None:
    status, payload, _ = call("POST", "/v1/uploads", {"content_type": "image/jpeg"})
    assert status == 201
    assert payload["init_image_s3_key"].startswith(OWN_UPLOADS) and payload["init_image_s3_key"].endswith(
        ".jpg"
    )
    policy = json.loads(base64.b64decode(payload["upload"]["fields"]["policy"]))
    assert ["content-length-range", 1, world.settings.upload_cap] in policy["conditions"]
    status, payload, _ = call("POST", "/v1/uploads", {"content_type": "image/png", "size": 1})
    assert status == 400 and payload["error"]["details"][0]["field"] == "size"


def test_models_health_openapi_docs(world: World) -> None:
    status, models, _ = call("GET", "/v1/models")
    assert status == 200 and models["default"] == "stability.sd3-5-large-v1:0"
    assert {m["engine"] for m in models["models"]} == {"sd3", "ultra", "control-structure"}
    assert models["fallbacks"] == []
    assert call("GET", "/v1/health")[1]["status"] == "ok"
    status, spec, _ = call("GET", "/v1/openapi.json")
    assert status == 200
    assert {"/v1/image-to-image", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/uploads", "/v1/models"} <= set(
        spec["paths"]
    )
    docs = api.handler(api_event("GET", "/v1/docs"), FakeContext())
    assert docs["statusCode"] == 200 and "swagger" in docs["body"].lower()


def test_swaggers_example_body_is_a_request_both_routes_run(world: World) -> None:
    """What "Try it out" sends on the two image routes: the spec's example, run as it is."""
    spec = json.loads(api.handler(api_event("GET", "/v1/openapi.json"), FakeContext())["body"])
    for path, ok in (("/v1/image-to-image", 200), ("/v1/jobs", 202)):
        media = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        example = media["examples"]["sample"]["value"]
        status, payload, _ = call("POST", path, example)
        assert status == ok, payload


# What Swagger UI makes up from the schema when a route has no example: wrong in eight fields,
# field rules and rules between fields alike.
SCHEMA_MADE_BODY = {
    "text_prompts": [{"text": "string", "weight": 0}],
    "init_image": "string",
    "init_image_s3_key": "string",
    "init_image_mode": "IMAGE_STRENGTH",
    "image_strength": 0,
    "step_schedule_start": 0,
    "step_schedule_end": 0,
    "cfg_scale": 0,
    "clip_guidance_preset": "FAST_BLUE",
    "sampler": "DDIM",
    "samples": 0,
    "seed": 0,
    "steps": 0,
}


@pytest.mark.parametrize("path", ["/v1/image-to-image", "/v1/jobs"])
def test_every_field_error_comes_back_in_one_answer(world: World, path: str) -> None:
    status, payload, _ = call("POST", path, SCHEMA_MADE_BODY)
    assert status == 400
    fields = {d["field"] for d in payload["error"]["details"]}
    assert fields == {
        "samples",
        "steps",
        "init_image_s3_key",
        "text_prompts",
        "init_image",
        "step_schedule_start",
        "step_schedule_end",
        "clip_guidance_preset",
    }, payload


def test_unknown_route_is_404_in_error_shape(world: World) -> None:
    status, payload, _ = call("GET", "/v1/nothing")
    assert status == 404 and payload["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/v1/jobs", "POST"), ("DELETE", "/v1/jobs/abc", "GET"), ("PUT", "/v1/image-to-image", "POST")],
)
def test_a_wrong_method_is_405_naming_the_allowed_ones(
    world: World, method: str, path: str, allow: str
) -> None:
    status, payload, headers = call(method, path)
    assert (status, payload["error"]["code"], headers["Allow"]) == (405, "method_not_allowed", allow)
    assert allow in payload["error"]["message"]


def _emitted_metrics(out: str) -> set[str]:
    names: set[str] = set()
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            blob = json.loads(line)
            names |= {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            assert blob["environment"] == "unit"
    return names


def test_metrics_count_model_failures_but_not_user_errors(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    call("POST", "/v1/image-to-image", body(init_image=base64.b64encode(b"hello").decode()))
    assert "ModelFailures" not in _emitted_metrics(capsys.readouterr().out)
    world.bedrock.errors = ["ModelErrorException"]
    call("POST", "/v1/image-to-image", body())
    assert "ModelFailures" in _emitted_metrics(capsys.readouterr().out)
    call("POST", "/v1/image-to-image", body())
    assert "JobsSucceeded" in _emitted_metrics(capsys.readouterr().out)


@pytest.mark.parametrize("raw", ['{"seed": ' + "1" * 5000 + "}", "[" * 100_000 + "]" * 100_000, "{not json"])
def test_unreadable_json_is_a_400_naming_the_body(world: World, raw: str) -> None:
    status, payload, _ = call("POST", "/v1/image-to-image", raw_body=raw)
    assert status == 400 and payload["error"]["details"][0]["field"] == "body"


def test_a_sync_request_out_of_time_is_a_504_naming_its_recorded_job(world: World) -> None:
    event = api_event("POST", "/v1/image-to-image", body())
    response = api.handler(event, FakeContext(remaining_ms=3_500))  # less than the 3 s reserve + 1
    payload = json.loads(response["body"])
    assert response["statusCode"] == 504 and payload["error"]["code"] == "model_timeout"
    assert payload["job_id"] and world.bedrock.calls == []


def test_a_5xx_names_its_request_id_and_keeps_internals_in_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """S3 refusing a write: the caller reads what failed and a request id, never the bucket's
    name or the SDK's text; the log line has both."""
    world.s3.delete_bucket(Bucket=INPUT)  # every write of the inline source now fails
    context = FakeContext()
    response = api.handler(api_event("POST", "/v1/image-to-image", body()), context)
    payload = json.loads(response["body"])
    assert response["statusCode"] == 500 and payload["error"]["code"] == "storage_error"
    assert payload["request_id"] == context.aws_request_id
    assert INPUT not in response["body"] and "NoSuchBucket" not in response["body"]
    [record] = [r for r in caplog.records if r.getMessage() == "request failed"]
    assert INPUT in record.internal and "NoSuchBucket" in record.internal  # type: ignore[attr-defined]


def test_model_access_denied_keeps_bedrocks_arns_out_of_the_answer(world: World) -> None:
    world.bedrock.errors = ["AccessDeniedException"]
    response = api.handler(api_event("POST", "/v1/image-to-image", body()), FakeContext())
    payload = json.loads(response["body"])
    assert response["statusCode"] == 503 and payload["error"]["code"] == "model_unavailable"
    assert (
        "fake AccessDeniedException" not in response["body"]
        and "make enable-models" in payload["error"]["message"]
    )


@pytest.mark.parametrize(
    ("method", "path", "payload", "headers", "message", "field"),
    [
        ("GET", "/v1/jobs/" + "a" * 65, None, {}, "the request's path is not valid", "path.job_id"),
        (
            "POST",
            "/v1/image-to-image",
            {"text_prompts": [{"text": "x"}], "init_image": "eA=="},
            {"Idempotency-Key": "k" * 300},
            "the request's header is not valid",
            "header.idempotency-key",
        ),
        ("POST", "/v1/uploads", {"content_type": 5}, {}, "the request body is not valid", "content_type"),
        (
            "POST",
            "/v1/jobs",
            {"cfg_scale": 99},
            {},
            "the request is not a valid SDXL image-to-image body",
            None,
        ),
    ],
    ids=["path", "header", "upload_body", "sdxl_body"],
)
def test_a_400_says_which_part_of_the_request_is_wrong(
    world: World,
    method: str,
    path: str,
    payload: Any,
    headers: dict[str, str],
    message: str,
    field: str | None,
) -> None:
    status, answer, _ = call(method, path, payload, headers=headers)
    assert status == 400 and answer["error"]["message"] == message
    assert field is None or field in {d["field"] for d in answer["error"]["details"]}


EVENTS = Path(__file__).resolve().parents[1] / "events"


def recorded(name: str) -> dict[str, Any]:
    """A recorded deployed-shape event (stage dev, requestContext.path /dev/...), as IAM_USER."""
    event = json.loads((EVENTS / name).read_text())
    event["requestContext"]["identity"].update(IAM_USER)
    return event


def test_links_and_location_carry_the_stage_of_a_deployed_url(world: World) -> None:
    response = api.handler(recorded("apigw_post_jobs.json"), FakeContext())
    payload = json.loads(response["body"])
    assert response["statusCode"] == 202
    location = (response.get("headers") or {}).get("Location") or response["multiValueHeaders"]["Location"][0]
    assert location == payload["links"]["self"] == f"/dev/v1/jobs/{payload['job_id']}"


def test_the_sync_budget_counts_from_api_gateways_receipt(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request API Gateway received 5 s before the function ran (a cold start): of the
    invocation's 29 s, 24 are left for the sync route."""
    seen: list[float] = []

    def run_now(*args: Any, time_left: Any, **kwargs: Any) -> Any:
        seen.append(time_left())
        raise api.InvalidRequest("stop here")

    monkeypatch.setattr(api._service().api, "run_now", run_now)
    event = recorded("apigw_post_image_to_image.json")
    event["requestContext"]["requestTimeEpoch"] = int((time.time() - 5) * 1000)
    assert api.handler(event, FakeContext(remaining_ms=29_000))["statusCode"] == 400
    assert 23.5 < seen[0] <= 24.0
