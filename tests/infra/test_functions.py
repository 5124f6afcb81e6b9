"""The two functions and their roles: runtime, architecture, tracing, logs, environment, and
the exact permissions of each role (S3 prefixes, table, queue, Bedrock models)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from img2img.catalog import split_inference_profile
from infra.asset import ARCHITECTURE, PYTHON_VERSION
from tests.infra.conftest import Synth
from tests.infra.templates import Grant, by_type, function_role_id, render, role_grants

pytestmark = pytest.mark.infra

ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
STRUCTURE = "us.stability.stable-image-control-structure-v1:0"
PROFILE_MODELS = {
    "allowed_model_ids": ["us.stability.sd3-5-large-v1:0", "stability.stable-image-ultra-v1:1"],
    "default_model_id": "us.stability.sd3-5-large-v1:0",
    "fallback_model_ids": [],
}
ACCOUNT_AND_MODEL_REGION = {
    "account": "123456789012",
    "bedrock_region": "us-east-1",
    "allowed_model_ids": ["us.stability.stable-image-control-structure-v1:0"],
    "default_model_id": "us.stability.stable-image-control-structure-v1:0",
    "fallback_model_ids": [],
}


def ids(s: Synth) -> dict[str, str]:
    st = s.stack
    return {
        "api": s.logical_id(st.functions.api),
        "worker": s.logical_id(st.functions.worker),
        "input": s.logical_id(st.storage.input_bucket),
        "output": s.logical_id(st.storage.output_bucket),
        "table": s.logical_id(st.jobs.table),
        "queue": s.logical_id(st.jobs.queue),
        "dlq": s.logical_id(st.jobs.dead_letter_queue),
    }


def allow(actions: tuple[str, ...] | list[str], *resources: str, condition: str = "") -> set[Grant]:
    return {Grant("Allow", a, r, condition) for a in actions for r in resources}


def log_group_id(s: Synth, function_id: str) -> str:
    return str(s.template["Resources"][function_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"])


def bedrock_grants(s: Synth) -> set[Grant]:
    """InvokeModel on every model a job may run on (allowed and fallbacks): a foundation model
    directly, a profile's model only through that profile."""
    region, grants = s.config.model_region, set()
    for model_id in s.config.configured_model_ids:
        geography, base = split_inference_profile(model_id)
        if geography is None:
            grants |= allow(["bedrock:InvokeModel"], f"arn:aws:bedrock:{region}::foundation-model/{model_id}")
            continue
        profile = f"arn:aws:bedrock:{region}:<AWS::AccountId>:inference-profile/{model_id}"
        only_through = json.dumps(
            {"StringEquals": {"bedrock:InferenceProfileArn": [profile]}}, sort_keys=True
        )
        grants |= allow(["bedrock:InvokeModel"], profile) | allow(
            ["bedrock:InvokeModel"], f"arn:aws:bedrock:*::foundation-model/{base}", condition=only_through
        )
    return grants


