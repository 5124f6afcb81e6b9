"""prod and dev differ exactly where cdk.json says they do."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.infra.conftest import Synth
from tests.infra.templates import by_type

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def dev(synth: Callable[..., Synth]) -> Synth:
    return synth("dev")


@pytest.fixture(scope="module")
def prod(synth: Callable[..., Synth]) -> Synth:
    return synth("prod")


def test_dev_destroys_and_prod_retains_data(dev: Synth, prod: Synth) -> None:
    for resource_type in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup"):
        assert {r["DeletionPolicy"] for r in by_type(dev.template, resource_type).values()} == {"Delete"}
        # Retained on delete and replacement, but not when a failed create rolls back.
        assert {r["DeletionPolicy"] for r in by_type(prod.template, resource_type).values()} == {
            "RetainExceptOnCreate"
        }
        assert {r["UpdateReplacePolicy"] for r in by_type(prod.template, resource_type).values()} == {
            "Retain"
        }
    assert by_type(dev.template, "Custom::S3AutoDeleteObjects") and not by_type(
        prod.template, "Custom::S3AutoDeleteObjects"
    )
    assert not dev.stack.termination_protection and prod.stack.termination_protection


def test_prod_has_point_in_time_recovery_and_deletion_protection(dev: Synth, prod: Synth) -> None:
    def table(s: Synth) -> dict[str, object]:
        ((_, resource),) = by_type(s.template, "AWS::DynamoDB::Table").items()
        return dict(resource["Properties"])

    assert table(dev)["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert table(prod)["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert (table(dev)["DeletionProtectionEnabled"], table(prod)["DeletionProtectionEnabled"]) == (
        False,
        True,
    )


def test_sizes_throttles_and_retention_differ(dev: Synth, prod: Synth) -> None:
    def fn(s: Synth, kind: str) -> dict[str, object]:
        function = s.stack.functions.api if kind == "api" else s.stack.functions.worker
        return dict(s.template["Resources"][s.logical_id(function)]["Properties"])

    assert (fn(dev, "api")["MemorySize"], fn(prod, "api")["MemorySize"]) == (1024, 1536)
    ((_, dev_stage),) = by_type(dev.template, "AWS::ApiGateway::Stage").items()
    ((_, prod_stage),) = by_type(prod.template, "AWS::ApiGateway::Stage").items()
    assert dev_stage["Properties"]["MethodSettings"][0]["ThrottlingRateLimit"] == 5
    assert prod_stage["Properties"]["MethodSettings"][0]["ThrottlingRateLimit"] == 20
    retention = {
        s.config.name: {
            r["Properties"]["RetentionInDays"] for r in by_type(s.template, "AWS::Logs::LogGroup").values()
        }
        for s in (dev, prod)
    }
    assert retention == {"dev": {14}, "prod": {365}}
    ((_, mapping),) = by_type(prod.template, "AWS::Lambda::EventSourceMapping").items()
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_models_differ(dev: Synth, prod: Synth) -> None:
    def models(s: Synth) -> str:
        variables = s.template["Resources"][s.logical_id(s.stack.functions.worker)]["Properties"][
            "Environment"
        ]
        return str(variables["Variables"]["IMG2IMG_ALLOWED_MODEL_IDS"])

    assert models(dev) == ",".join(
        [
            "stability.sd3-5-large-v1:0",
            "stability.stable-image-ultra-v1:1",
            "us.stability.stable-image-control-structure-v1:0",
            "us.stability.stable-image-control-sketch-v1:0",
            "us.stability.stable-image-style-guide-v1:0",
        ]
    )
    assert models(prod) == "stability.sd3-5-large-v1:0"


def test_staging_uses_api_keys(synth: Callable[..., Synth]) -> None:
    staging = synth("staging")
    assert staging.config.api_auth == "api_key"
    assert by_type(staging.template, "AWS::ApiGateway::UsagePlan")
