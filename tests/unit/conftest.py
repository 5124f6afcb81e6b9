"""Unit-level fixtures: AWS faked in-process by moto (no sockets), Bedrock by FakeBedrock,
and the real service wiring with the real Powertools objects on top."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pytest_socket import disable_socket, enable_socket

from img2img.config import Settings
from img2img.handlers import wiring
from tests.fakes import FakeBedrock

INPUT, OUTPUT, TABLE, QUEUE = "in-bucket", "out-bucket", "jobs-table", "jobs-queue"
MODELS = ",".join(
    [
        "stability.sd3-5-large-v1:0",
        "stability.stable-image-ultra-v1:1",
        "us.stability.stable-image-control-structure-v1:0",
    ]
)
DEFAULT_MODEL = "stability.sd3-5-large-v1:0"


@dataclass
class World:
    s3: Any
    sqs: Any
    dynamodb: Any
    queue_url: str
    bedrock: FakeBedrock
    settings: Settings

    def queued(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        return got.get("Messages", [])

    def read_json(self, bucket: str, key: str) -> Any:
        import json

        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Unit tests open no sockets: AWS is moto in-process, Bedrock a fake client."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


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
        "IMG2IMG_ALLOWED_MODEL_IDS": MODELS,
        "IMG2IMG_DEFAULT_MODEL_ID": DEFAULT_MODEL,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
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
        wiring.reset()
        settings = Settings()  # type: ignore[call-arg]
        bedrock = FakeBedrock()
        for sync in (True, False):
            service = wiring.build_service(settings, sync=sync, bedrock_client=bedrock, sleep=lambda s: None)
            wiring.install(service, sync=sync)
        yield World(s3, sqs, dynamodb, queue_url, bedrock, settings)
        wiring.reset()
