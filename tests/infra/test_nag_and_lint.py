"""cdk-nag (AWS Solutions) and cfn-lint on every environment: zero unacknowledged findings,
every acknowledgement precise and still needed, zero lint errors or warnings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint
from constructs import IConstruct

from infra.app import build_app
from infra.nag import DRY_RUN_CONTEXT_KEY, RECORD_METADATA_TYPE
from infra.stack import Img2ImgStack
from tests.infra.conftest import DISABLE_ASSET_STAGING, ENVIRONMENTS, Synth, context_with, offline
from tests.infra.test_job_events import WEBHOOK_VARIANT

pytestmark = pytest.mark.infra

VARIANTS: list[dict[str, Any]] = [
    {
        "allowed_model_ids": ["us.stability.sd3-5-large-v1:0"],
        "default_model_id": "us.stability.sd3-5-large-v1:0",
    },
    {"api_cloudwatch_role": False, "alarm_email": "ops@example.com"},
    {"api_auth": "cognito"},
    {"api_auth": "cognito", "cognito_feature_plan": "essentials", "cognito_mfa": "optional"},
    WEBHOOK_VARIANT,
]
VARIANT_IDS = [
    "inference-profile",
    "no-cloudwatch-role",
    "cognito",
    "cognito-essentials-optional-mfa",
    "webhook-named-bus",
]


def acknowledgements(stack: Img2ImgStack) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every acknowledgement made through infra.nag."""
    found = []
    construct: IConstruct
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == RECORD_METADATA_TYPE:
                found.append((construct.node.path, entry.data["id"], entry.data["reason"]))
    return found


def violations(stack: Img2ImgStack) -> list[tuple[str, list[str]]]:
    report = AwsSolutionsChecks().validate_scope(stack)
    return [(v.rule_name, [r.construct_path or "" for r in v.violating_resources]) for v in report.violations]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_unacknowledged_nag_findings(env: str, synth: Callable[..., Synth]) -> None:
    found = violations(synth(env).stack)
    assert found == [], json.dumps(found, indent=2)


@pytest.mark.parametrize("overrides", VARIANTS, ids=VARIANT_IDS)
def test_no_unacknowledged_nag_findings_in_variants(
    overrides: dict[str, Any], synth: Callable[..., Synth]
) -> None:
    found = violations(synth("dev", **overrides).stack)
    assert found == [], json.dumps(found, indent=2)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_acknowledgement_is_precise_and_matches_a_real_finding(
    env: str, dry_run_stack: Callable[[str], Img2ImgStack]
) -> None:
    stack = dry_run_stack(env)
    acks = acknowledgements(stack)
    assert acks, "the stack acknowledges nothing: the dry run is not recording"
    findings = violations(stack)  # acknowledgements recorded but not applied
    for path, rule_id, reason in acks:
        assert path != stack.node.path, f"{rule_id} acknowledged on the whole stack"
        assert len(reason) >= 40, (path, rule_id)
        if rule_id.split("[")[0] in {"AwsSolutions-IAM4", "AwsSolutions-IAM5"}:
            assert rule_id.endswith("]"), f"{rule_id} on {path} must name the finding"
        matched = [
            p
            for name, paths in findings
            if name == rule_id
            for p in paths
            if p == path or p.startswith(f"{path}/")
        ]
        assert matched, f"stale acknowledgement: no {rule_id} finding at {path}"
    # And the reverse: every finding is covered by an acknowledgement (what the clean run shows).
    for name, paths in findings:
        for finding_path in paths:
            assert any(
                rule_id == name and (finding_path == p or finding_path.startswith(f"{p}/"))
                for p, rule_id, _ in acks
            ), f"{name} at {finding_path} is not acknowledged"


def test_synth_fails_on_an_unacknowledged_finding(tmp_path: Any) -> None:
    """The nag pack runs on every synth (cdk synth/deploy), not only in these tests."""
    context = context_with("dev", extra={DRY_RUN_CONTEXT_KEY: True, DISABLE_ASSET_STAGING: True})
    with offline():
        app, _ = build_app("dev", context=context, outdir=str(tmp_path))
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert "AwsSolutions-IAM5[Resource::*]" in rules


def lint_findings(s: Synth) -> list[str]:
    matches = lint(json.dumps(s.template), regions=[s.config.region])
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cfn_lint_is_clean(env: str, synth: Callable[..., Synth]) -> None:
    assert lint_findings(synth(env)) == []


@pytest.mark.parametrize("overrides", VARIANTS, ids=VARIANT_IDS)
def test_cfn_lint_is_clean_in_variants(overrides: dict[str, Any], synth: Callable[..., Synth]) -> None:
    assert lint_findings(synth("dev", **overrides)) == []


def test_cfn_lint_would_report_problems() -> None:
    """The linter is live: a broken template produces findings (E) and warnings (W)."""
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "DependsOn": ["Role"],
                "Properties": {
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Runtime": "python2.7",
                    "Code": {"ZipFile": "x"},
                    "Handler": "index.handler",
                },
            },
        }
    }
    ids = {m.rule.id for m in lint(json.dumps(template), regions=["us-west-2"])}
    assert any(i.startswith("E") for i in ids) and "W3005" in ids
