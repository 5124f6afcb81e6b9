"""The real adapters over moto against their ports' contracts (tests/contracts.py): the same
assertions the in-memory fakes meet in tests/domain/test_fake_contracts.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from img2img.adapters.jobs import JobStore
from img2img.adapters.queue import JobQueue
from img2img.adapters.s3 import ObjectStore
from img2img.domain.ports import StoredObject
from tests.contracts import JobQueueContract, JobStoreContract, ObjectStoreContract
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
