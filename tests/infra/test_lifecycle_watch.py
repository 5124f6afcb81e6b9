"""The lifecycle watch: its schedule, its function (built like the others), its one Bedrock
permission (GetFoundationModel on the configured models' base ids) and its alarms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from img2img.catalog import base_model_id
from infra.lifecycle import lifecycle_model_arns
from tests.infra.conftest import Synth
from tests.infra.templates import Grant, by_type, function_role_id, render, role_grants

pytestmark = pytest.mark.infra

# The watch calls no model and sends no job event.
WORKER_ONLY = {"IMG2IMG_MODEL_READ_TIMEOUT_SECONDS", "IMG2IMG_EVENT_BUS_NAME"}


def function_id(s: Synth) -> str:
    return s.logical_id(s.stack.lifecycle.function)


def variables(s: Synth, logical_id: str) -> dict[str, str]:
    props = s.template["Resources"][logical_id]["Properties"]
    return {k: render(v) for k, v in props["Environment"]["Variables"].items()}


def alarm(s: Synth, name: str) -> dict[str, Any]:
    (props,) = (
        a["Properties"]
        for a in by_type(s.template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == f"{s.config.stack_name}-{name}"
    )
    return dict(props)


def dimensions(props: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: render(d["Value"]) for d in props["Dimensions"]}


def test_a_schedule_rule_invokes_the_watch(synth: Callable[..., Synth]) -> None:
    s = synth("dev")
    ((rule_id, rule),) = by_type(s.template, "AWS::Events::Rule").items()
    props = rule["Properties"]
    assert props["ScheduleExpression"] == s.config.lifecycle_watch_schedule == "rate(1 day)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id(s), "Arn"]}
    (permission,) = (
        p["Properties"]
        for p in by_type(s.template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    )
    assert permission["FunctionName"] == {"Fn::GetAtt": [function_id(s), "Arn"]}
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_the_models_are_read_where_bedrock_is_called(synth: Callable[..., Synth]) -> None:
    """GetFoundationModel is authorized in the region it is called in: bedrock_region when
    set, else the stack's (checked without another synth: the ARNs come from this function)."""
    config = synth("dev").config
    assert config.bedrock_region is None
    assert {arn.split(":")[3] for arn in lifecycle_model_arns(config, "aws")} == {config.region}
    elsewhere = config.model_copy(update={"bedrock_region": "us-east-1"})
    assert lifecycle_model_arns(elsewhere, "aws-us-gov")[0].startswith("arn:aws-us-gov:bedrock:us-east-1::")


def test_the_function_is_built_like_the_others(synth: Callable[..., Synth]) -> None:
    s = synth("dev")
    worker_id = s.logical_id(s.stack.functions.worker)
    props = s.template["Resources"][function_id(s)]["Properties"]
    worker = s.template["Resources"][worker_id]["Properties"]
    assert props["FunctionName"] == f"{s.config.stack_name}-lifecycle"
    assert props["Handler"] == "img2img.handlers.lifecycle.handler"
    assert (props["MemorySize"], props["Timeout"]) == (256, 60)
    for key in ("Code", "Runtime", "Architectures", "TracingConfig"):
        assert props[key] == worker[key], key
    # The variables img2img.config.Settings reads, as the worker has them (not its sync budget).
    worker_variables = variables(s, worker_id)
    assert variables(s, function_id(s)) == {k: v for k, v in worker_variables.items() if k not in WORKER_ONLY}
    log_group = s.template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert log_group["LogGroupName"] == f"/aws/lambda/{s.config.stack_name}-lifecycle"
    assert log_group["RetentionInDays"] == s.config.log_retention_days
    role_id = function_role_id(s.template, function_id(s))  # its own role
    assert role_id not in {function_role_id(s.template, s.logical_id(f)) for f in (s.stack.functions.worker,)}
    assert "ManagedPolicyArns" not in s.template["Resources"][role_id]["Properties"]


