"""Alarms, the alarm topic, the dashboard and the stack outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.stack import OUTPUT_NAMES
from tests.infra.conftest import OPTED_IN, Synth
from tests.infra.templates import by_type, render

pytestmark = pytest.mark.infra

ALARMS = (
    "DeadLetterQueueNotEmpty",
    "QueueOldestMessageAge",
    "ApiErrors",
    "ApiThrottles",
    "WorkerErrors",
    "WorkerThrottles",
    "ModelFailures",
    "SyncLatencyP90",
    # infra/lifecycle.py (tests/infra/test_lifecycle_watch.py checks them in detail)
    "ModelLifecycle",
    "ModelFallbacks",
    "LifecycleWatchFailed",
    # infra/events.py (tests/infra/test_job_events.py; WebhookDeadLetters too when configured)
    "JobEventsUndelivered",
)
# A verdict published once per run: between runs the alarm keeps the last one.
KEEPS_STATE_WITHOUT_DATA = {"ModelLifecycle"}


def alarms(s: Synth) -> dict[str, dict[str, Any]]:
    found = {}
    for alarm in by_type(s.template, "AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"].removeprefix(f"{s.config.stack_name}-")
        found[name] = alarm["Properties"]
    return found


def dimensions(props: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: render(d["Value"]) for d in props["Dimensions"]}


def test_the_alarms_exist_and_notify_the_topic(env_synth: Synth) -> None:
    s = env_synth
    found = alarms(s)
    assert set(found) == set(ALARMS)
    topic = s.logical_id(s.stack.monitoring.topic)
    for name, props in found.items():
        assert props["AlarmActions"] == [{"Ref": topic}], name
        assert props["OKActions"] == [{"Ref": topic}], name
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        expected = "ignore" if name in KEEPS_STATE_WITHOUT_DATA else "notBreaching"
        assert props["TreatMissingData"] == expected, name


def test_dead_letter_queue_alarm(env_synth: Synth) -> None:
    s = env_synth
    props = alarms(s)["DeadLetterQueueNotEmpty"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    dlq = s.logical_id(s.stack.jobs.dead_letter_queue)
    assert dimensions(props) == {"QueueName": f"<{dlq}.QueueName>"}
    assert (props["Statistic"], props["Threshold"]) == ("Maximum", 1)


def test_oldest_queued_job_alarm(env_synth: Synth) -> None:
    s = env_synth
    props = alarms(s)["QueueOldestMessageAge"]
    assert props["AlarmName"] == f"{s.config.stack_name}-QueueOldestMessageAge"  # the topic admits it
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert dimensions(props) == {"QueueName": f"<{s.logical_id(s.stack.jobs.queue)}.QueueName>"}
    assert (props["Statistic"], props["Period"]) == ("Maximum", 300)
    assert props["Threshold"] == s.config.queue_age_alarm_seconds == 3600
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (1, 1)


def test_function_error_and_throttle_alarms(env_synth: Synth) -> None:
    s = env_synth
    for kind, function in (("Api", s.stack.functions.api), ("Worker", s.stack.functions.worker)):
        for metric in ("Errors", "Throttles"):
            props = alarms(s)[f"{kind}{metric}"]
            assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
                "AWS/Lambda",
                metric,
                "Sum",
            )
            assert dimensions(props) == {"FunctionName": f"<{s.logical_id(function)}>"}


def test_model_failures_alarm_watches_this_environment_only(env_synth: Synth) -> None:
    s = env_synth
    props = alarms(s)["ModelFailures"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
        "Img2Img",
        "ModelFailures",
        "Sum",
    )
    assert dimensions(props) == {"service": "img2img", "environment": s.config.name}
    assert props["Threshold"] == s.config.model_failures_alarm_threshold


def test_sync_latency_p90_alarm(env_synth: Synth) -> None:
    s = env_synth
    props = alarms(s)["SyncLatencyP90"]
    assert (props["Namespace"], props["MetricName"], props["ExtendedStatistic"]) == (
        "AWS/ApiGateway",
        "Latency",
        "p90",
    )
    assert dimensions(props) == {
        "ApiName": s.config.stack_name,
        "Stage": s.config.name,
        "Resource": "/v1/image-to-image",
        "Method": "POST",
    }
    assert props["Threshold"] == s.config.sync_latency_p90_alarm_ms
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (3, 2)


def test_alarm_topic_is_encrypted_and_tls_only(env_synth: Synth) -> None:
    s = env_synth
    ((topic_id, topic),) = by_type(s.template, "AWS::SNS::Topic").items()
    ((key_id, key),) = by_type(s.template, "AWS::KMS::Key").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    alarms_of_this_stack = {
        "ArnLike": {
            "aws:SourceArn": f"arn:aws:cloudwatch:us-west-2:<AWS::AccountId>:alarm:{s.config.stack_name}-*"
        },
        "StringEquals": {"aws:SourceAccount": "<AWS::AccountId>"},
    }

    def condition(statement: dict[str, Any]) -> dict[str, Any]:
        return {op: {k: render(v) for k, v in tests.items()} for op, tests in statement["Condition"].items()}

    cloudwatch = {"Service": "cloudwatch.amazonaws.com"}
    (use_key,) = (
        st for st in key["Properties"]["KeyPolicy"]["Statement"] if st.get("Principal") == cloudwatch
    )
    # AWS's documented grant for a service publishing to an encrypted topic, exactly: no condition
    # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
    assert sorted(use_key["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert (use_key["Effect"], use_key["Resource"]) == ("Allow", "*") and "Condition" not in use_key
    ((_, policy),) = by_type(s.template, "AWS::SNS::TopicPolicy").items()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    deny, publish = sorted(
        policy["Properties"]["PolicyDocument"]["Statement"], key=lambda st: st["Effect"] != "Deny"
    )
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert (publish["Principal"], publish["Action"], publish["Resource"]) == (
        cloudwatch,
        "sns:Publish",
        {"Ref": topic_id},
    )
    assert condition(publish) == alarms_of_this_stack


def test_email_subscription_only_when_configured(synth: Callable[..., Synth]) -> None:
    assert not by_type(synth("dev").template, "AWS::SNS::Subscription")
    with_email = synth("dev", **OPTED_IN)
    ((_, subscription),) = by_type(with_email.template, "AWS::SNS::Subscription").items()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


def test_dashboard(env_synth: Synth) -> None:
    ((_, dashboard),) = by_type(env_synth.template, "AWS::CloudWatch::Dashboard").items()
    assert dashboard["Properties"]["DashboardName"] == env_synth.config.stack_name
    body = render(dashboard["Properties"]["DashboardBody"])
    for needle in ("ModelFailures", "ApproximateNumberOfMessagesVisible", "Latency", "Throttles", "alarm"):
        assert needle in body


def test_outputs_have_stable_names(env_synth: Synth) -> None:
    s = env_synth
    outputs = s.template["Outputs"]
    expected = set(OUTPUT_NAMES) | ({"ApiKeyId"} if s.config.api_auth == "api_key" else set())
    assert set(outputs) == expected
    assert set(OUTPUT_NAMES) >= {
        "ApiUrl",
        "InputBucketName",
        "OutputBucketName",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "JobsTableName",
        "DashboardUrl",
    }
    st = s.stack
    assert outputs["InputBucketName"]["Value"] == {"Ref": s.logical_id(st.storage.input_bucket)}
    assert outputs["OutputBucketName"]["Value"] == {"Ref": s.logical_id(st.storage.output_bucket)}
    assert outputs["QueueUrl"]["Value"] == {"Ref": s.logical_id(st.jobs.queue)}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": s.logical_id(st.jobs.dead_letter_queue)}
    assert outputs["JobsTableName"]["Value"] == {"Ref": s.logical_id(st.jobs.table)}
    assert render(outputs["ApiUrl"]["Value"]).startswith(
        f"https://<{s.logical_id(st.api.rest_api)}>.execute-api."
    )
    assert outputs["DashboardUrl"]["Value"].endswith(f"#dashboards:name={s.config.stack_name}")
    assert outputs["ApiAuthMode"]["Value"] == s.config.api_auth


def test_tags_on_resources(env_synth: Synth) -> None:
    s = env_synth
    ((_, table),) = by_type(s.template, "AWS::DynamoDB::Table").items()
    tags = {t["Key"]: t["Value"] for t in table["Properties"]["Tags"]}
    assert tags == {"project": "img2img", "environment": s.config.name, **s.config.tags}
