"""Local mode builds its resources from local/resources.py; the stack builds them from cdk.json.
Where they must behave alike, this says they do (the dev environment's values)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from img2img_local import resources as r
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra


def only(resources: dict[str, dict[str, Any]], where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    (found,) = [v["Properties"] for v in resources.values() if where(v["Properties"])]
    return found


def test_table_queue_and_notification_match_local_mode(synth: Callable[..., Synth]) -> None:
    s = synth("dev")
    table = only(s.resources("AWS::DynamoDB::Table"), lambda p: True)
    assert table["KeySchema"] == [{"AttributeName": r.TABLE_PARTITION_KEY, "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": r.TABLE_TTL_ATTRIBUTE, "Enabled": True}

    queue = only(s.resources("AWS::SQS::Queue"), lambda p: "RedrivePolicy" in p)
    assert queue["RedrivePolicy"]["maxReceiveCount"] == r.QUEUE_MAX_RECEIVE_COUNT
    assert queue["VisibilityTimeout"] == r.QUEUE_VISIBILITY_TIMEOUT_SECONDS

    bucket = only(s.resources("AWS::S3::Bucket"), lambda p: "NotificationConfiguration" in p)
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": r.INBOX_PREFIX}]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