def test_the_role_reads_the_configured_models_lifecycle_and_nothing_else(synth: Callable[..., Synth]) -> None:
    s = synth("dev")
    fn = function_id(s)
    bases = list(dict.fromkeys(base_model_id(m) for m in s.config.configured_model_ids))
    # dev allows `us.` profiles of models: GetFoundationModel reads them by their base id.
    assert any(m.startswith("us.") for m in s.config.configured_model_ids)
    arns = [f"arn:aws:bedrock:{s.config.model_region}::foundation-model/{b}" for b in bases]
    assert s.stack.lifecycle.model_arns == arns
    log_group = s.template["Resources"][fn]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    # Its `us.` profiles, read when GetFoundationModel does not find their model in the region.
    profiles = [
        f"arn:aws:bedrock:{s.config.model_region}:<AWS::AccountId>:inference-profile/{m}"
        for m in dict.fromkeys(s.config.configured_model_ids)
        if m.startswith("us.")
    ]
    expected = (
        {Grant("Allow", "bedrock:GetFoundationModel", arn, "") for arn in arns}
        | {Grant("Allow", "bedrock:GetInferenceProfile", arn, "") for arn in profiles}
        | {Grant("Allow", a, f"<{log_group}.Arn>", "") for a in ("logs:CreateLogStream", "logs:PutLogEvents")}
        | {Grant("Allow", a, "*", "") for a in ("xray:PutTraceSegments", "xray:PutTelemetryRecords")}
    )
    assert role_grants(s.template, function_role_id(s.template, fn)) == expected
    # One statement, exactly the action and the ARNs: no wildcard in either.
    (policy,) = (
        p["Properties"]["PolicyDocument"]
        for p in by_type(s.template, "AWS::IAM::Policy").values()
        if {"Ref": function_role_id(s.template, fn)} in p["Properties"]["Roles"]
    )
    (statement,) = (st for st in policy["Statement"] if "bedrock:GetFoundationModel" in str(st["Action"]))
    assert statement == {"Action": "bedrock:GetFoundationModel", "Effect": "Allow", "Resource": sorted(arns)}
    assert s.template["Resources"][fn]["DependsOn"] == [
        k
        for k, p in by_type(s.template, "AWS::IAM::Policy").items()
        if p["Properties"]["PolicyDocument"] == policy
    ]


def test_the_alarms_watch_this_environment_and_notify_the_topic(synth: Callable[..., Synth]) -> None:
    s = synth("dev")  # test_monitoring_and_outputs.py checks every environment's alarm actions
    topic = {"Ref": s.logical_id(s.stack.monitoring.topic)}
    this_environment = {"service": "img2img", "environment": s.config.name}

    lifecycle = alarm(s, "ModelLifecycle")
    assert (lifecycle["Namespace"], lifecycle["MetricName"], lifecycle["Statistic"]) == (
        "Img2Img",
        "ModelsNotActive",
        "Maximum",
    )
    assert dimensions(lifecycle) == this_environment
    assert (lifecycle["Period"], lifecycle["Threshold"], lifecycle["EvaluationPeriods"]) == (86400, 1, 1)
    assert lifecycle["TreatMissingData"] == "ignore"  # keeps the last run's verdict between runs

    fallbacks = alarm(s, "ModelFallbacks")
    assert (fallbacks["Namespace"], fallbacks["MetricName"], fallbacks["Statistic"]) == (
        "Img2Img",
        "ModelFallbacks",
        "Sum",
    )
    assert dimensions(fallbacks) == this_environment
    assert (fallbacks["Period"], fallbacks["Threshold"], fallbacks["EvaluationPeriods"]) == (300, 1, 1)
    assert fallbacks["TreatMissingData"] == "notBreaching"

    failed = alarm(s, "LifecycleWatchFailed")
    queries = {q["Id"]: q for q in failed["Metrics"]}
    assert queries["expr_1"]["Expression"] == "FILL(errors, 0) + FILL(unknown, 0)"
    errors = queries["errors"]["MetricStat"]
    assert (errors["Metric"]["Namespace"], errors["Metric"]["MetricName"], errors["Stat"]) == (
        "AWS/Lambda",
        "Errors",
        "Sum",
    )
    assert errors["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id(s)}}]
    unknown = queries["unknown"]["MetricStat"]
    assert (unknown["Metric"]["MetricName"], unknown["Stat"], unknown["Period"]) == (
        "ModelLifecycleUnknown",
        "Maximum",
        86400,
    )
    assert dimensions(unknown["Metric"]) == this_environment
    assert failed["TreatMissingData"] == "notBreaching"

    for props in (lifecycle, fallbacks, failed):
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["AlarmActions"] == [topic] and props["OKActions"] == [topic]
