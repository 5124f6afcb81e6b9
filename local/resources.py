"""Names and settings of local mode's AWS resources, in one place so that the CDK stack's
values can be checked against them (import this module; it pulls in nothing heavy).
Everything here mirrors what the deployed stack must do, not a local convenience."""

from __future__ import annotations

from dataclasses import dataclass

from img2img import catalog, vocabulary

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs and queue URLs carry it
# Local mode's one AWS user: unsigned API requests and every S3 drop are theirs (API Gateway
# names them in $context.identity.user, S3 events in userIdentity.principalId = "AWS:<id>").
LOCAL_PRINCIPAL_ID = "AIDAJLOCALEXAMPLE"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_PORT = 3000
DEFAULT_AWS_PORT = 4566
DEFAULT_BEDROCK_PORT = 4567
API_PORT_ENV = "IMG2IMG_API_PORT"
AWS_PORT_ENV = "IMG2IMG_AWS_PORT"
BEDROCK_PORT_ENV = "IMG2IMG_BEDROCK_PORT"

INPUT_BUCKET = "img2img-local-input"
OUTPUT_BUCKET = "img2img-local-output"
JOBS_QUEUE = "img2img-local-jobs"
JOBS_DLQ = "img2img-local-jobs-dlq"
JOBS_TABLE = "img2img-local-jobs"
# Where each job's "Image Job Finished" event goes: the account's default bus, as the stack's
# unless cdk.json names one (moto's EventBridge has it from the start).
EVENT_BUS = "default"
TABLE_PARTITION_KEY = "pk"  # String
TABLE_TTL_ATTRIBUTE = "ttl"

# The S3 door: objects created under this prefix notify the jobs queue.
INBOX_PREFIX = vocabulary.INBOX
INBOX_NOTIFICATION_ID = "img2img-inbox"
RESULTS_PREFIX = vocabulary.RESULTS

# Models: the deployed default and fallbacks (img2img.catalog), and every live model the
# emulator serves, so that local mode runs the same translation production runs.
ALLOWED_MODEL_IDS = (
    catalog.SD3_5_LARGE,
    catalog.STABLE_IMAGE_ULTRA_V1_1,
    catalog.CONTROL_STRUCTURE,
    catalog.CONTROL_SKETCH,
    catalog.STYLE_GUIDE,
)
DEFAULT_MODEL_ID = catalog.DEFAULT_MODEL_ID
FALLBACK_MODEL_IDS = catalog.DEFAULT_FALLBACK_MODEL_IDS

# Jobs queue and its event source mapping, equal to cdk.json's defaults. Lambda refuses a
# mapping whose queue visibility timeout is below the function timeout; AWS advises 6 times it,
# so a failed record comes back after 12 minutes (tests shorten it with QueueSettings).
WORKER_TIMEOUT_SECONDS = 120
WORKER_MEMORY_MB = 1024
WORKER_BATCH_SIZE = 1  # one image per invocation: a model call can take most of the timeout
VISIBILITY_TIMEOUT_FACTOR = 6
QUEUE_VISIBILITY_TIMEOUT_SECONDS = VISIBILITY_TIMEOUT_FACTOR * WORKER_TIMEOUT_SECONDS
QUEUE_MAX_RECEIVE_COUNT = 5  # then SQS moves the message to the DLQ (AWS advises >= 5 with Lambda)
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600  # SQS's default
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the maximum: time to look at what failed

# API door. API Gateway REST answers 504 after its integration timeout (29 s by default).
API_INTEGRATION_TIMEOUT_SECONDS = 29
API_TIMEOUT_SECONDS = 29
API_MEMORY_MB = 1024
API_STAGE = "local"
# Content types API Gateway passes to Lambda base64-encoded (the REST API's binaryMediaTypes).
API_BINARY_MEDIA_TYPES = ("image/*", "application/octet-stream", "multipart/form-data")
API_PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024  # API Gateway REST request payload, hard limit
LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024  # the whole event JSON, and the response

# api_auth "cognito" (start_local(api_auth="cognito"), IMG2IMG_LOCAL_API_AUTH=cognito make local):
# the user pool and the page's client in moto, and where the EMULATED managed login answers on
# the local API's own address (local/cognito.py).
API_AUTH_ENV = "IMG2IMG_LOCAL_API_AUTH"
API_AUTH_MODES = ("iam", "cognito")
USER_POOL = "img2img-local-users"
USER_POOL_CLIENT = "img2img-local-page"
EMULATED_AUTH_PREFIX = "/_emulated/cognito"

API_FUNCTION_NAME = "img2img-local-api"
WORKER_FUNCTION_NAME = "img2img-local-worker"

# The functions' other settings, equal to cdk.json's defaults (tests/infra/test_local_parity.py).
JOB_TTL_DAYS = 30
PRESIGN_EXPIRY_SECONDS = 3600
LOG_LEVEL = "INFO"
SERVICE_NAME = "img2img"
METRICS_NAMESPACE = "Img2Img"
# Each function's model read timeout is its timeout less this margin (the api's: its sync budget).
SYNC_MARGIN_SECONDS = 3
MODEL_READ_TIMEOUT_SECONDS = {
    "api": API_TIMEOUT_SECONDS - SYNC_MARGIN_SECONDS,
    "worker": WORKER_TIMEOUT_SECONDS - SYNC_MARGIN_SECONDS,
}


@dataclass(frozen=True)
class QueueSettings:
    """The jobs queue's settings; tests shorten the visibility timeout to see redelivery."""

    visibility_timeout_seconds: int = QUEUE_VISIBILITY_TIMEOUT_SECONDS
    max_receive_count: int = QUEUE_MAX_RECEIVE_COUNT
    retention_seconds: int = QUEUE_RETENTION_SECONDS
    dlq_retention_seconds: int = DLQ_RETENTION_SECONDS
