"""Local mode's own machinery, with fake handlers: the API front (proxy events in, proxy
responses out, API Gateway's limits), the S3 -> SQS notification as moto serves it, the SQS
poller's batch semantics (partial failures, redelivery, DLQ), ports, and the event fixtures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
import requests
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel, SqsModel
from aws_lambda_powertools.utilities.parser.models.s3_event_notification import S3SqsEventNotificationModel

from img2img_local import resources as r
from img2img_local.api_front import (
    PROXY_RESOURCE,
    ApiFront,
    MalformedProxyResponse,
    match_resource,
    parse_proxy_response,
)
from img2img_local.lambda_context import new_context
from img2img_local.poller import SqsPoller, failed_ids
from img2img_local.runner import PortInUseError, _apply_env, _restore_env, local_environment, start_local
from tests.local.conftest import EVENTS_DIR, FakeHandlers, free_port, load_event, wait_until
from tools.sample import sample_png

pytestmark = [pytest.mark.local, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


# --- pure pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "resource", "params"),
    [
        ("/v1/image-to-image", "/v1/image-to-image", None),
        ("/v1/jobs", "/v1/jobs", None),
        ("/v1/jobs/abc123", "/v1/jobs/{job_id}", {"job_id": "abc123"}),
        ("/v1/jobs/a%20b", "/v1/jobs/{job_id}", {"job_id": "a%20b"}),
        ("/v1/uploads", "/v1/uploads", None),
        ("/v1/models", "/v1/models", None),
        ("/v1/health", "/v1/health", None),
        ("/v1/openapi.json", "/v1/openapi.json", None),
        ("/v1/docs", "/v1/docs", None),
        ("/", "/", None),
        ("/v1/jobs/abc/extra", PROXY_RESOURCE, {"proxy": "v1/jobs/abc/extra"}),
        ("/v1/openapiXjson", PROXY_RESOURCE, {"proxy": "v1/openapiXjson"}),
        ("/favicon.ico", PROXY_RESOURCE, {"proxy": "favicon.ico"}),
    ],
)
def test_match_resource(path: str, resource: str, params: dict[str, str] | None) -> None:
    assert match_resource(path) == (resource, params)


def test_local_environment_names_every_setting() -> None:
    env = local_environment(4566, 4567)
    assert env["IMG2IMG_ENV"] == "local"
    assert env["IMG2IMG_INPUT_BUCKET"] == "img2img-local-input"
    assert env["IMG2IMG_OUTPUT_BUCKET"] == "img2img-local-output"
    assert env["IMG2IMG_JOBS_TABLE"] == "img2img-local-jobs"
    assert env["IMG2IMG_QUEUE_URL"] == "http://127.0.0.1:4566/123456789012/img2img-local-jobs"
    assert env["IMG2IMG_ALLOWED_MODEL_IDS"].split(",") == [
        "stability.sd3-5-large-v1:0",
        "stability.stable-image-ultra-v1:1",
        "us.stability.stable-image-control-structure-v1:0",
        "us.stability.stable-image-control-sketch-v1:0",
        "us.stability.stable-image-style-guide-v1:0",
    ]
    # Local mode runs what production runs: the deployed default and its fallbacks.
    assert env["IMG2IMG_DEFAULT_MODEL_ID"] == "stability.sd3-5-large-v1:0"
    assert env["IMG2IMG_FALLBACK_MODEL_IDS"].split(",") == [
        "stability.stable-image-ultra-v1:1",
        "us.stability.stable-image-control-structure-v1:0",
    ]
    assert env["AWS_ENDPOINT_URL_BEDROCK"] == "http://127.0.0.1:4567"  # GetFoundationModel
    assert env["IMG2IMG_MAX_RECEIVE_COUNT"] == str(r.QUEUE_MAX_RECEIVE_COUNT)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == "http://127.0.0.1:4567"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["POWERTOOLS_SERVICE_NAME"] == "img2img"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Img2Img"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"


def test_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    monkeypatch.delenv("IMG2IMG_JOBS_TABLE", raising=False)
    saved = _apply_env({"AWS_ACCESS_KEY_ID": "testing", "IMG2IMG_JOBS_TABLE": "t"})
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    _restore_env(saved)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "mine"
    assert "IMG2IMG_JOBS_TABLE" not in os.environ


def test_lambda_context_looks_like_the_runtimes() -> None:
    context = new_context("img2img-local-worker", timeout_seconds=60, memory_mb=1024)
    assert context.function_name == "img2img-local-worker"
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == "1024"
    assert (
        context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:img2img-local-worker"
    )
    assert uuid.UUID(context.aws_request_id)
    assert context.log_group_name == "/aws/lambda/img2img-local-worker"
    assert 0 < context.get_remaining_time_in_millis() <= 60_000
    assert new_context("f", timeout_seconds=0, memory_mb=128).get_remaining_time_in_millis() == 0


def test_partial_batch_response_rules() -> None:
    ids = ["m1", "m2", "m3"]
    assert failed_ids(None, ids) == []
    assert failed_ids({}, ids) == []
    assert failed_ids({"batchItemFailures": []}, ids) == []
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids) == ["m2"]
    # Where Lambda fails the whole batch:
    for bad in (
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "m1"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "m1"},
        "ok",
    ):
        with pytest.raises(ValueError):
            failed_ids(bad, ids)


def test_proxy_response_mapping_rules() -> None:
    mapped = parse_proxy_response({"statusCode": 204})
    assert (mapped.status, mapped.body) == (204, b"")
    assert ("Content-Type", "application/json") in mapped.headers
    mapped = parse_proxy_response(
        {
            "statusCode": 200,
            "headers": {"X-One": "1", "Set-Cookie": "ignored"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    assert mapped.body == b"\x89PNG"
    assert [v for n, v in mapped.headers if n == "Set-Cookie"] == ["a=1", "b=2"]
    for bad in (
        None,
        {"body": "x"},
        {"statusCode": "200"},
        {"statusCode": 200, "body": {"a": 1}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
    ):
        with pytest.raises(MalformedProxyResponse):
            parse_proxy_response(bad)


# --- the API front -----------------------------------------------------------------------


def _last_api_event(fakes: FakeHandlers) -> tuple[dict[str, Any], Any]:
    return fakes.api_calls[-1]


def test_front_builds_the_rest_proxy_event(fake_stack: Any, fakes: FakeHandlers) -> None:
    reply = requests.get(
        f"{fake_stack.api_url}/v1/jobs/job%20one?x=1&x=2&name=%C3%A9t%C3%A9&empty=",
        headers={"X-Custom": "yes", "Idempotency-Key": "k-1"},
        timeout=10,
    )
    assert reply.status_code == 200
    event, context = _last_api_event(fakes)
    assert event["resource"] == "/v1/jobs/{job_id}"
    assert event["path"] == "/v1/jobs/job%20one"  # REST APIs pass the path and its parameters encoded
    assert event["pathParameters"] == {"job_id": "job%20one"}
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"x": "2", "name": "été", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "name": ["été"], "empty": [""]}
    assert event["headers"]["X-Custom"] == "yes"
    assert event["headers"]["Idempotency-Key"] == "k-1"
    assert event["multiValueHeaders"]["X-Custom"] == ["yes"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/v1/jobs/{job_id}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["path"] == "/v1/jobs/job%20one"
    assert ctx["stage"] == "local"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert isinstance(ctx["requestTimeEpoch"], int)
    assert reply.headers["x-amzn-RequestId"] == ctx["requestId"]
    APIGatewayProxyEventModel.model_validate(event)  # what Powertools' parser accepts
    assert context.function_name == r.API_FUNCTION_NAME
    assert context.get_remaining_time_in_millis() > 0
    assert set(event) == set(load_event("apigw_get_job"))
    assert set(ctx) == set(load_event("apigw_get_job")["requestContext"])


def test_front_names_the_caller_as_an_authorizer_would(fake_stack: Any, fakes: FakeHandlers) -> None:
    """EMULATED: no signature or key is checked, but each caller is named where API Gateway
    puts them: an unsigned request is local mode's one user (who also owns local S3 drops), an
    x-api-key is a key id, a SigV4 Authorization is the IAM user of its access key id."""
    identities = []
    signed = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    for headers in ({}, {"x-api-key": "k1"}, {"x-api-key": "k2"}, {"Authorization": signed}):
        requests.get(f"{fake_stack.api_url}/v1/health", headers=headers, timeout=10)
        identities.append(_last_api_event(fakes)[0]["requestContext"]["identity"])
    local_user, key_1, key_2, iam = identities
    assert local_user["user"] == local_user["caller"] == r.LOCAL_PRINCIPAL_ID
    assert local_user["userArn"] == f"arn:aws:iam::{r.ACCOUNT_ID}:user/local"
    assert key_1["apiKey"] == "k1" and key_1["apiKeyId"] and key_1["user"] is None
    assert key_1["apiKeyId"] != key_2["apiKeyId"]
    assert iam["accessKey"] == "AKIAIOSFODNN7EXAMPLE" and iam["user"] not in (None, r.LOCAL_PRINCIPAL_ID)
    for identity in identities:
        APIGatewayProxyEventModel.model_validate(
            {
                **_last_api_event(fakes)[0],
                "requestContext": {**_last_api_event(fakes)[0]["requestContext"], "identity": identity},
            }
        )


def test_front_passes_text_bodies_as_text_and_binary_as_base64(fake_stack: Any, fakes: FakeHandlers) -> None:
    body: dict[str, Any] = {"text_prompts": [{"text": "a café"}], "init_image_s3_key": "uploads/x.png"}
    requests.post(f"{fake_stack.api_url}/v1/image-to-image", json=body, timeout=10)
    event, _ = _last_api_event(fakes)
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == body
    assert event["headers"]["Content-Type"] == "application/json"

    png = sample_png((64, 64))
    requests.post(
        f"{fake_stack.api_url}/v1/image-to-image", data=png, headers={"Content-Type": "image/png"}, timeout=10
    )
    event, _ = _last_api_event(fakes)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == png


def test_front_maps_proxy_responses_back_to_http(fake_stack: Any, fakes: FakeHandlers) -> None:
    png = sample_png((32, 32))
    fakes.api_behaviour = lambda event, context: {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "Location": "/v1/jobs/1"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": base64.b64encode(png).decode(),
        "isBase64Encoded": True,
    }
    reply = requests.post(f"{fake_stack.api_url}/v1/jobs", json={}, timeout=10)
    assert reply.status_code == 201
    assert reply.content == png
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers["Location"] == "/v1/jobs/1"
    assert reply.headers["X-Multi"] == "a, b"


def test_front_root_and_unknown_paths(fake_stack: Any, fakes: FakeHandlers) -> None:
    requests.get(f"{fake_stack.api_url}/", timeout=10)
    assert _last_api_event(fakes)[0]["resource"] == "/"
    requests.delete(f"{fake_stack.api_url}/v2/things/1", timeout=10)
    event, _ = _last_api_event(fakes)
    assert (event["resource"], event["pathParameters"], event["httpMethod"]) == (
        "/{proxy+}",
        {"proxy": "v2/things/1"},
        "DELETE",
    )


def test_front_answers_502_when_the_function_fails(fake_stack: Any, fakes: FakeHandlers) -> None:
    def boom(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    fakes.api_behaviour = boom
    reply = requests.get(f"{fake_stack.api_url}/v1/health", timeout=10)
    assert (reply.status_code, reply.json()) == (502, {"message": "Internal server error"})
    fakes.api_behaviour = lambda event, context: {"status": 200}
    reply = requests.get(f"{fake_stack.api_url}/v1/health", timeout=10)
    assert (reply.status_code, reply.json()) == (502, {"message": "Internal server error"})


def test_front_rejects_requests_over_10_mb(fake_stack: Any, fakes: FakeHandlers) -> None:
    calls = len(fakes.api_calls)
    big = b"x" * (r.API_PAYLOAD_LIMIT_BYTES + 1)
    reply = requests.post(
        f"{fake_stack.api_url}/v1/image-to-image",
        data=big,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 413
    error = reply.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "POST /v1/uploads" in error["message"]
    assert error["details"] == []
    assert len(fakes.api_calls) == calls  # the function never ran


def test_front_rejects_events_over_lambdas_6_mb(fake_stack: Any, fakes: FakeHandlers) -> None:
    calls = len(fakes.api_calls)
    body = json.dumps({"init_image": "A" * (r.LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES + 10)})
    reply = requests.post(
        f"{fake_stack.api_url}/v1/image-to-image",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert "6 MB" in reply.json()["error"]["message"]
    assert len(fakes.api_calls) == calls


def test_front_answers_504_past_the_integration_timeout() -> None:
    release = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        release.wait(30)
        return {"statusCode": 200, "body": "{}"}

    front = ApiFront(slow, "127.0.0.1", 0, integration_timeout_seconds=0.2).start()
    try:
        reply = requests.get(f"{front.url}/v1/health", timeout=10)
        assert (reply.status_code, reply.json()) == (504, {"message": "Endpoint request timed out"})
    finally:
        release.set()
        front.stop()


# --- S3 -> SQS -> poller -------------------------------------------------------------------


def _s3_records(fakes: FakeHandlers, key: str) -> list[dict[str, Any]]:
    """Worker records whose S3 notification names key (decoded)."""
    found = []
    for rec in fakes.worker_records(lambda rec: '"Records"' in rec["body"]):
        for s3rec in json.loads(rec["body"])["Records"]:
            if unquote_plus(s3rec["s3"]["object"]["key"]) == key:
                found.append({"sqs": rec, "s3": s3rec})
    return found


def test_notification_config_sends_an_s3_test_event(fake_stack: Any, fakes: FakeHandlers) -> None:
    def test_events() -> list[dict[str, Any]]:
        return [
            json.loads(rec["body"]) for rec in fakes.worker_records(lambda rec: "s3:TestEvent" in rec["body"])
        ]

    events = wait_until(test_events)
    assert events[0]["Event"] == "s3:TestEvent"
    assert events[0]["Service"] == "Amazon S3"
    assert events[0]["Bucket"] == r.INPUT_BUCKET
    assert {"Time", "RequestId", "HostId"} <= set(events[0])


def test_inbox_upload_reaches_the_worker_as_an_sqs_event(fake_stack: Any, fakes: FakeHandlers) -> None:
    s3 = fake_stack.client("s3")
    key = f"inbox/{uuid.uuid4().hex}.png"
    s3.put_object(Bucket=r.INPUT_BUCKET, Key=f"elsewhere/{key}", Body=b"not watched")
    s3.put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=b"png bytes", Metadata={"prompt": "a cat"})
    [found] = wait_until(lambda: _s3_records(fakes, key))
    rec, s3rec = found["sqs"], found["s3"]
    assert rec["eventSource"] == "aws:sqs"
    assert rec["eventSourceARN"] == fake_stack.resources.queue_arn
    assert rec["awsRegion"] == "us-east-1"
    assert rec["md5OfBody"] == hashlib.md5(rec["body"].encode()).hexdigest()
    assert rec["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(rec["attributes"])
    assert rec["messageAttributes"] == {}
    assert s3rec["eventName"] == "ObjectCreated:Put"
    assert s3rec["s3"]["bucket"]["name"] == r.INPUT_BUCKET
    assert s3rec["s3"]["configurationId"] == r.INBOX_NOTIFICATION_ID
    assert s3rec["s3"]["object"]["size"] == len(b"png bytes")
    S3SqsEventNotificationModel.model_validate({"Records": [rec]})  # real S3's shape, strictly
    assert s3.head_object(Bucket=r.INPUT_BUCKET, Key=key)["Metadata"] == {"prompt": "a cat"}
    assert _s3_records(fakes, f"elsewhere/{key}") == []
    _, context = fakes.worker_calls[-1]
    assert context.function_name == r.WORKER_FUNCTION_NAME


@pytest.mark.parametrize(
    "name", ["my cat.png", "été 猫.png", "a+b=c&d.png", "dir/sub dir/x%41.png", "~tilde'quote\".png"]
)
def test_keys_arrive_encoded_as_moto_encodes_them(fake_stack: Any, fakes: FakeHandlers, name: str) -> None:
    key = f"inbox/{uuid.uuid4().hex[:8]}-{name}"
    fake_stack.client("s3").put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=b"x")
    [found] = wait_until(lambda: _s3_records(fakes, key))
    encoded = found["s3"]["s3"]["object"]["key"]
    # moto quote_plus-es the whole key ('/' -> %2F, ' ' -> +, '+' -> %2B); real S3 keeps '/'.
    assert encoded == quote_plus(key)
    assert unquote_plus(encoded) == key


def test_multipart_upload_and_copy_notify_once_each(fake_stack: Any, fakes: FakeHandlers) -> None:
    s3 = fake_stack.client("s3")
    key = f"inbox/{uuid.uuid4().hex}-multipart.png"
    upload = s3.create_multipart_upload(Bucket=r.INPUT_BUCKET, Key=key, Metadata={"prompt": "big"})
    parts = []
    for number, chunk in enumerate((b"a" * 5 * 1024 * 1024, b"b" * 1024), start=1):
        part = s3.upload_part(
            Bucket=r.INPUT_BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )
        parts.append({"ETag": part["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=r.INPUT_BUCKET, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    copy_key = key.replace("multipart", "copy")
    s3.copy_object(Bucket=r.INPUT_BUCKET, Key=copy_key, CopySource={"Bucket": r.INPUT_BUCKET, "Key": key})
    [copied] = wait_until(lambda: _s3_records(fakes, copy_key))
    assert copied["s3"]["eventName"] == "ObjectCreated:Copy"
    # moto also sends ObjectCreated:Put for a completed multipart upload; local mode drops it.
    assert [f["s3"]["eventName"] for f in _s3_records(fakes, key)] == [
        "ObjectCreated:CompleteMultipartUpload"
    ]
    assert s3.head_object(Bucket=r.INPUT_BUCKET, Key=key)["Metadata"] == {"prompt": "big"}


def test_presigned_post_upload_notifies(fake_stack: Any, fakes: FakeHandlers) -> None:
    key = f"inbox/{uuid.uuid4().hex}-posted.png"
    post = fake_stack.client("s3").generate_presigned_post(Bucket=r.INPUT_BUCKET, Key=key)
    reply = requests.post(post["url"], data=post["fields"], files={"file": b"png"}, timeout=10)
    assert reply.status_code == 204
    [found] = wait_until(lambda: _s3_records(fakes, key))
    assert found["s3"]["eventName"] == "ObjectCreated:Post"


def _tagged(fakes: FakeHandlers, tag: str) -> list[dict[str, Any]]:
    return fakes.worker_records(lambda rec: tag in rec["body"])


def _queue_empty(stack: Any) -> bool:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_partial_batch_failure_leaves_only_the_failed_record(fake_stack: Any, fakes: FakeHandlers) -> None:
    tag = uuid.uuid4().hex

    def fail_b_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = [
            {"itemIdentifier": rec["messageId"]}
            for rec in event["Records"]
            if json.loads(rec["body"]).get("name") == "b"
            and rec["attributes"]["ApproximateReceiveCount"] == "1"
        ]
        return {"batchItemFailures": failures}

    fakes.worker_behaviour = fail_b_once
    fake_stack.client("sqs").send_message_batch(
        QueueUrl=fake_stack.resources.queue_url,
        Entries=[{"Id": n, "MessageBody": json.dumps({"tag": tag, "name": n})} for n in "abc"],
    )
    # b comes back once its visibility timeout ends; a and c, deleted, never do.
    wait_until(lambda: len([rec for rec in _tagged(fakes, tag) if '"b"' in rec["body"]]) == 2)
    wait_until(lambda: _queue_empty(fake_stack))
    seen = sorted(
        (json.loads(rec["body"])["name"], rec["attributes"]["ApproximateReceiveCount"])
        for rec in _tagged(fakes, tag)
    )
    assert seen == [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")]


def test_a_record_that_keeps_failing_reaches_the_dlq(fake_stack: Any, fakes: FakeHandlers) -> None:
    tag = uuid.uuid4().hex

    def fail_tagged(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "batchItemFailures": [
                {"itemIdentifier": rec["messageId"]} for rec in event["Records"] if tag in rec["body"]
            ]
        }

    fakes.worker_behaviour = fail_tagged
    sqs = fake_stack.client("sqs")
    sqs.send_message(QueueUrl=fake_stack.resources.queue_url, MessageBody=json.dumps({"tag": tag}))

    def in_dlq() -> list[dict[str, Any]]:
        messages = sqs.receive_message(
            QueueUrl=fake_stack.resources.dlq_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        return [m for m in messages if tag in m["Body"]]

    [dead] = wait_until(in_dlq)
    # SQS moves it on the receive after the last: the worker saw it exactly maxReceiveCount times.
    counts = [rec["attributes"]["ApproximateReceiveCount"] for rec in _tagged(fakes, tag)]
    assert counts == [str(n) for n in range(1, r.QUEUE_MAX_RECEIVE_COUNT + 1)]
    assert json.loads(dead["Body"]) == {"tag": tag}
    sqs.delete_message(QueueUrl=fake_stack.resources.dlq_url, ReceiptHandle=dead["ReceiptHandle"])


@pytest.fixture
def private_queue(fake_stack: Any) -> Iterator[tuple[Any, str, str]]:
    """A queue of its own (visibility 1 s), polled by hand with poll_once()."""
    sqs = fake_stack.client("sqs")
    url = sqs.create_queue(
        QueueName=f"poller-{uuid.uuid4().hex[:12]}", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield sqs, url, arn
    sqs.delete_queue(QueueUrl=url)


def _poller(private_queue: tuple[Any, str, str], handler: Any) -> SqsPoller:
    sqs, url, arn = private_queue
    return SqsPoller(handler, sqs_client=sqs, queue_url=url, queue_arn=arn, batch_size=10, wait_seconds=1)


def _receive_all(private_queue: tuple[Any, str, str], poller: SqsPoller, expected: int) -> list[str]:
    """Poll until the handler has seen `expected` records (messages may come over several batches)."""
    seen: list[str] = []

    def step() -> bool:
        outcome = poller.poll_once()
        if outcome:
            seen.extend(outcome.received)
        return len(seen) >= expected

    wait_until(step, interval=0)
    return seen


def test_one_batch_partial_failure_deletes_the_rest(private_queue: tuple[Any, str, str]) -> None:
    sqs, url, _ = private_queue
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": n, "MessageBody": n} for n in "abc"])
    by_body: dict[str, str] = {}

    def fail_b(event: dict[str, Any], context: Any) -> dict[str, Any]:
        by_body.update({rec["body"]: rec["messageId"] for rec in event["Records"]})
        return {"batchItemFailures": [{"itemIdentifier": by_body["b"]}]}

    # Polled by hand, nothing else consumes: the three arrive in one batch.
    outcome = wait_until(_poller(private_queue, fail_b).poll_once)
    assert sorted(by_body) == ["a", "b", "c"]
    assert outcome.failed == [by_body["b"]]
    assert sorted(outcome.deleted) == sorted([by_body["a"], by_body["c"]])
    events: list[dict[str, Any]] = []
    wait_until(_poller(private_queue, lambda e, c: events.append(e)).poll_once)
    [again] = events[0]["Records"]
    assert (again["body"], again["attributes"]["ApproximateReceiveCount"]) == ("b", "2")


def test_a_raising_handler_returns_the_whole_batch(private_queue: tuple[Any, str, str]) -> None:
    sqs, url, _ = private_queue
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)])

    def raises(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("worker crashed")

    poller = _poller(private_queue, raises)
    first = _receive_all(private_queue, poller, 3)
    # Nothing was deleted: all three come back after the visibility timeout.
    again = _receive_all(private_queue, _poller(private_queue, lambda e, c: None), 3)
    assert sorted(again) == sorted(first)
    assert wait_until(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None)


def test_an_invalid_partial_response_fails_the_whole_batch(private_queue: tuple[Any, str, str]) -> None:
    sqs, url, _ = private_queue
    sqs.send_message(QueueUrl=url, MessageBody="only")
    outcome = wait_until(
        _poller(private_queue, lambda e, c: {"batchItemFailures": [{"itemIdentifier": "nope"}]}).poll_once
    )
    assert outcome.deleted == [] and outcome.failed == outcome.received
    assert outcome.error and "nope" in outcome.error
    outcome = wait_until(_poller(private_queue, lambda e, c: {"batchItemFailures": []}).poll_once)
    assert outcome.deleted == outcome.received


def test_message_attributes_reach_the_record_as_lambda_shapes_them(
    private_queue: tuple[Any, str, str],
) -> None:
    sqs, url, _ = private_queue
    sqs.send_message(
        QueueUrl=url,
        MessageBody="{}",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "job"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    events: list[dict[str, Any]] = []
    wait_until(_poller(private_queue, lambda e, c: events.append(e)).poll_once)
    [record] = events[0]["Records"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "job",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    assert "md5OfMessageAttributes" in record
    SqsModel.model_validate(events[0])


def test_the_poller_stops_cleanly(fake_stack: Any) -> None:
    assert fake_stack.poller.running
    poller = SqsPoller(
        lambda e, c: None,
        sqs_client=fake_stack.client("sqs"),
        queue_url=fake_stack.resources.dlq_url,  # nothing arrives there in this test
        queue_arn=fake_stack.resources.dlq_arn,
    ).start()
    assert poller.running
    poller.stop()
    assert not poller.running


# --- ports and the stack ------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("which", "env_var"), [("api_port", "IMG2IMG_API_PORT"), ("aws_port", "IMG2IMG_AWS_PORT")]
)
def test_a_busy_port_fails_at_once_naming_it(busy_port: int, which: str, env_var: str) -> None:
    ports = {"api_port": 0, "aws_port": 0, "bedrock_port": 0, which: busy_port}
    with pytest.raises(PortInUseError) as caught:
        start_local(
            **ports, api_handler=lambda e, c: None, worker_handler=lambda e, c: None, with_bedrock=False
        )
    assert str(busy_port) in str(caught.value)
    assert env_var in str(caught.value)


def test_make_local_reports_a_busy_port(busy_port: int) -> None:
    env = {
        **os.environ,
        "IMG2IMG_API_PORT": str(busy_port),
        "IMG2IMG_AWS_PORT": "0",
        "IMG2IMG_BEDROCK_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "img2img_local"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"port {busy_port}" in done.stderr and "IMG2IMG_API_PORT" in done.stderr


def test_one_stack_per_process(fake_stack: Any) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        start_local(api_port=0, aws_port=0, bedrock_port=0, with_bedrock=False)
    assert requests.get(f"{fake_stack.api_url}/v1/health", timeout=10).status_code == 200


def test_the_stack_exports_its_environment(fake_stack: Any) -> None:
    port = int(fake_stack.aws_url.rsplit(":", 1)[1])
    assert fake_stack.env["AWS_ENDPOINT_URL"] == fake_stack.aws_url
    assert fake_stack.env["IMG2IMG_QUEUE_URL"] == fake_stack.resources.queue_url
    assert fake_stack.env["IMG2IMG_QUEUE_URL"] == local_environment(port, 0)["IMG2IMG_QUEUE_URL"]
    for name, value in fake_stack.env.items():
        assert os.environ[name] == value


def test_queue_settings_are_ones_lambda_accepts() -> None:
    assert r.QUEUE_VISIBILITY_TIMEOUT_SECONDS >= r.WORKER_TIMEOUT_SECONDS  # else no event source mapping
    assert 1 <= r.WORKER_BATCH_SIZE <= 10
    assert r.API_INTEGRATION_TIMEOUT_SECONDS <= 29


def test_resources_are_created_as_the_stack_declares_them(fake_stack: Any) -> None:
    sqs, s3, ddb = (fake_stack.client(s) for s in ("sqs", "s3", "dynamodb"))
    attrs = sqs.get_queue_attributes(QueueUrl=fake_stack.resources.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": fake_stack.resources.dlq_arn,
        "maxReceiveCount": r.QUEUE_MAX_RECEIVE_COUNT,
    }
    table = ddb.describe_table(TableName=r.JOBS_TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    ttl = ddb.describe_time_to_live(TableName=r.JOBS_TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    [config] = s3.get_bucket_notification_configuration(Bucket=r.INPUT_BUCKET)["QueueConfigurations"]
    assert config["QueueArn"] == fake_stack.resources.queue_arn
    [rule] = config["Filter"]["Key"]["FilterRules"]  # S3 answers "Prefix", moto echoes "prefix"
    assert (rule["Name"].lower(), rule["Value"]) == ("prefix", "inbox/")
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {r.INPUT_BUCKET, r.OUTPUT_BUCKET}


# --- recorded event fixtures ----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EVENTS_DIR.glob("apigw_*.json")), ids=lambda p: p.stem)
def test_api_gateway_fixtures_are_rest_proxy_events(path: Path) -> None:
    event = json.loads(path.read_text())
    APIGatewayProxyEventModel.model_validate(event)
    resource, params = match_resource(event["path"])
    assert (event["resource"], event["pathParameters"]) == (resource, params)
    assert event["requestContext"]["resourcePath"] == resource
    assert event["requestContext"]["path"] == f"/{event['requestContext']['stage']}{event['path']}"
    if event["isBase64Encoded"]:
        base64.b64decode(event["body"], validate=True)


@pytest.mark.parametrize("path", sorted(EVENTS_DIR.glob("sqs_*.json")), ids=lambda p: p.stem)
def test_sqs_fixtures_are_lambda_sqs_events(path: Path) -> None:
    event = json.loads(path.read_text())
    SqsModel.model_validate(event)
    for record in event["Records"]:
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        body = json.loads(record["body"])
        if body.get("Event") == "s3:TestEvent":
            continue
        S3SqsEventNotificationModel.model_validate({"Records": [record]})


# --- the demo, end to end with the real handlers (its own process: one stack per process) ---


def test_demo_runs_every_door_and_copies_the_results(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "IMG2IMG_API_PORT": str(free_port()),
        "IMG2IMG_AWS_PORT": str(free_port()),
        "IMG2IMG_BEDROCK_PORT": str(free_port()),
        # The demo lives in the repository's tools/ (not packaged); it writes into its cwd.
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "local-output"
    assert (out / "sample.png").is_file()
    for door in ("sync-api", "async-api", "s3-drop"):
        images = list((out / door).glob("*.png"))
        metadata = [json.loads(p.read_text()) for p in (out / door).glob("*.json")]
        assert images and metadata, door
        assert metadata[0]["status"] == "SUCCEEDED"
        assert metadata[0]["door"] == ("s3" if door == "s3-drop" else "api")
