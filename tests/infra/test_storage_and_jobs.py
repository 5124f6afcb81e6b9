"""Buckets, queues and the table: public access, TLS, encryption, lifecycle, notifications,
redrive, TTL, names derived from the stack name, removal per environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth
from tests.infra.templates import by_type, render

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
    results, answers = output_rules["expire-results"], output_rules["expire-model-answers"]
    assert results["ExpirationInDays"] == config.result_expiry_days and "Prefix" not in results
    # A stored model answer lives as long as a redelivery or redrive may still need it.
    assert answers["Prefix"] == "answers/"
    assert answers["ExpirationInDays"] == min(config.job_ttl_days, config.result_expiry_days)
    (logs_rule,) = found["logs"][1]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert logs_rule["ExpirationInDays"] == config.access_log_expiry_days
    assert all(r["Status"] == "Enabled" for r in input_rules.values())


def test_input_bucket_is_versioned(env_synth: Synth) -> None:
    found = buckets(env_synth)
    assert found["input"][1]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


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
        deny = [st for st in queue_policy(s, logical_id) if st["Effect"] == "Deny"]
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


def test_removal_policy_follows_the_config(env_synth: Synth) -> None:
    s = env_synth
    expected = "Delete" if s.config.removal_policy == "destroy" else "Retain"
    kept = [
        *by_type(s.template, "AWS::S3::Bucket").values(),
        *by_type(s.template, "AWS::DynamoDB::Table").values(),
    ]
    kept += [r for r in by_type(s.template, "AWS::Logs::LogGroup").values()]
    assert {r["DeletionPolicy"] for r in kept} == {expected}
    # Destroy empties the buckets first (CDK's auto-delete); retain leaves them alone.
    auto_delete = by_type(s.template, "Custom::S3AutoDeleteObjects")
    assert len(auto_delete) == (3 if s.config.removal_policy == "destroy" else 0)
    assert s.stack.termination_protection is (s.config.removal_policy == "retain")


def test_two_environments_in_one_account_share_no_physical_name(synth: Any) -> None:
    """Names that must be unique per account and region (or globally, for buckets)."""
    keys = {"BucketName", "QueueName", "TableName", "FunctionName", "LogGroupName", "TopicName", "AlarmName"}
    keys |= {"DashboardName", "UsagePlanName", "Name"}
    names: dict[str, set[str]] = {}
    for env in ("dev", "prod"):
        s = synth(env)
        names[env] = {
            render(value)
            for resource in s.template["Resources"].values()
            if resource["Type"] not in {"AWS::ApiGateway::Model", "AWS::ApiGateway::RequestValidator"}
            for key, value in resource.get("Properties", {}).items()
            if key in keys and not render(value).startswith("<")
        }
        assert all(env in name.lower() for name in names[env]), names[env]
    assert len(names["dev"]) >= 12 and not names["dev"] & names["prod"]
