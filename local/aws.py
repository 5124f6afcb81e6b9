"""AWS emulation for local mode: moto's server in this process (S3, SQS, DynamoDB, EventBridge and
the S3 -> SQS notification), the service's resources, and small corrections that make moto's S3
notifications and EventBridge deliveries look like AWS's (align_moto_s3_events,
align_moto_events)."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from threading import Thread
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from img2img_local import resources as r
from img2img_local.storage_faults import STORAGE_FAULTS

log = logging.getLogger(__name__)

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class _QuietMotoRequestHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per AWS call drowns the service's own logs


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer binds its socket inside its thread, so a busy port leaves start()
    waiting forever. This one binds in the caller's thread: OSError surfaces at once."""

    def start(self) -> None:
        app = STORAGE_FAULTS.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, threaded=True, request_handler=_QuietMotoRequestHandler
        )
        self._thread = Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        self._server_ready_event.set()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def start_moto(host: str = r.DEFAULT_HOST, port: int = r.DEFAULT_AWS_PORT) -> MotoServer:
    align_moto_s3_events()
    align_moto_events()
    server = MotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


def reset_moto() -> None:
    """moto's state lives in module globals of this process: wipe it between stacks (what
    `POST /moto-api/reset` and mock_aws do)."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    STORAGE_FAULTS.clear()


def aws_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for the emulation, independent of the process environment."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=r.REGION,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        **DUMMY_CREDENTIALS,
    )


@dataclass(frozen=True)
class LocalResources:
    input_bucket: str
    output_bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    table_name: str


def create_resources(endpoint_url: str, settings: r.QueueSettings | None = None) -> LocalResources:
    """Create (idempotently) what the CDK stack would: buckets, queue + DLQ, table, and the
    inbox notification. Configuring the notification makes S3 send one s3:TestEvent."""
    settings = settings or r.QueueSettings()
    s3, sqs, ddb = (aws_client(s, endpoint_url) for s in ("s3", "sqs", "dynamodb"))
    for bucket in (r.INPUT_BUCKET, r.OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )

    # Versioned like the stack's input bucket: events carry versionId, jobs pin the version.
    s3.put_bucket_versioning(Bucket=r.INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dlq_url = sqs.create_queue(
        QueueName=r.JOBS_DLQ, Attributes={"MessageRetentionPeriod": str(settings.dlq_retention_seconds)}
    )["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = sqs.create_queue(
        QueueName=r.JOBS_QUEUE,
        Attributes={
            "VisibilityTimeout": str(settings.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(settings.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count}
            ),
        },
    )["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    # moto does not check it, but real S3 cannot deliver without it: keep local honest.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": _s3_may_send(queue_arn)})

    if r.JOBS_TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=r.JOBS_TABLE,
            AttributeDefinitions=[{"AttributeName": r.TABLE_PARTITION_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": r.TABLE_PARTITION_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_time_to_live(
            TableName=r.JOBS_TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": r.TABLE_TTL_ATTRIBUTE},
        )

    s3.put_bucket_notification_configuration(
        Bucket=r.INPUT_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": r.INBOX_NOTIFICATION_ID,
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": r.INBOX_PREFIX}]}},
                }
            ]
        },
    )
    return LocalResources(
        input_bucket=r.INPUT_BUCKET,
        output_bucket=r.OUTPUT_BUCKET,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        table_name=r.JOBS_TABLE,
    )


def _queue_arn(sqs: Any, queue_url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attrs["QueueArn"])


def _s3_may_send(queue_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{r.INPUT_BUCKET}"}},
                }
            ],
        }
    )


_ALIGNED = False


def align_moto_events() -> None:
    """moto 5.2 delivers an event to a rule's target without the envelope's `account`, which AWS
    documents in every event (tests/fixtures/eventbridge/event-envelope.json): put it back into
    moto's default input template. moto also adds its own `ingestion-time`; nothing here uses it."""
    from moto.events.utils import EventTemplateParser as parser

    if '"account"' not in parser.DEFAULT_EVENT_INPUT_TEMPLATE:
        parser.DEFAULT_EVENT_INPUT_TEMPLATE = parser.DEFAULT_EVENT_INPUT_TEMPLATE.replace(
            '"version": "0", ', '"version": "0", "account": "<account>", '
        )


def align_moto_s3_events() -> None:
    """Correct two differences between moto 5.2's S3 notifications and real S3's, in place:

    1. Completing a multipart upload makes moto send ObjectCreated:Put (before the upload's
       metadata is set) and then ObjectCreated:CompleteMultipartUpload; S3 sends only the
       latter. `aws s3 cp` of a file over 8 MB is a multipart upload, so drop the extra Put.
    2. moto's records lack userIdentity, requestParameters, responseElements,
       s3.bucket.ownerIdentity and s3.object.sequencer (and the test event RequestId and
       HostId), which strict parsers such as Powertools' S3Model require.

    Keys stay encoded as moto encodes them (quote_plus of the whole key: '/' -> %2F, ' ' -> +);
    real S3 leaves '/' alone. unquote_plus decodes both."""
    global _ALIGNED
    if _ALIGNED:
        return
    from moto.s3 import notifications as n

    if not all(hasattr(n, name) for name in ("send_event", "_get_s3_event", "_get_test_event")):
        log.warning("moto's S3 notification internals changed; S3 events are left as moto makes them")
        return
    original_send, original_event, original_test = n.send_event, n._get_s3_event, n._get_test_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        if event_name == n.S3NotificationEvent.OBJECT_CREATED_PUT_EVENT and getattr(key, "multipart", None):
            return
        original_send(account_id, event_name, bucket, key)

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original_event(event_name, bucket, key, notification_id)
        for record in event["Records"]:
            record.setdefault("userIdentity", {"principalId": f"AWS:{r.LOCAL_PRINCIPAL_ID}"})
            record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
            record.setdefault(
                "responseElements",
                {"x-amz-request-id": secrets.token_hex(8).upper(), "x-amz-id-2": secrets.token_urlsafe(48)},
            )
            s3 = record["s3"]
            s3["bucket"].setdefault("ownerIdentity", {"principalId": "A3LOCALOWNER"})
            s3["object"].setdefault("sequencer", secrets.token_hex(9).upper())
            version = getattr(key, "version_id", None)
            if version and version != "null":
                s3["object"].setdefault("versionId", version)
        return event

    def get_test_event(bucket_name: str) -> dict[str, Any]:
        event = original_test(bucket_name)
        event.setdefault("RequestId", secrets.token_hex(8).upper())
        event.setdefault("HostId", secrets.token_urlsafe(48))
        return event

    n.send_event = send_event
    n._get_s3_event = get_s3_event
    n._get_test_event = get_test_event
    _ALIGNED = True
