"""SQS events as Lambda delivers them to the worker, wrapping S3 notifications or job messages."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from urllib.parse import quote_plus

from img2img.domain.caller import Caller
from img2img_local.poller import to_lambda_record

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:jobs-queue"
# The IAM principal these S3 events name as the dropper, and where their own uploads live: a
# manifest may name those (and inbox/ images), nobody else's.
DROPPER_ID = "AIDACKCEVSQ6C2EXAMPLE"
DROPPER_UPLOADS = Caller("iam", DROPPER_ID).upload_prefix


def s3_notification(
    bucket: str, key: str, *, version_id: str | None = None, etag: str = "abc"
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": 1, "eTag": etag, "sequencer": "0A1B"}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-25T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": f"AWS:{DROPPER_ID}"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "inbox",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def sqs_event(*bodies: Any, receive_count: int = 1) -> dict[str, Any]:
    """Messages as SQS's ReceiveMessage gives them, wrapped into the Lambda SQS event by local
    mode's own poller (local/poller.py): one factory for the event shape, here and there."""
    records = []
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        received = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "AQEB" + uuid.uuid4().hex,
            "MD5OfBody": hashlib.md5(text.encode()).hexdigest(),
            "Body": text,
            "Attributes": {
                "ApproximateReceiveCount": str(receive_count),
                "SentTimestamp": "1795600000000",
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": "1795600000001",
            },
        }
        records.append(to_lambda_record(received, QUEUE_ARN, region="us-east-1"))
    return {"Records": records}
