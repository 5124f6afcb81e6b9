"""Local mode builds its resources from local/resources.py; the stack builds them from cdk.json.
Where they must behave alike, this says they do (the dev environment's values), and each
function gets the same environment variables from both, but for the differences listed here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from img2img_local import resources as r
from img2img_local.runner import FUNCTIONS, Function, function_environment, local_environment
from infra.app import cdk_json_context
from infra.config import CONTEXT_KEY
from infra.functions import METRICS_NAMESPACE, SERVICE_NAME
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


# --- the functions' environment -------------------------------------------------------------------

# Every variable the stack gives a function, local mode gives the same function, and the reverse,
# except these (name: why). Values are local mode's own (its resource names, endpoints).
STACK_ONLY = {
    "IMG2IMG_BEDROCK_REGION": "set only where cdk.json names a bedrock_region apart from the stack's "
    "region; local mode's one region is the emulator's",
}
LOCAL_ONLY = {
    "AWS_ENDPOINT_URL": "local mode's one real difference: boto3 reaches moto instead of AWS",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "...and the Bedrock emulator for InvokeModel",
    "AWS_ENDPOINT_URL_BEDROCK": "...and for GetFoundationModel",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "a developer's shell or ~/.aws/config must not turn them off",
    "AWS_ACCESS_KEY_ID": "Lambda's runtime sets the role's credentials itself; moto takes any",
    "AWS_SECRET_ACCESS_KEY": "as AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN": "as AWS_ACCESS_KEY_ID",
    "AWS_REGION": "Lambda's runtime sets it itself, not the stack",
    "AWS_DEFAULT_REGION": "as AWS_REGION",
    "POWERTOOLS_TRACE_DISABLED": "no X-Ray daemon locally; the stack turns active tracing on instead",
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_local_mode_sets_every_variable_the_stack_sets(
    synth: Callable[..., Synth], function: Function
) -> None:
    s = synth("dev")
    deployed = getattr(s.stack.functions, function)
    stack = set(s.template["Resources"][s.logical_id(deployed)]["Properties"]["Environment"]["Variables"])
    local = set(function_environment(function, 4566, 4567))
    assert stack - local <= set(STACK_ONLY), "local/runner.py's function_environment lacks these"
    assert local - stack == set(LOCAL_ONLY), "a new difference needs its reason in LOCAL_ONLY"


def test_local_settings_are_cdk_json_defaults() -> None:
    """Where local mode cannot take the stack's value (it has no cdk.json environment), it
    takes cdk.json's defaults."""
    defaults = cdk_json_context()[CONTEXT_KEY]["defaults"]
    api, worker = (function_environment(f, 4566, 4567) for f in FUNCTIONS)
    for env in (api, worker):
        assert env["IMG2IMG_JOB_TTL_DAYS"] == str(defaults["job_ttl_days"])
        assert env["IMG2IMG_PRESIGN_EXPIRY_SECONDS"] == str(defaults["presign_expiry_seconds"])
        assert env["IMG2IMG_MAX_RECEIVE_COUNT"] == str(defaults["max_receive_count"])
        assert env["POWERTOOLS_LOG_LEVEL"] == defaults["log_level"]
        assert env["POWERTOOLS_SERVICE_NAME"] == SERVICE_NAME
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    margin = defaults["sync_margin_seconds"]
    assert margin == r.SYNC_MARGIN_SECONDS
    assert api["IMG2IMG_MODEL_READ_TIMEOUT_SECONDS"] == str(defaults["api_timeout_seconds"] - margin)
    assert worker["IMG2IMG_MODEL_READ_TIMEOUT_SECONDS"] == str(defaults["worker_timeout_seconds"] - margin)
    assert defaults["worker_timeout_seconds"] == r.WORKER_TIMEOUT_SECONDS
    assert defaults["api_timeout_seconds"] == r.API_TIMEOUT_SECONDS
    # Both functions run in local mode's one process, which reads the worker's settings.
    assert local_environment(4566, 4567) == worker
    assert {k for k in api if api[k] != worker[k]} == {"IMG2IMG_MODEL_READ_TIMEOUT_SECONDS"}