def expected_grants(s: Synth, kind: str, bedrock: set[Grant]) -> set[Grant]:
    i = ids(s)
    inp, out = f"<{i['input']}.Arn>", f"<{i['output']}.Arn>"
    # The api function reads its callers' own sources only: never what is dropped under inbox/.
    sources = (
        (f"{inp}/api/*", f"{inp}/uploads/*")
        if kind == "api"
        else (
            f"{inp}/inbox/*",
            f"{inp}/sources/*",
            f"{inp}/api/*",
            f"{inp}/uploads/*",
        )
    )
    common = (
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], f"<{log_group_id(s, i[kind])}.Arn>")
        # The job's "Image Job Finished" event, on the environment's one bus (infra/events.py).
        | allow(
            ["events:PutEvents"],
            f"arn:aws:events:{s.config.region}:<AWS::AccountId>:event-bus/{s.config.event_bus_name}",
        )
        | allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")
        | allow(["s3:GetObject", "s3:GetObjectVersion"], *sources)
        | allow(ITEM_ACTIONS, f"<{i['table']}.Arn>")
        | bedrock
    )
    queue = f"<{i['queue']}.Arn>"
    if kind == "api":
        return (
            common
            | allow(["s3:PutObject"], f"{inp}/api/*", f"{inp}/uploads/*")
            | allow(["s3:GetObject", "s3:PutObject"], f"{out}/jobs/*")
            | allow(["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], queue)
        )
    return (
        common
        | allow(
            ["s3:GetObject", "s3:PutObject"], f"{out}/jobs/*", f"{out}/results/*", f"{out}/manifest-results/*"
        )
        | allow(["sqs:SendMessage"], queue)  # a manifest's images, one message each
        | allow(
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            ],
            queue,
        )
    )


def test_two_functions_from_one_asset(env_synth: Synth) -> None:
    functions = {
        k: v
        for k, v in by_type(env_synth.template, "AWS::Lambda::Function").items()
        if str(v["Properties"].get("Handler", "")).startswith("img2img.")
    }
    i = ids(env_synth)
    lifecycle = env_synth.logical_id(env_synth.stack.lifecycle.function)  # infra/lifecycle.py
    assert set(functions) == {i["api"], i["worker"], lifecycle}
    codes = {json.dumps(f["Properties"]["Code"], sort_keys=True) for f in functions.values()}
    assert len(codes) == 1  # one code asset for all
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {
        "img2img.handlers.api.handler",
        "img2img.handlers.worker.handler",
        "img2img.handlers.lifecycle.handler",
    }


@pytest.mark.parametrize("kind", ["api", "worker"])
def test_function_runtime_tracing_logs(env_synth: Synth, kind: str) -> None:
    s, i = env_synth, ids(env_synth)
    props = s.template["Resources"][i[kind]]["Properties"]
    memory, timeout = (
        (s.config.api_memory_mb, s.config.api_timeout_seconds)
        if kind == "api"
        else (s.config.worker_memory_mb, s.config.worker_timeout_seconds)
    )
    assert props["FunctionName"] == f"{s.config.stack_name}-{kind}"
    # The runtime the asset's wheels were built for (infra/asset.py), on arm64.
    assert props["Runtime"] == f"python{PYTHON_VERSION}" == "python3.13"
    assert props["Architectures"] == [ARCHITECTURE] == ["arm64"]
    assert (props["MemorySize"], props["Timeout"]) == (memory, timeout)
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = s.template["Resources"][log_group_id(s, i[kind])]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{s.config.stack_name}-{kind}"
    assert log_group["Properties"]["RetentionInDays"] == s.config.log_retention_days
    # Its own role, with no AWS managed policy.
    role = s.template["Resources"][function_role_id(s.template, i[kind])]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role["Properties"]


def test_each_function_has_its_own_role(env_synth: Synth) -> None:
    i = ids(env_synth)
    assert function_role_id(env_synth.template, i["api"]) != function_role_id(env_synth.template, i["worker"])


@pytest.mark.parametrize("kind", ["api", "worker"])
def test_environment_is_the_function_contract(env_synth: Synth, kind: str) -> None:
    s, i = env_synth, ids(env_synth)
    variables = {
        k: render(v)
        for k, v in s.template["Resources"][i[kind]]["Properties"]["Environment"]["Variables"].items()
    }
    timeout = s.config.api_timeout_seconds if kind == "api" else s.config.worker_timeout_seconds
    assert variables == {
        "IMG2IMG_ENV": s.config.name,
        "IMG2IMG_INPUT_BUCKET": f"<{i['input']}>",
        "IMG2IMG_OUTPUT_BUCKET": f"<{i['output']}>",
        "IMG2IMG_JOBS_TABLE": f"<{i['table']}>",
        "IMG2IMG_QUEUE_URL": f"<{i['queue']}>",
        "IMG2IMG_ALLOWED_MODEL_IDS": ",".join(s.config.allowed_model_ids),
        "IMG2IMG_DEFAULT_MODEL_ID": s.config.default_model_id,
        "IMG2IMG_FALLBACK_MODEL_IDS": ",".join(s.config.fallback_model_ids),
        "IMG2IMG_MODEL_READ_TIMEOUT_SECONDS": str(timeout - s.config.sync_margin_seconds),
        "IMG2IMG_JOB_TTL_DAYS": str(s.config.job_ttl_days),
        "IMG2IMG_PRESIGN_EXPIRY_SECONDS": str(s.config.presign_expiry_seconds),
        "IMG2IMG_MAX_RECEIVE_COUNT": str(s.config.max_receive_count),
        "IMG2IMG_API_AUTH": s.config.api_auth,
        "IMG2IMG_EVENT_BUS_NAME": s.config.event_bus_name,
        "POWERTOOLS_SERVICE_NAME": "img2img",
        "POWERTOOLS_METRICS_NAMESPACE": "Img2Img",
        "POWERTOOLS_LOG_LEVEL": s.config.log_level,
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }
    # The api's read timeout (the sync budget) leaves time to answer before API Gateway's 29 s.
    if kind == "api":
        assert int(variables["IMG2IMG_MODEL_READ_TIMEOUT_SECONDS"]) < s.config.api_timeout_seconds <= 29


def test_the_environment_is_read_by_the_function_settings(
    env_synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables the stack sets are exactly the ones img2img.config.Settings accepts."""
    from img2img.config import Settings

    s, i = env_synth, ids(env_synth)
    variables = s.template["Resources"][i["api"]]["Properties"]["Environment"]["Variables"]
    for key, value in variables.items():
        monkeypatch.setenv(key, render(value))
    settings = Settings.from_environment()
    assert settings.allowed_model_ids == s.config.allowed_model_ids
    assert settings.default_model_id == s.config.default_model_id
    assert settings.model_read_timeout_seconds == s.config.sync_budget_seconds
    assert settings.job_ttl_days == s.config.job_ttl_days
    assert settings.max_receive_count == s.config.max_receive_count


def test_the_worker_knows_the_queues_last_delivery(env_synth: Synth) -> None:
    """The worker records a job as FAILED on the delivery the queue's redrive policy makes last:
    its IMG2IMG_MAX_RECEIVE_COUNT is the queue's maxReceiveCount, which is at least 5."""
    s, i = env_synth, ids(env_synth)
    redrive = s.template["Resources"][i["queue"]]["Properties"]["RedrivePolicy"]
    variables = s.template["Resources"][i["worker"]]["Properties"]["Environment"]["Variables"]
    assert variables["IMG2IMG_MAX_RECEIVE_COUNT"] == str(redrive["maxReceiveCount"])
    assert redrive["maxReceiveCount"] == s.config.max_receive_count >= 5


@pytest.mark.parametrize("kind", ["api", "worker"])
def test_role_grants_exactly_what_the_function_does(env_synth: Synth, kind: str) -> None:
    s = env_synth
    grants = role_grants(s.template, function_role_id(s.template, ids(s)[kind]))
    assert grants == expected_grants(s, kind, bedrock_grants(s))


@pytest.mark.parametrize("kind", ["api", "worker"])
def test_no_wildcards_except_where_aws_has_no_narrower_resource(env_synth: Synth, kind: str) -> None:
    s = env_synth
    for grant in role_grants(s.template, function_role_id(s.template, ids(s)[kind])):
        assert "*" not in grant.action, grant
        if grant.resource == "*":
            assert grant.action.startswith("xray:"), grant
        elif "*" in grant.resource and grant.action.startswith("s3:"):
            assert grant.resource.endswith("/*"), grant
        elif "*" in grant.resource:
            # A cross-region profile's model, in whichever region the profile routes a call to
            # (Bedrock picks it at call time); reachable only through that one profile.
            assert grant.action == "bedrock:InvokeModel", grant
            assert grant.resource.startswith("arn:aws:bedrock:*::foundation-model/"), grant
            assert "bedrock:InferenceProfileArn" in grant.condition, grant


def test_worker_consumes_the_queue_with_partial_batch_responses(env_synth: Synth) -> None:
    s, i = env_synth, ids(env_synth)
    ((_, mapping),) = by_type(s.template, "AWS::Lambda::EventSourceMapping").items()
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [i["queue"], "Arn"]}
    if s.config.snapstart:  # the alias, so the queue invokes the snapshotted version, never $LATEST
        alias = s.logical_id(s.stack.functions.worker_target)
        assert alias in json.dumps(props["FunctionName"]) and ":live" in json.dumps(props["FunctionName"])
    else:
        assert props["FunctionName"] == {"Ref": i["worker"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == s.config.worker_batch_size
    assert props["ScalingConfig"] == {"MaximumConcurrency": s.config.worker_max_concurrency}


def test_functions_wait_for_their_permissions(env_synth: Synth) -> None:
    s, i = env_synth, ids(env_synth)
    for kind in ("api", "worker"):
        (policy_id,) = (
            k
            for k, r in by_type(s.template, "AWS::IAM::Policy").items()
            if {"Ref": function_role_id(s.template, i[kind])} in r["Properties"]["Roles"]
        )
        assert s.template["Resources"][i[kind]]["DependsOn"] == [policy_id]


def test_inference_profile_grants_profile_and_routed_model(synth: Callable[..., Synth]) -> None:
    s = synth("dev", **PROFILE_MODELS)
    profile = "arn:aws:bedrock:us-west-2:<AWS::AccountId>:inference-profile/us.stability.sd3-5-large-v1:0"
    condition = json.dumps({"StringEquals": {"bedrock:InferenceProfileArn": [profile]}}, sort_keys=True)
    expected = allow(
        ["bedrock:InvokeModel"],
        "arn:aws:bedrock:us-west-2::foundation-model/stability.stable-image-ultra-v1:1",
        profile,
    ) | allow(
        ["bedrock:InvokeModel"],
        "arn:aws:bedrock:*::foundation-model/stability.sd3-5-large-v1:0",
        condition=condition,
    )
    for kind in ("api", "worker"):
        grants = role_grants(s.template, function_role_id(s.template, ids(s)[kind]))
        assert {g for g in grants if g.action.startswith("bedrock:")} == expected
        assert grants == expected_grants(s, kind, expected)


def test_configured_account_and_model_region_are_used(synth: Callable[..., Synth]) -> None:
    s = synth("prod", **ACCOUNT_AND_MODEL_REGION)
    assert s.stack.account == "123456789012" and s.stack.region == "us-west-2"
    profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + STRUCTURE
    grants = role_grants(s.template, function_role_id(s.template, ids(s)["worker"]))
    assert {(g.resource, g.condition != "") for g in grants if g.action == "bedrock:InvokeModel"} == {
        (profile, False),
        ("arn:aws:bedrock:*::foundation-model/stability.stable-image-control-structure-v1:0", True),
    }
    variables = s.template["Resources"][ids(s)["api"]]["Properties"]["Environment"]["Variables"]
    assert variables["IMG2IMG_BEDROCK_REGION"] == "us-east-1"
    bucket_names = {
        render(b["Properties"]["BucketName"]) for b in by_type(s.template, "AWS::S3::Bucket").values()
    }
    assert "img2img-prod-input-123456789012-us-west-2" in bucket_names


@pytest.mark.parametrize("snapstart", [False, True])
def test_snapstart_follows_the_environment_setting(synth: Callable[..., Synth], snapstart: bool) -> None:
    """On: each function publishes a SnapStart version behind a `live` alias, which API Gateway and
    the queue invoke (tests above). Off: no version, no alias, the function invoked as it is."""
    s = synth("dev", snapstart=snapstart)
    i = ids(s)
    functions = by_type(s.template, "AWS::Lambda::Function")
    versions = by_type(s.template, "AWS::Lambda::Version")
    aliases = by_type(s.template, "AWS::Lambda::Alias")
    if not snapstart:
        assert versions == aliases == {}
        assert all("SnapStart" not in functions[i[kind]]["Properties"] for kind in ("api", "worker"))
        return
    assert len(versions) == len(aliases) == 2
    for kind in ("api", "worker"):
        props = functions[i[kind]]["Properties"]
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        # What SnapStart does not support: none of it is used.
        assert int(props.get("EphemeralStorage", {}).get("Size", 512)) <= 512
        assert "FileSystemConfigs" not in props
        assert tuple(int(n) for n in props["Runtime"].removeprefix("python").split(".")) >= (3, 12)
        alias_id = s.logical_id(getattr(s.stack.functions, f"{kind}_target"))
        alias = aliases[alias_id]["Properties"]
        assert alias["Name"] == "live" and alias["FunctionName"] == {"Ref": i[kind]}
        assert "ProvisionedConcurrencyConfig" not in alias
        version_id = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert versions[version_id]["Properties"]["FunctionName"] == {"Ref": i[kind]}
        assert "ProvisionedConcurrencyConfig" not in versions[version_id]["Properties"]
        # A replaced version is deleted: only the live one's snapshot is cached (and charged).
        assert s.template["Resources"][version_id].get("DeletionPolicy", "Delete") == "Delete"
