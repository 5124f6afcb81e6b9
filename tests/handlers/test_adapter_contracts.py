"""The real adapters over moto against their ports' contracts (tests/contracts.py): the same
assertions the in-memory fakes meet in tests/domain/test_fake_contracts.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from img2img.adapters.events import EventBridgeJobEvents
from img2img.adapters.jobs import JobStore
from img2img.adapters.queue import JobQueue
from img2img.adapters.s3 import ObjectStore
from img2img.domain.ports import StoredObject
from img2img_local.aws import align_moto_events
from tests.contracts import (
    JobEventsContract,
    JobQueueContract,
    JobStoreContract,
    ObjectStoreContract,
)
from tests.fixtures.eventbridge_docs import assert_envelope, refusal
from tests.handlers.world import TABLE, Aws

pytestmark = pytest.mark.handlers


@dataclass
class S3Rig:
    aws: Aws

    @property
    def store(self) -> ObjectStore:
        return ObjectStore(self.aws.s3)

    def add(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> StoredObject:
        put = self.aws.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {})
        return StoredObject(
            bucket, key, data, put["ETag"].strip('"'), put.get("VersionId"), None, metadata or {}
        )


class TestObjectStore(ObjectStoreContract):
    @pytest.fixture
    def rig(self, aws: Aws) -> S3Rig:
        return S3Rig(aws)


@dataclass
class DynamoRig:
    jobs: JobStore
    broken: JobStore


class TestJobStore(JobStoreContract):
    @pytest.fixture
    def rig(self, aws: Aws) -> DynamoRig:
        return DynamoRig(JobStore(aws.dynamodb, TABLE, 1), JobStore(aws.dynamodb, "no-such-table", 1))


@dataclass
class SqsRig:
    aws: Aws
    queue: JobQueue
    broken: JobQueue

    def received(self) -> list[dict[str, Any]]:
        import json

        found: list[dict[str, Any]] = []
        while batch := self.aws.queued():  # received messages stay invisible: each comes once
            found += [json.loads(m["Body"]) for m in batch]
        return found


class TestJobQueue(JobQueueContract):
    @pytest.fixture
    def rig(self, aws: Aws) -> SqsRig:
        missing = aws.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
        return SqsRig(aws, JobQueue(aws.sqs, aws.queue_url), JobQueue(aws.sqs, missing))


@dataclass
class EventBridgeRig:
    """The adapter over moto's EventBridge, with a rule on the bus whose SQS target receives what
    the bus took. Refusals are PutEvents' documented answer (HTTP 200, FailedEntryCount and the
    entry's ErrorCode; tests/fixtures/eventbridge/put-events.json), given in place of the call."""

    aws: Aws
    undelivered: list[str] = field(default_factory=list)
    sent: list[list[dict[str, Any]]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        align_moto_events()  # local mode's correction: moto's deliveries lack the envelope's account
        client = boto3.client("events")
        target = self.aws.sqs.create_queue(QueueName="job-events")["QueueUrl"]
        arn = self.aws.sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])
        client.put_rule(Name="job-events", EventPattern=json.dumps({"source": ["img2img"]}))
        client.put_targets(Rule="job-events", Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}])
        # before-call answers in place of the call (moto's before-send hook would still run it).
        client.meta.events.register("before-call.events.PutEvents", self._before_call)
        self.target = target
        self.events = EventBridgeJobEvents(
            client, "default", on_undelivered=self.undelivered.append, sleep=lambda s: None
        )

    def _before_call(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        self.sent.append(json.loads(params["body"])["Entries"])
        if not self.refusals:
            return None
        return AWSResponse(params["url"], 200, {}, None), refusal(self.refusals.pop(0))

    def refuse(self, code: str, *, times: int = 1) -> None:
        self.refusals.extend([code] * times)

    def delivered(self) -> list[dict[str, Any]]:
        got = self.aws.sqs.receive_message(QueueUrl=self.target, MaxNumberOfMessages=10)
        envelopes = [json.loads(m["Body"]) for m in got.get("Messages", [])]
        for envelope in envelopes:
            envelope.pop("ingestion-time", None)  # moto's own addition: AWS documents no such field
            assert_envelope(envelope)
        return [{k: e[k] for k in ("source", "detail-type", "detail")} for e in envelopes]

    def requests(self) -> list[list[dict[str, Any]]]:
        return self.sent


class TestJobEvents(JobEventsContract):
    @pytest.fixture
    def rig(self, aws: Aws) -> EventBridgeRig:
        return EventBridgeRig(aws)
