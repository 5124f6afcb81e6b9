"""The one preflight (`make preflight`, `make deploy`'s first step, and `img2img doctor --env`) and
`make enable-models`, against AWS's documented answers (tests/fixtures/aws/control-plane.json, each
with its source page) served by botocore's Stubber, which checks them against the service model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from img2img_client.cdk_config import Configured
from img2img_client.doctor import BOOTSTRAP_VERSION_PARAMETER, Report, check_deployment, enable_models
from tests.client.test_client_units import REGION, StubbedSession, foundation_model

FIXTURES = json.loads(Path(__file__).parents[1].joinpath("fixtures", "aws", "control-plane.json").read_text())
SD35 = "stability.sd3-5-large-v1:0"
CONFIG = Configured(
    env="dev",
    source=Path("cdk.json"),
    region=REGION,
    bedrock_region=None,
    default_model_id=SD35,
    allowed_model_ids=(SD35,),
    fallback_model_ids=(),
    api_auth="iam",
    bedrock_requests_per_minute=6,
)


@pytest.fixture
def aws() -> Iterator[StubbedSession]:
    session = StubbedSession()
    yield session
    session.verify()  # every documented answer was asked for


def answer(operation: str, variant: str = "response") -> dict[str, Any]:
    return dict(FIXTURES[operation][variant])


def stub_account(
    aws: StubbedSession, *, settings: str = "response", account: str = "response", bootstrapped: bool = True
) -> None:
    aws.stub("sts").add_response(
        "get_caller_identity",
        {"UserId": "u", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me"},
    )
    if bootstrapped:
        aws.stub("ssm").add_response(
            "get_parameter", answer("ssm.get_parameter"), {"Name": BOOTSTRAP_VERSION_PARAMETER}
        )
    else:
        aws.stub("ssm").add_client_error("get_parameter", "ParameterNotFound", "", 400)
    aws.stub("lambda").add_response("get_account_settings", answer("lambda.get_account_settings", settings))
    aws.stub("apigateway").add_response("get_account", answer("apigateway.get_account", account))


def stub_model(
    aws: StubbedSession, availability: str = "response", model_name: str = "Stable Diffusion 3.5 Large"
) -> None:
    details = foundation_model(SD35)
    details["modelDetails"]["modelName"] = model_name
    aws.stub("bedrock").add_response("get_foundation_model", details, {"modelIdentifier": SD35})
    aws.stub("bedrock").add_response(
        "get_foundation_model_availability", answer("bedrock.get_foundation_model_availability", availability)
    )


def preflight(aws: StubbedSession, config: Configured = CONFIG) -> Report:
    return check_deployment("dev", aws.client, config=config, preflight=True)


def by_name(report: Report) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_a_ready_account_passes_every_check(aws: StubbedSession) -> None:
    stub_account(aws)
    stub_model(aws)
    aws.stub("service-quotas").add_response(
        "list_service_quotas", answer("service-quotas.list_service_quotas"), {"ServiceCode": "bedrock"}
    )
    report = preflight(aws)
    assert report.ok, report.render()
    assert list(by_name(report)) == [
        "cdk.json",
        "region",
        "credentials",
        "cdk bootstrap",
        "lambda concurrency",
        "api gateway logging",
        f"model {SD35} (default)",
        "bedrock quota",
    ]  # fmt: skip  (no stack or API before the first deploy)
    checks = by_name(report)
    assert checks["cdk bootstrap"].detail == "version 30 in us-west-2"
    assert "reserves none" in checks["lambda concurrency"].detail
    assert (
        "On-demand InvokeModel requests per minute for Stable Diffusion 3.5 Large: 10"
        in checks["bedrock quota"].detail
    )


def test_a_new_account_is_told_each_fix(aws: StubbedSession) -> None:
    """Not bootstrapped, concurrency limit 10 with a reservation configured, no API Gateway log
    role with the stack told not to create one, the model not subscribed, a quota below the setting."""
    stub_account(aws, settings="new_account", account="no_role", bootstrapped=False)
    stub_model(aws, availability="not_subscribed")
    config = replace(
        CONFIG, reserved_concurrency=3, api_cloudwatch_role=False, bedrock_requests_per_minute=60
    )
    report = preflight(aws, config)
    assert not report.ok
    checks = by_name(report)
    assert checks["cdk bootstrap"].fix == "make bootstrap ENV=dev"
    concurrency = checks["lambda concurrency"]
    assert concurrency.verdict == "fail" and "must keep 100 unreserved" in concurrency.detail
    assert "api_reserve_concurrency" in concurrency.fix and "--quota-code L-B99A9384" in concurrency.fix
    assert checks["api gateway logging"].fix == "set api_cloudwatch_role to true for dev in cdk.json"
    model = checks[f"model {SD35} (default)"]
    assert model.verdict == "fail" and "NOT_AVAILABLE" in model.detail
    assert model.fix.startswith("make enable-models ENV=dev")
    assert "bedrock quota" not in checks  # read only for a default that can run


def test_a_quota_below_the_setting_names_both_remedies(aws: StubbedSession) -> None:
    stub_account(aws)
    stub_model(aws)
    aws.stub("service-quotas").add_response(
        "list_service_quotas", answer("service-quotas.list_service_quotas")
    )
    quota = by_name(preflight(aws, replace(CONFIG, bedrock_requests_per_minute=60)))["bedrock quota"]
    assert quota.verdict == "fail"
    assert "bedrock_requests_per_minute to 10" in quota.fix and "--quota-code L-00000001" in quota.fix


def test_enable_models_subscribes_then_verifies(aws: StubbedSession) -> None:
    bedrock = aws.stub("bedrock")
    bedrock.add_response(
        "get_foundation_model_availability",
        answer("bedrock.get_foundation_model_availability", "not_subscribed"),
        {"modelId": SD35},
    )
    bedrock.add_response(
        "list_foundation_model_agreement_offers",
        answer("bedrock.list_foundation_model_agreement_offers"),
        {"modelId": SD35, "offerType": "PUBLIC"},
    )
    bedrock.add_response(
        "create_foundation_model_agreement",
        answer("bedrock.create_foundation_model_agreement"),
        {"modelId": SD35, "offerToken": "token-example"},
    )
    bedrock.add_response(
        "get_foundation_model_availability", answer("bedrock.get_foundation_model_availability", "pending")
    )
    bedrock.add_response(
        "get_foundation_model_availability", answer("bedrock.get_foundation_model_availability")
    )
    report = enable_models("dev", aws.client, CONFIG, poll=0)
    assert report.ok and by_name(report)[f"model {SD35}"].detail == "subscribed and available in us-west-2"


def test_enable_models_without_marketplace_permissions_says_so(aws: StubbedSession) -> None:
    bedrock = aws.stub("bedrock")
    bedrock.add_response(
        "get_foundation_model_availability",
        answer("bedrock.get_foundation_model_availability", "not_subscribed"),
    )
    bedrock.add_response(
        "list_foundation_model_agreement_offers", answer("bedrock.list_foundation_model_agreement_offers")
    )
    bedrock.add_client_error(
        "create_foundation_model_agreement", "AccessDeniedException", "not authorized", 403
    )
    check = enable_models("dev", aws.client, CONFIG, poll=0).checks[0]
    assert check.verdict == "fail" and "aws-marketplace:Subscribe" in check.fix
