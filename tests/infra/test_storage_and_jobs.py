"""Buckets, queues and the table: public access, TLS, encryption, lifecycle, notifications,
redrive, TTL, names derived from the stack name, removal per environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.conftest import Synth
from tests.infra.templates import by_type, function_role_id, render, role_grants

pytestmark = pytest.mark.infra

KINDS = ("input", "output", "logs")


def buckets(s: Synth) -> dict[str, tuple[str, dict[str, Any]]]:
    """kind -> (logical id, resource)."""
    found = {}
    for logical_id, resource in by_type(s.template, "AWS::S3::Bucket").items():
        name = render(resource["Properties"]["BucketName"])
        kind = name.removeprefix(f"img2img-{s.config.name}-").split("-", 1)[0]
        found[kind] = (logical_id, resource)
    return found


def bucket_policy(s: Synth, bucket_id: str) -> list[dict[str, Any]]:
    (policy,) = (
        r
        for r in by_type(s.template, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def queue_policy(s: Synth, queue_id: str) -> list[dict[str, Any]]:
    (policy,) = (
        r
        for r in by_type(s.template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in r["Properties"]["Queues"]
    )
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_three_buckets_named_from_the_stack_name(env_synth: Synth) -> None:
    found = buckets(env_synth)
    assert sorted(found) == sorted(KINDS)
    for kind, (_, resource) in found.items():
        # Globally unique, and two environments in one account never collide.
        expected = f"img2img-{env_synth.config.name}-{kind}-<AWS::AccountId>-{env_synth.config.region}"
        assert render(resource["Properties"]["BucketName"]) == expected


def test_buckets_block_public_access_and_encrypt_at_rest(env_synth: Synth) -> None:
    for _, resource in buckets(env_synth).values():
        props = resource["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_policies_refuse_plain_http_and_old_tls(env_synth: Synth) -> None:
    for logical_id, _ in buckets(env_synth).values():
        statements = bucket_policy(env_synth, logical_id)
        denies = [s for s in statements if s["Effect"] == "Deny"]
        assert {json.dumps(s["Condition"], sort_keys=True) for s in denies} == {
            json.dumps({"Bool": {"aws:SecureTransport": "false"}}),
            json.dumps({"NumericLessThan": {"s3:TlsVersion": 1.2}}),
        }
        for deny in denies:
            assert deny["Principal"] == {"AWS": "*"} and deny["Action"] == "s3:*"
            assert {render(r) for r in deny["Resource"]} == {f"<{logical_id}.Arn>", f"<{logical_id}.Arn>/*"}
        # Nothing in any bucket policy grants to the public.
        for allow in (s for s in statements if s["Effect"] == "Allow"):
            assert allow["Principal"] != {"AWS": "*"} and allow["Principal"] != "*"


def test_input_and_output_log_to_the_access_log_bucket(env_synth: Synth) -> None:
    found = buckets(env_synth)
    logs_id = found["logs"][0]
    for kind in ("input", "output"):
        logging = found[kind][1]["Properties"]["LoggingConfiguration"]
        assert logging == {"DestinationBucketName": {"Ref": logs_id}, "LogFilePrefix": f"{kind}/"}
    assert "LoggingConfiguration" not in found["logs"][1]["Properties"]
    # S3's log delivery may write only its prefixes, only from these buckets, in this account.
    grants = [
        s
        for s in bucket_policy(env_synth, logs_id)
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert {render(s["Resource"]) for s in grants} == {
        f"<{logs_id}.Arn>/input/*",
        f"<{logs_id}.Arn>/output/*",
    }
    assert all(
        s["Action"] == "s3:PutObject" and "aws:SourceAccount" in s["Condition"]["StringEquals"]
        for s in grants
    )


def test_lifecycle_expiry_follows_the_config(env_synth: Synth) -> None:
    config, found = env_synth.config, buckets(env_synth)
    input_rules = {r["Id"]: r for r in found["input"][1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    for prefix in ("inbox/", "api/", "uploads/"):
        rule = input_rules[f"expire-{prefix.rstrip('/')}"]
        assert rule["Prefix"] == prefix and rule["ExpirationInDays"] == config.input_expiry_days
    assert input_rules["old-versions-and-uploads"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    output_rules = {r["Id"]: r for r in found["output"][1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    results = output_rules["expire-results"]
    assert results["ExpirationInDays"] == config.result_expiry_days and "Prefix" not in results
    # A result is its job's stored answer: it outlives every message that can bring the job back.
    dead_letters = next(
        q
        for q in (r for r in env_synth.template["Resources"].values() if r["Type"] == "AWS::SQS::Queue")
        if q["Properties"]["QueueName"].endswith("-dlq")
    )
    assert results["ExpirationInDays"] * 86400 >= dead_letters["Properties"]["MessageRetentionPeriod"]
    logs_rules = {r["Id"]: r for r in found["logs"][1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert logs_rules["expire-access-logs"]["ExpirationInDays"] == config.access_log_expiry_days
    assert all(r["Status"] == "Enabled" for r in input_rules.values())


@pytest.mark.parametrize("kind", KINDS)
def test_buckets_are_versioned_and_old_versions_expire_after_a_day(env_synth: Synth, kind: str) -> None:
    """A result written twice under one key never silently replaces the first (output), a
    source is read by the version its event names (input); old versions go after a day."""
    props = buckets(env_synth)[kind][1]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = props["LifecycleConfiguration"]["Rules"]
    noncurrent = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert len(noncurrent) == 1 and "Prefix" not in noncurrent[0]
    assert noncurrent[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    # Delete markers left when the last version has expired are removed too.
    assert [r for r in rules if r.get("ExpiredObjectDeleteMarker")] != []
    assert all(r["Status"] == "Enabled" for r in rules)


def test_inbox_notifications_go_to_the_queue_and_only_from_this_bucket(env_synth: Synth) -> None:
    s = env_synth
    queue_id = s.logical_id(s.stack.jobs.queue)
    input_id, input_bucket = buckets(s)["input"]
    (config,) = input_bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert config["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "inbox/"}]}}
    for kind in ("output", "logs"):
        assert "NotificationConfiguration" not in buckets(s)[kind][1]["Properties"]
    # No custom resource: S3 validates the destination when the bucket is configured, so the
    # bucket waits for the queue policy that lets S3 send.
    assert not by_type(s.template, "Custom::S3BucketNotifications")
    (policy_id,) = (
        k
        for k, r in by_type(s.template, "AWS::SQS::QueuePolicy").items()
        if {"Ref": queue_id} in r["Properties"]["Queues"]
    )
    assert policy_id in input_bucket["DependsOn"]
    (allow,) = (st for st in queue_policy(s, queue_id) if st["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert render(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == "arn:aws:s3:::" + render(
        input_bucket["Properties"]["BucketName"]
    )
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert input_id  # the bucket exists under its own logical id


def test_queues_are_encrypted_tls_only_with_redrive(env_synth: Synth) -> None:
    s = env_synth
    queue_id, dlq_id = s.logical_id(s.stack.jobs.queue), s.logical_id(s.stack.jobs.dead_letter_queue)
    queues = by_type(s.template, "AWS::SQS::Queue")
    assert set(queues) == {queue_id, dlq_id}
    for logical_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        deny = [
            st
            for st in queue_policy(s, logical_id)
            if st["Effect"] == "Deny" and st.get("Sid") != "DenySendExceptFunctionsAndInputBucket"
        ]
        assert deny == [
            {
                "Action": "sqs:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Resource": {"Fn::GetAtt": [logical_id, "Arn"]},
            }
        ]
    main = queues[queue_id]["Properties"]
    assert main["QueueName"] == f"{s.config.stack_name}-jobs"
    assert queues[dlq_id]["Properties"]["QueueName"] == f"{s.config.stack_name}-dlq"
    assert main["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": s.config.max_receive_count,
    }
    assert main["VisibilityTimeout"] >= 6 * s.config.worker_timeout_seconds
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_only_the_two_functions_and_the_input_bucket_may_send_to_the_jobs_queue(env_synth: Synth) -> None:
    s = env_synth
    queue_id = s.logical_id(s.stack.jobs.queue)
    api_role = function_role_id(s.template, s.logical_id(s.stack.functions.api))
    worker_role = function_role_id(s.template, s.logical_id(s.stack.functions.worker))
    input_bucket = buckets(s)["input"][1]
    statements = queue_policy(s, queue_id)
    (deny,) = (st for st in statements if st.get("Sid") == "DenySendExceptFunctionsAndInputBucket")
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", {"AWS": "*"}, "sqs:SendMessage")
    assert deny["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # Both keys under one negated operator: denied only when the caller is neither function's
    # role AND the request is not S3 delivering the input bucket's notifications (an absent key
    # matches).
    assert set(deny["Condition"]) == {"ArnNotEquals"}
    condition = deny["Condition"]["ArnNotEquals"]
    assert [render(v) for v in condition["aws:PrincipalArn"]] == [f"<{api_role}.Arn>", f"<{worker_role}.Arn>"]
    assert render(condition["aws:SourceArn"]) == "arn:aws:s3:::" + render(
        input_bucket["Properties"]["BucketName"]
    )
    # Only sending is denied: the owner can still manage the queue and its policy.
    assert all(st["Action"] in ("sqs:SendMessage", "sqs:*") for st in statements)
    assert all(
        st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for st in statements
        if st["Action"] == "sqs:*"
    )
    # The senders it lets through: S3 (still only from the input bucket, in this account) and
    # the two functions' roles, through their own IAM policies.
    (allow,) = (st for st in statements if st["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert set(allow["Condition"]) == {"ArnEquals", "StringEquals"}
    senders = {
        role_id
        for role_id in by_type(s.template, "AWS::IAM::Role")
        if any(g.action == "sqs:SendMessage" for g in role_grants(s.template, role_id))
    }
    assert senders == {api_role, worker_role}


def test_jobs_table_shape_ttl_and_recovery(env_synth: Synth) -> None:
    s = env_synth
    ((_, table),) = by_type(s.template, "AWS::DynamoDB::Table").items()
    props = table["Properties"]
    assert props["TableName"] == f"{s.config.stack_name}-jobs"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": s.config.point_in_time_recovery
    }
    assert props["DeletionProtectionEnabled"] is (s.config.removal_policy == "retain")


# CDK's RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE: kept on stack deletion and on replacement,
# deleted by the rollback of the deployment that created it (so a failed first deploy can be
# retried: the names are fixed).
RETAIN_EXCEPT_ON_CREATE = {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}
DESTROY = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
# Retained in every environment, plain Retain: API Gateway's account-level CloudWatch role and
# its account setting (infra/api.py), shared by every API in the account and region, and not
# named (a retry never collides with them).
ACCOUNT_LEVEL = {"AWS::ApiGateway::Account", "AWS::IAM::Role"}


def policies(resource: dict[str, Any]) -> dict[str, str]:
    return {k: resource[k] for k in ("DeletionPolicy", "UpdateReplacePolicy") if k in resource}


def test_removal_policy_follows_the_config(env_synth: Synth) -> None:
    s = env_synth
    expected = DESTROY if s.config.removal_policy == "destroy" else RETAIN_EXCEPT_ON_CREATE
    kept = [
        *by_type(s.template, "AWS::S3::Bucket").values(),
        *by_type(s.template, "AWS::DynamoDB::Table").values(),
        *by_type(s.template, "AWS::Logs::LogGroup").values(),
        *by_type(s.template, "AWS::KMS::Key").values(),
    ]
    assert len(kept) == 3 + 1 + 4 + 1
    assert all(policies(r) == expected for r in kept)
    # Destroy empties the buckets first (CDK's auto-delete); retain leaves them alone.
    auto_delete = by_type(s.template, "Custom::S3AutoDeleteObjects")
    assert len(auto_delete) == (3 if s.config.removal_policy == "destroy" else 0)
    assert s.stack.termination_protection is (s.config.removal_policy == "retain")


def test_prod_retains_nothing_a_failed_first_deploy_created(synth: Any) -> None:
    """Plain Retain keeps a resource created by a deployment that then rolls back; with fixed
    names, every retry would fail on "already exists". Prod keeps its data on delete and on
    replacement, but no resource of this stack is kept by a create rollback."""
    prod = synth("prod")
    assert prod.config.removal_policy == "retain"
    retained = {
        logical_id: (resource["Type"], policies(resource))
        for logical_id, resource in prod.template["Resources"].items()
        if "Retain" in resource.get("DeletionPolicy", "")
    }
    assert retained
    for logical_id, (resource_type, found) in retained.items():
        if resource_type in ACCOUNT_LEVEL:
            assert logical_id.startswith("ApiRestApi"), logical_id  # infra/api.py's, nothing else
            continue
        assert found == RETAIN_EXCEPT_ON_CREATE, (logical_id, found)
    types = {t for t, _ in retained.values()}
    assert {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::KMS::Key"} <= types


def test_two_environments_in_one_account_share_no_physical_name(synth: Any) -> None:
    """Names that must be unique per account and region (or globally, for buckets)."""
    keys = {"BucketName", "QueueName", "TableName", "FunctionName", "LogGroupName", "TopicName", "AlarmName"}
    keys |= {"DashboardName", "UsagePlanName", "Name"}
    names: dict[str, set[str]] = {}
    for env in ("dev", "prod"):
        s = synth(env, snapstart=True)  # with its versions and aliases
        names[env] = {
            render(value)
            for resource in s.template["Resources"].values()
            # An alias's name (`live`) is unique within its function, whose name has the env.
            if resource["Type"]
            not in {"AWS::ApiGateway::Model", "AWS::ApiGateway::RequestValidator", "AWS::Lambda::Alias"}
            for key, value in resource.get("Properties", {}).items()
            # References (to a resource, or the mapping's `<function name>:live` cut from the
            # alias ARN) name what is checked where it is declared.
            if key in keys and not render(value).startswith(("<", '{"Fn::'))
        }
        assert all(env in name.lower() for name in names[env]), names[env]
    assert len(names["dev"]) >= 12 and not names["dev"] & names["prod"]


def test_configured_redrive_roles_may_also_send(synth: Callable[..., Synth]) -> None:
    """The dead-letter redrive sends as its caller: the operators' roles cdk.json names."""
    operator = "arn:aws:iam::123456789012:role/img2img-operator"
    s = synth("dev", queue_redrive_principal_arns=[operator])
    queue_id = s.logical_id(s.stack.jobs.queue)
    api_role = function_role_id(s.template, s.logical_id(s.stack.functions.api))
    worker_role = function_role_id(s.template, s.logical_id(s.stack.functions.worker))
    (deny,) = (
        st for st in queue_policy(s, queue_id) if st.get("Sid") == "DenySendExceptFunctionsAndInputBucket"
    )
    assert [render(v) for v in deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]] == [
        f"<{api_role}.Arn>",
        f"<{worker_role}.Arn>",
        operator,
    ]
