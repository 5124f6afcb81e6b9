"""`make alarm-test ENV=...` (and the last step of `make e2e`): an alarm of the deployed stack is
set to ALARM with SetAlarmState, so its notification goes through the encrypted topic; alarm
history must then record the SNS action as executed (a key or topic policy that refuses
CloudWatch shows only there, as "Failed to execute action"), and a person checks the inbox of
`alarm_email`. The alarm returns to its real state at its next evaluation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.aws.conftest import Deployed, poll

pytestmark = pytest.mark.aws

ALARM = "DeadLetterQueueNotEmpty"  # evaluated every 5 minutes: back to OK soon after


def test_an_alarm_notification_is_delivered_to_the_topic(deployed: Deployed) -> None:
    cloudwatch = deployed.client("cloudwatch")
    name = f"{deployed.config.stack_name}-{ALARM}"
    since = datetime.now(UTC)
    cloudwatch.set_alarm_state(
        AlarmName=name,
        StateValue="ALARM",
        StateReason="make alarm-test: a test notification (back to its real state at its next evaluation)",
    )

    def action() -> str | None:
        history = cloudwatch.describe_alarm_history(
            AlarmName=name, HistoryItemType="Action", StartDate=since, ScanBy="TimestampDescending"
        )["AlarmHistoryItems"]
        return history[0]["HistorySummary"] if history else None

    summary = poll(action, timeout=120, what=f"{name}'s SNS action in its alarm history")
    assert summary.startswith("Successfully executed action"), summary
    where = deployed.config.alarm_email or "no one: set alarm_email in cdk.json and redeploy"
    print(f"\n{name} notified its topic; the e-mail goes to {where}")
