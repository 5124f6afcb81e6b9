"""AWS faked in-process by moto (no sockets), Bedrock by FakeBedrock, and the real service
wiring with the real Powertools objects on top: what the handler-level tests (and the infra and
page tests that call a handler) run against. `aws` is the resources alone, for the adapters'
contract tests; `world` adds the services handlers/wiring.py builds over them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from img2img.config import Settings
from img2img.handlers import wiring
from tests.fakes import DEFAULT_MODEL, INPUT, MODELS, OUTPUT, QUEUE, TABLE, FakeBedrock

__all__ = ["INPUT", "OUTPUT", "TABLE", "Aws", "World", "aws", "aws_env", "world"]


@dataclass
class Aws:
    s3: Any
    sqs: Any
    dynamodb: Any
    queue_url: str

    def queued(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        return got.get("Messages", [])

    def read_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@dataclass
class World(Aws):
    bedrock: FakeBedrock
    settings: Settings


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Img2Img",
        "POWERTOOLS_SERVICE_NAME": "img2img",
        "IMG2IMG_ENV": "unit",
        "IMG2IMG_INPUT_BUCKET": INPUT,
        "IMG2IMG_OUTPUT_BUCKET": OUTPUT,
        "IMG2IMG_JOBS_TABLE": TABLE,
        "IMG2IMG_ALLOWED_MODEL_IDS": ",".join(MODELS),
        "IMG2IMG_DEFAULT_MODEL_ID": DEFAULT_MODEL,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """The stack's resources in moto: both buckets (the input one versioned), the table, the queue."""
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (INPUT, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=INPUT, VersioningConfiguration={"Status": "Enabled"})
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        monkeypatch.setenv("IMG2IMG_QUEUE_URL", queue_url)
        yield Aws(s3, sqs, dynamodb, queue_url)


@pytest.fixture
def world(aws: Aws) -> Iterator[World]:
    """Both services (sync and worker) as handlers/wiring.py builds them, installed for the handlers."""
    wiring.reset()
    settings = Settings.from_environment()
    bedrock = FakeBedrock()
    for sync in (True, False):
        service = wiring.build_service(settings, sync=sync, bedrock_client=bedrock, sleep=lambda s: None)
        wiring.install(service, sync=sync)
    yield World(aws.s3, aws.sqs, aws.dynamodb, aws.queue_url, bedrock, settings)
    wiring.reset()
