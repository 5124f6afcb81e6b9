"""The REST API: exactly the contract's routes, all proxied to the api function, auth on every
method, request validation, stage throttling, logging and tracing, the sync timeout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from infra.api import ROUTES
from tests.infra.conftest import OPTED_IN, Synth
from tests.infra.templates import by_type, render

pytestmark = pytest.mark.infra


def resource_paths(s: Synth) -> dict[str, str]:
    """logical id of every API resource (and the root) -> its path."""
    api_id = s.logical_id(s.stack.api.rest_api)
    resources = by_type(s.template, "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(parent: Any) -> str:
        if parent == {"Fn::GetAtt": [api_id, "RootResourceId"]}:
            return ""
        logical_id = parent["Ref"]
        props = resources[logical_id]["Properties"]
        return f"{path_of(props['ParentId'])}/{props['PathPart']}"

    for logical_id in resources:
        paths[logical_id] = path_of({"Ref": logical_id})
    return paths


def methods(s: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    paths = resource_paths(s)
    found = {}
    for method in by_type(s.template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        found[(props["HttpMethod"], path)] = props
    return found


def stage(s: Synth) -> dict[str, Any]:
    ((_, resource),) = by_type(s.template, "AWS::ApiGateway::Stage").items()
    return dict(resource["Properties"])


def test_exactly_the_contract_routes(env_synth: Synth) -> None:
    assert set(methods(env_synth)) == set(ROUTES)
    assert set(ROUTES) == {
        ("GET", "/"),
        ("POST", "/v1/image-to-image"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("POST", "/v1/uploads"),
        ("GET", "/v1/models"),
        ("GET", "/v1/health"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/docs"),
        ("GET", "/v1/auth-config"),
    }


def test_every_route_is_a_lambda_proxy_to_the_api_function(env_synth: Synth) -> None:
    functions = env_synth.stack.functions
    if env_synth.config.snapstart:  # its `live` alias: the snapshotted version, never $LATEST
        target = f"/functions/<{env_synth.logical_id(functions.api_target)}>/invocations"
    else:
        target = f"<{env_synth.logical_id(functions.api)}.Arn>"
    for route, props in methods(env_synth).items():
        integration = props["Integration"]
        assert (integration["Type"], integration["IntegrationHttpMethod"]) == ("AWS_PROXY", "POST"), route
        assert target in render(integration["Uri"]), route


def test_the_sync_timeout_is_the_api_functions_timeout(env_synth: Synth) -> None:
    s = env_synth
    timeout_ms = s.config.api_timeout_seconds * 1000
    assert methods(s)[("POST", "/v1/image-to-image")]["Integration"]["TimeoutInMillis"] == timeout_ms
    assert {p["Integration"]["TimeoutInMillis"] for p in methods(s).values()} == {timeout_ms}
    api_fn = s.template["Resources"][s.logical_id(s.stack.functions.api)]["Properties"]
    assert api_fn["Timeout"] * 1000 == timeout_ms <= 29000


def test_every_method_requires_the_configured_auth(env_synth: Synth) -> None:
    for route, props in methods(env_synth).items():
        if env_synth.config.api_auth == "iam":
            assert props["AuthorizationType"] == "AWS_IAM", route
            assert props.get("ApiKeyRequired") in (None, False), route
        else:
            assert props["AuthorizationType"] == "NONE" and props["ApiKeyRequired"] is True, route


def test_api_key_mode_has_a_usage_plan_and_iam_mode_has_none(env_synth: Synth) -> None:
    s = env_synth
    plans = by_type(s.template, "AWS::ApiGateway::UsagePlan")
    keys = by_type(s.template, "AWS::ApiGateway::ApiKey")
    if s.config.api_auth == "iam":
        assert not plans and not keys and "ApiKeyId" not in s.template["Outputs"]
        return
    ((_, plan),) = plans.items()
    props = plan["Properties"]
    assert props["Throttle"] == {
        "RateLimit": s.config.api_throttle_rate_limit,
        "BurstLimit": s.config.api_throttle_burst_limit,
    }
    assert props["Quota"] == {"Limit": s.config.api_key_quota_per_day, "Period": "DAY"}
    assert props["ApiStages"][0]["Stage"] == {"Ref": s.logical_id(s.stack.api.rest_api.deployment_stage)}
    # One key per caller, each in the plan (its throttle and quota are per key).
    names = {key["Properties"]["Name"]: key_id for key_id, key in keys.items()}
    assert list(names) == [f"{s.config.stack_name}-{caller}" for caller in s.config.api_key_callers]
    links = by_type(s.template, "AWS::ApiGateway::UsagePlanKey").values()
    assert sorted(link["Properties"]["KeyId"]["Ref"] for link in links) == sorted(names.values())
    first = names[f"{s.config.stack_name}-{s.config.api_key_callers[0]}"]
    assert s.template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": first}


def test_requests_are_validated(env_synth: Synth) -> None:
    s = env_synth
    ((validator_id, validator),) = by_type(s.template, "AWS::ApiGateway::RequestValidator").items()
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True
    models = {k: r["Properties"] for k, r in by_type(s.template, "AWS::ApiGateway::Model").items()}
    found = methods(s)
    for route, props in found.items():
        assert props["RequestValidatorId"] == {"Ref": validator_id}, route
    for route in (("POST", "/v1/image-to-image"), ("POST", "/v1/jobs")):
        model = models[found[route]["RequestModels"]["application/json"]["Ref"]]
        assert model["Schema"]["type"] == "object" and model["Schema"]["required"] == ["text_prompts"]
        prompts = model["Schema"]["properties"]["text_prompts"]
        assert prompts["minItems"] == 1
        # The request model's own caps (tests/corpus has the 400s they give).
        assert prompts["maxItems"] == 20 and prompts["items"]["properties"]["text"]["maxLength"] == 2000
    upload_model = models[found[("POST", "/v1/uploads")]["RequestModels"]["application/json"]["Ref"]]
    assert upload_model["Schema"]["type"] == "object"
    assert found[("GET", "/v1/jobs/{job_id}")]["RequestParameters"] == {"method.request.path.job_id": True}


def test_stage_throttles_logs_and_traces(env_synth: Synth) -> None:
    s = env_synth
    props = stage(s)
    assert props["StageName"] == s.config.name
    assert props["TracingEnabled"] is True
    assert props["MethodSettings"] == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "ThrottlingRateLimit": s.config.api_throttle_rate_limit,
            "ThrottlingBurstLimit": s.config.api_throttle_burst_limit,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
            "MetricsEnabled": True,
        },
        {
            "HttpMethod": "POST",
            "ResourcePath": "/~1v1~1image-to-image",
            "ThrottlingRateLimit": s.config.sync_throttle_rate_limit,
            "ThrottlingBurstLimit": s.config.sync_throttle_burst_limit,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
            "MetricsEnabled": True,
        },
    ]
    access_logs = s.logical_id(s.stack.api.access_log_group)
    assert render(props["AccessLogSetting"]["DestinationArn"]).endswith(f":log-group:<{access_logs}>")
    # Every line stays JSON whatever the error message holds: API Gateway substitutes each
    # variable's value; messageString arrives quoted and escaped, the others as they are.
    line = props["AccessLogSetting"]["Format"].replace(
        "$context.error.messageString", json.dumps('Invalid "x-api-key" \\ header')
    )
    fields = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "v", line))
    assert {"requestId", "ip", "caller", "status", "integrationLatency"} <= set(fields)
    assert fields["errorMessage"] == 'Invalid "x-api-key" \\ header'
    retention = s.template["Resources"][access_logs]["Properties"]["RetentionInDays"]
    assert retention == s.config.log_retention_days


def test_the_api_is_regional_and_named_after_the_stack(env_synth: Synth) -> None:
    ((_, api),) = by_type(env_synth.template, "AWS::ApiGateway::RestApi").items()
    assert api["Properties"]["Name"] == env_synth.config.stack_name
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_lambda_permissions_are_per_method_and_stage(env_synth: Synth) -> None:
    s = env_synth
    permissions = [
        r["Properties"]
        for r in by_type(s.template, "AWS::Lambda::Permission").values()
        if r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(permissions) == len(ROUTES)  # no extra test-invoke permissions
    stage_id = s.logical_id(s.stack.api.rest_api.deployment_stage)
    for permission in permissions:
        assert f"/<{stage_id}>/" in render(permission["SourceArn"])


def test_gateway_errors_use_the_services_error_shape(env_synth: Synth) -> None:
    responses = by_type(env_synth.template, "AWS::ApiGateway::GatewayResponse")
    types = {r["Properties"]["ResponseType"] for r in responses.values()}
    assert types == {"BAD_REQUEST_BODY", "BAD_REQUEST_PARAMETERS", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        template = response["Properties"]["ResponseTemplates"]["application/json"]
        example = template.replace("$context.error.responseType", "THROTTLED").replace(
            "$context.error.messageString", '"Too Many Requests"'
        )
        assert json.loads(example) == {
            "error": {"code": "THROTTLED", "message": "Too Many Requests", "details": []}
        }


def test_cloudwatch_role_follows_the_config(synth: Callable[..., Synth]) -> None:
    with_role, without_role = synth("dev"), synth("dev", **OPTED_IN)
    ((_, account),) = by_type(with_role.template, "AWS::ApiGateway::Account").items()
    assert account["DeletionPolicy"] == "Retain"  # shared by every API in the account and region
    assert not by_type(without_role.template, "AWS::ApiGateway::Account")


def test_the_sync_route_and_the_api_function_are_held_to_the_bedrock_quota(env_synth: Synth) -> None:
    """One model call per sync request: the route admits rpm/60 requests a second (burst a small
    integer). No environment reserves concurrency by default (a new account refuses it)."""
    s = env_synth
    rpm, timeout = s.config.bedrock_requests_per_minute, s.config.api_timeout_seconds
    (sync,) = (m for m in stage(s)["MethodSettings"] if m["HttpMethod"] == "POST")
    assert sync["ResourcePath"] == "/~1v1~1image-to-image"
    assert sync["ThrottlingRateLimit"] == rpm / 60
    burst = sync["ThrottlingBurstLimit"]
    assert isinstance(burst, int) and 1 <= burst <= max(1, -(-rpm // 60))
    api_fn = s.template["Resources"][s.logical_id(s.stack.functions.api)]["Properties"]
    assert not s.config.api_reserve_concurrency
    assert "ReservedConcurrentExecutions" not in api_fn
    # cdk.json's default quota (6/min) and 29 s timeout: 0.1 request/s, burst 1.
    if rpm == 6 and timeout == 29:
        assert (sync["ThrottlingRateLimit"], burst) == (0.1, 1)
    # The sync route's own throttle is below the stage's, so it is the one that applies there.
    assert sync["ThrottlingRateLimit"] <= s.config.api_throttle_rate_limit
    # The workers cannot exceed the quota on their own either.
    ((_, mapping),) = by_type(s.template, "AWS::Lambda::EventSourceMapping").items()
    assert mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= rpm
    worker = s.template["Resources"][s.logical_id(s.stack.functions.worker)]["Properties"]
    assert "ReservedConcurrentExecutions" not in worker


def test_an_environment_that_opts_in_reserves_what_the_throttle_can_admit(
    synth: Callable[..., Synth],
) -> None:
    """api_reserve_concurrency: the api function runs no more at once than the sync throttle can
    admit within its timeout, never fewer than 2 (the preflight checks the account allows it)."""
    s = synth("dev", **OPTED_IN)
    api_fn = s.template["Resources"][s.logical_id(s.stack.functions.api)]["Properties"]
    reserved = api_fn["ReservedConcurrentExecutions"]
    assert reserved == s.config.api_reserved_concurrency == 3  # floor(1 + 0.1 * 29)
