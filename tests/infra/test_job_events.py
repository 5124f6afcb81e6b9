"""Job events in the template (infra/events.py): the functions may put events on the
environment's one bus; with a webhook configured, the rule, the API destination, its connection,
AWS's retry policy, the dead-letter queue and its alarm are there."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError, load_environment
from infra.events import WEBHOOK_MAX_EVENT_AGE, WEBHOOK_RETRY_ATTEMPTS
from tests.infra.conftest import Synth
from tests.infra.templates import by_type, render, role_grants

pytestmark = pytest.mark.infra

# A dev stack with a named bus and a webhook: also scanned by checkov (tests/infra/test_checkov.py).
WEBHOOK_VARIANT: dict[str, Any] = {
    "event_bus_name": "shared-bus",
    "webhook": {"url": "https://hooks.example.com/img2img", "secret_name": "img2img/dev/webhook"},
}


def put_events_grants(s: Synth) -> set[str]:
    found = set()
    for role_id in by_type(s.template, "AWS::IAM::Role"):
        found |= {g.resource for g in role_grants(s.template, role_id) if g.action == "events:PutEvents"}
    return found


def test_the_functions_put_events_on_the_default_bus_only(env_synth: Synth) -> None:
    bus = f"arn:aws:events:{env_synth.config.region}:<AWS::AccountId>:event-bus/default"
    assert put_events_grants(env_synth) == {bus}
    for resource_type in ("AWS::Events::Connection", "AWS::Events::ApiDestination"):
        assert by_type(env_synth.template, resource_type) == {}  # no webhook unless configured
    alarms = by_type(env_synth.template, "AWS::CloudWatch::Alarm").values()
    [undelivered] = [a for a in alarms if a["Properties"].get("MetricName") == "JobEventsUndelivered"]
    assert {d["Name"]: d["Value"] for d in undelivered["Properties"]["Dimensions"]} == {
        "service": "img2img",
        "environment": env_synth.config.name,
    }


@pytest.fixture(scope="module")
def webhook_synth(synth: Callable[..., Synth]) -> Synth:
    return synth("dev", **WEBHOOK_VARIANT)


def test_a_named_bus_is_the_only_one_the_functions_may_put_on(webhook_synth: Synth) -> None:
    assert put_events_grants(webhook_synth) == {
        "arn:aws:events:us-west-2:<AWS::AccountId>:event-bus/shared-bus"
    }
    variables = webhook_synth.template["Resources"][
        webhook_synth.logical_id(webhook_synth.stack.functions.worker)
    ]
    assert variables["Properties"]["Environment"]["Variables"]["IMG2IMG_EVENT_BUS_NAME"] == "shared-bus"


def test_the_webhook_is_delivered_by_eventbridge_with_retries_and_dead_letters(webhook_synth: Synth) -> None:
    s = webhook_synth
    [connection] = by_type(s.template, "AWS::Events::Connection").values()
    auth = connection["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
    assert auth["ApiKeyName"] == "x-img2img-webhook-secret"
    # A dynamic reference resolved by CloudFormation at deploy time: nothing read at synth.
    assert render(auth["ApiKeyValue"]) == "{{resolve:secretsmanager:img2img/dev/webhook:SecretString:::}}"
    [(destination_id, destination)] = by_type(s.template, "AWS::Events::ApiDestination").items()
    assert destination["Properties"]["InvocationEndpoint"] == "https://hooks.example.com/img2img"
    assert destination["Properties"]["HttpMethod"] == "POST"
    webhook = s.stack.job_events.webhook
    assert webhook is not None
    dlq_id = s.logical_id(webhook.dead_letter_queue)
    rule = s.template["Resources"][s.logical_id(webhook.rule)]["Properties"]
    assert rule["EventBusName"] == "shared-bus"
    assert rule["EventPattern"] == {
        "source": ["img2img"],
        "detail-type": ["Image Job Finished"],
        "detail": {"environment": ["dev"]},  # environments sharing a bus stay apart
    }
    [target] = rule["Targets"]
    assert render(target["Arn"]) == f"<{destination_id}.Arn>"
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": WEBHOOK_RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": WEBHOOK_MAX_EVENT_AGE.to_seconds(),
    }
    assert render(target["DeadLetterConfig"]["Arn"]) == f"<{dlq_id}.Arn>"
    alarms = [
        a["Properties"]
        for a in by_type(s.template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]}
    ]
    assert len(alarms) == 1 and alarms[0]["Threshold"] == 1 and alarms[0]["AlarmActions"]
    # EventBridge may send to the dead-letter queue, for this rule only.
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in by_type(s.template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": dlq_id} in p["Properties"]["Queues"]
    ]
    senders = [
        st
        for statements in policies
        for st in statements
        if st.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    assert (
        len(senders) == 1
        and render(senders[0]["Condition"]["ArnEquals"]["aws:SourceArn"])
        == f"<{s.logical_id(webhook.rule)}.Arn>"
    )


@pytest.mark.parametrize(
    ("webhook", "key"),
    [
        ({"url": "http://hooks.example.com/x", "secret_name": "s"}, "webhook[url]"),
        ({"url": "https://hooks.example.com/x"}, "webhook[secret_name]"),
        ({"url": "https://hooks.example.com/x", "secret_name": "s", "callback": "x"}, "webhook[callback]"),
    ],
)
def test_a_webhook_that_is_not_https_with_a_secret_is_refused(webhook: dict[str, Any], key: str) -> None:
    from infra.app import cdk_json_context

    block = cdk_json_context()["img2img"]
    block["environments"]["dev"]["webhook"] = webhook
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")):
        load_environment(block, "dev")
