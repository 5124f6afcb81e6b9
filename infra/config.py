"""Per-environment settings, read from the `img2img` block of cdk.json's context and validated at
synth time. Nothing here calls AWS or git: the account stays unknown (a CloudFormation token)
unless an environment names it.

cdk.json holds

    "img2img": {
      "defaults":     { <every key below, shared by all environments> },
      "environments": { "dev": { <overrides> }, "staging": {...}, "prod": {...} }
    }

An environment is `defaults` updated by its own entry (a shallow merge; `tags` merge key by
key). Adding an environment is adding an entry. Every problem is reported as
`cdk.json environment '<env>': key '<key>': <what is wrong>`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from img2img.catalog import retirement
from img2img.domain.errors import InvalidRequest
from img2img.engines import engine_for

CONTEXT_KEY = "img2img"
ENV_CONTEXT_KEY = "env"
STACK_PREFIX = "Img2Img"

# API Gateway's default integration timeout for REST APIs (it can be raised per account and
# region by a quota request; the sync route is built for the default).
API_GATEWAY_MAX_INTEGRATION_TIMEOUT_SECONDS = 29
# The queue's visibility timeout is this many times the worker's timeout (AWS's guidance for
# Lambda event sources on SQS: retries of a batch must not overlap a running invocation).
VISIBILITY_TIMEOUT_FACTOR = 6
# How long the jobs queue keeps a message (infra/jobs.py): an unconsumed job is lost after it.
QUEUE_RETENTION_DAYS = 4
# How long the dead-letter queue keeps a message: the longest SQS keeps one, time to redrive.
DEAD_LETTER_RETENTION_DAYS = 14
# The longest a job's message can live: the dead-letter queue's retention, then a redrive starts
# it again in the jobs queue. Results outlive it, so a redelivery finds its result whenever it
# comes (and never calls the model again), even after the job record expired.
MESSAGE_LIFETIME_DAYS = DEAD_LETTER_RETENTION_DAYS + QUEUE_RETENTION_DAYS
# AWS advises a redrive maxReceiveCount of at least 5 for a queue a Lambda event source reads:
# a receive whose batch was throttled or cut short by scaling still counts, and a lower count
# sends healthy jobs to the dead-letter queue.
MIN_MAX_RECEIVE_COUNT = 5
# The api function's reserved concurrency is never set below this (one sync call in flight and
# one instance left for the quick routes: health, job status, models, uploads, the page).
MIN_API_RESERVED_CONCURRENCY = 2

# Commercial regions where Lambda SnapStart is not offered, as AWS lists them
# (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html, "Supported Regions").
SNAPSTART_UNAVAILABLE_REGIONS = {
    "ap-southeast-6": "Asia Pacific (New Zealand)",
    "ap-east-2": "Asia Pacific (Taipei)",
}

# The retention periods CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)

ENV_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$|^[a-z]$")
_S3_BUCKET_NAME_MAX = 63
_ACCOUNT_ID_LENGTH = 12
_LONGEST_BUCKET_KIND = "output"  # bucket kinds: input, output, logs

Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
ModelId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:[a-z0-9]+)*$", max_length=200)
]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w .:/=+\-@]+$")]
TagValue = Annotated[str, StringConstraints(max_length=256, pattern=r"^[\w .:/=+\-@]*$")]


COGNITO_KEYS = frozenset(
    {"cognito_feature_plan", "cognito_mfa", "cognito_self_sign_up", "cognito_domain_prefix"}
)


class ConfigError(ValueError):
    """cdk.json does not describe a usable environment. The message names the environment and key."""


class Webhook(BaseModel):
    """An HTTPS endpoint that receives every finished job's event (infra/events.py): EventBridge
    POSTs the event to `url` with the header `header_name` set to the value of the Secrets
    Manager secret `secret_name` (a plain string, created by you), which the receiver checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    url: Annotated[str, StringConstraints(pattern=r"^https://[^\s/?#]+(/\S*)?$", max_length=2048)]
    secret_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_/+=.@-]{1,512}$")]
    header_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] = (
        "x-img2img-webhook-secret"
    )


class EnvironmentConfig(BaseModel):
    """One environment's settings. Field docs are the reference for cdk.json's keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN.pattern)]
    # Where the stack lives. `account` is optional: without it the stack is account-agnostic and
    # deploys into whatever account the credentials belong to.
    region: Region
    account: AccountId | None = None
    # Where Bedrock is called (default: the stack's region). Model access is granted per region.
    bedrock_region: Region | None = None

    # Models callers may choose (`model_id` in a request) and the one used when they don't.
    # Foundation model ids (`stability.sd3-5-large-v1:0`) or inference profile ids (`us.<id>`).
    allowed_model_ids: Annotated[tuple[ModelId, ...], Field(min_length=1)]
    default_model_id: ModelId
    # Tried in order, once each, when the chosen model answers end of life, not found or
    # access denied (never on a caller's bad input or a content filter). Not choosable by
    # callers unless also in allowed_model_ids.
    fallback_model_ids: tuple[ModelId, ...] = ()
    # The lifecycle watch reads bedrock:GetFoundationModel for every configured model on this
    # schedule (an EventBridge schedule expression) and alarms on one that is LEGACY or gone.
    lifecycle_watch_schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = (
        "rate(1 day)"
    )

    # The api function answers the sync route: its timeout is the integration timeout.
    api_memory_mb: Annotated[int, Field(ge=128, le=10240)]
    api_timeout_seconds: Annotated[int, Field(ge=5, le=API_GATEWAY_MAX_INTEGRATION_TIMEOUT_SECONDS)]
    # The sync route gives up this long before the timeout, so it can still answer (with a job).
    sync_margin_seconds: Annotated[int, Field(ge=1, le=20)]
    worker_memory_mb: Annotated[int, Field(ge=128, le=10240)]
    worker_timeout_seconds: Annotated[int, Field(ge=30, le=900)]
    # At most this many worker invocations at once (SQS event source maximum concurrency, >= 2):
    # at most bedrock_requests_per_minute (checked), so the workers alone cannot exceed it.
    worker_max_concurrency: Annotated[int, Field(ge=2, le=1000)]
    worker_batch_size: Annotated[int, Field(ge=1, le=10)]
    # Deliveries of one message before it moves to the dead-letter queue: at least
    # MIN_MAX_RECEIVE_COUNT (5). The worker reads it (IMG2IMG_MAX_RECEIVE_COUNT) to know its last try.
    max_receive_count: Annotated[int, Field(ge=1, le=1000)]
    # Model invocations per minute this environment may make. The documented default on-demand
    # quota for image models is low: SET IT TO THE ACCOUNT'S REAL QUOTA for the model in the
    # model region (Service Quotas -> Amazon Bedrock -> "On-demand model inference requests per
    # minute for <model>"). The sync route's throttle, the api function's reserved concurrency
    # and the cap on worker_max_concurrency derive from it (see the properties below).
    bedrock_requests_per_minute: Annotated[int, Field(ge=1, le=100000)]
    # Reserve api_reserved_concurrency for the api function (off by default: Lambda always keeps
    # 100 executions unreserved, and a new account's limit may be 10, so a reservation would fail
    # the deploy there). `make preflight` checks the account allows it before a deploy.
    api_reserve_concurrency: bool = False

    # "iam": every method needs SigV4 (AWS_IAM). "api_key": every method needs x-api-key, and a
    # usage plan applies the throttle (and the optional daily quota) per key. "cognito": a user
    # pool with managed login (authorization code grant with PKCE, a public app client); the
    # page, the docs page and the page's sign-in settings load without a token, every other
    # route needs the user's ID token (a Cognito user pools authorizer).
    api_auth: Literal["iam", "api_key", "cognito"]
    # api_auth "cognito" only. The user pool's feature plan: "plus" turns on threat protection
    # (formerly advanced security) in full-function mode, which AWS recommends and which only
    # the Plus plan offers; "essentials" has managed login but no threat protection (cheaper
    # per monthly active user; cdk-nag's COG8 is then acknowledged with this key as the reason).
    cognito_feature_plan: Literal["essentials", "plus"] = "plus"
    # "required": every user sets up an authenticator app (TOTP) at first sign-in (AWS's advice,
    # cdk-nag's COG2). "optional": users may. "off": password only.
    cognito_mfa: Literal["required", "optional", "off"] = "required"
    # Anyone who can reach the sign-in page may create an account. Off: an operator adds users
    # (README: aws cognito-idp admin-create-user).
    cognito_self_sign_up: bool = False
    # The managed login domain, https://<prefix>.auth.<region>.amazoncognito.com; unique in the
    # region across all accounts. Default: img2img-<env>-<account id>.
    cognito_domain_prefix: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")] | None
    ) = None
    api_throttle_rate_limit: Annotated[float, Field(gt=0, le=10000)]
    api_throttle_burst_limit: Annotated[int, Field(ge=1, le=5000)]
    api_key_quota_per_day: Annotated[int, Field(ge=1)] | None = None
    # api_auth "api_key" only: one key per caller, all in the usage plan, so each caller gets the
    # throttle and daily quota to itself (one shared key would make every user one caller). Key
    # `<stack>-<caller>`; the first is the one the ApiKeyId output (and the img2img command) reads.
    api_key_callers: tuple[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")], ...] = (
        "default",
    )
    # Create the account-level role API Gateway needs to write execution logs (retained on
    # destroy: it is shared by every API in the account and region). Set false where the
    # account already has one (Settings -> CloudWatch log role ARN in the API Gateway console).
    api_cloudwatch_role: bool

    log_retention_days: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]

    # Lambda SnapStart for both functions: each publishes a version (its init and wiring.prime
    # run once, then snapshotted) behind a `live` alias that API Gateway and the queue invoke.
    # A cold start then resumes the snapshot instead of importing. It has a price (a cache charge
    # while the version is live, and a charge per restore) and is not offered in every region
    # (SNAPSTART_UNAVAILABLE_REGIONS); README: Cold start.
    snapstart: bool

    # Lifecycle expiry (days) of sources in the input bucket, results in the output bucket and
    # S3 server access logs; job records expire (DynamoDB TTL) after job_ttl_days.
    input_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    result_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    access_log_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    job_ttl_days: Annotated[int, Field(ge=1, le=3650)]
    presign_expiry_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)]

    # "destroy": `cdk destroy` deletes buckets (emptied first), table and log groups.
    # "retain": they outlive the stack (and a replacement), and the table has deletion
    # protection; a failed first deployment still rolls them back, so it can be retried
    # (CloudFormation's RetainExceptOnCreate, see infra/removal.py).
    removal_policy: Literal["destroy", "retain"]
    point_in_time_recovery: bool

    # Alarms go to an SNS topic; with an address it gets an e-mail subscription (confirm it).
    alarm_email: Email | None = None
    sync_latency_p90_alarm_ms: Annotated[int, Field(ge=100, le=60000)]
    # The oldest job in the queue has waited this long (seconds, Maximum over 5 minutes): the
    # workers are not keeping up, or not consuming at all. Below the queue's retention, after
    # which the job is lost.
    queue_age_alarm_seconds: Annotated[int, Field(ge=300, lt=QUEUE_RETENTION_DAYS * 24 * 3600)]
    # IAM role ARNs (your operators') that may also send to the jobs queue: the dead-letter
    # redrive (StartMessageMoveTask) sends as its caller, and the queue refuses every other sender.
    queue_redrive_principal_arns: tuple[
        Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")], ...
    ] = ()
    model_failures_alarm_threshold: Annotated[int, Field(ge=1)]

    # Job events (infra/events.py): the EventBridge bus each job's "Image Job Finished" event is
    # put on, "default" (the account's default bus) or the name of a bus that already exists in
    # the stack's account and region. The functions may put events on that bus only.
    event_bus_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]{1,256}$")] = "default"
    # Optional: deliver each event of this environment to an HTTPS endpoint (see Webhook).
    webhook: Webhook | None = None

    tags: dict[TagKey, TagValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentConfig:
        if len(set(self.allowed_model_ids)) != len(self.allowed_model_ids):
            raise ValueError("key 'allowed_model_ids': lists a model id twice")
        for key in ("allowed_model_ids", "fallback_model_ids"):
            problem = _model_problem(getattr(self, key))
            if problem:
                raise ValueError(f"key '{key}': {problem}")
        if len(set(self.fallback_model_ids)) != len(self.fallback_model_ids):
            raise ValueError("key 'fallback_model_ids': lists a model id twice")
        if self.default_model_id in self.fallback_model_ids:
            raise ValueError("key 'fallback_model_ids': lists the default model, which is tried first anyway")
        if self.default_model_id not in self.allowed_model_ids:
            raise ValueError(
                f"key 'default_model_id': {self.default_model_id!r} is not one of allowed_model_ids "
                f"({', '.join(self.allowed_model_ids)})"
            )
        if self.sync_margin_seconds >= self.api_timeout_seconds:
            raise ValueError(
                "key 'sync_margin_seconds': must be less than api_timeout_seconds "
                f"({self.api_timeout_seconds})"
            )
        if self.snapstart and self.region in SNAPSTART_UNAVAILABLE_REGIONS:
            raise ValueError(
                f"key 'snapstart': Lambda SnapStart is not available in {self.region} "
                f"({SNAPSTART_UNAVAILABLE_REGIONS[self.region]}); set it false for this environment"
            )
        if self.max_receive_count < MIN_MAX_RECEIVE_COUNT:
            raise ValueError(
                f"key 'max_receive_count': {self.max_receive_count} is below {MIN_MAX_RECEIVE_COUNT}: AWS "
                "advises a maxReceiveCount of at least 5 for a queue read by a Lambda event source "
                "(throttled or interrupted receives count too, and would send healthy jobs to the "
                "dead-letter queue)"
            )
        if self.worker_max_concurrency > self.bedrock_requests_per_minute:
            raise ValueError(
                f"key 'worker_max_concurrency': {self.worker_max_concurrency} is more than "
                f"bedrock_requests_per_minute ({self.bedrock_requests_per_minute}): the workers alone "
                "would exceed the model's quota; raise the quota (and the setting) or lower the concurrency"
            )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"key 'log_retention_days': {self.log_retention_days} is not a CloudWatch Logs retention "
                f"period (one of {', '.join(map(str, LOG_RETENTION_DAYS))})"
            )
        reserved = sorted(key for key in self.tags if key.lower().startswith("aws:"))
        if reserved:
            raise ValueError(f"key 'tags': the 'aws:' prefix is reserved by AWS ({', '.join(reserved)})")
        if self.api_key_quota_per_day is not None and self.api_auth != "api_key":
            raise ValueError("key 'api_key_quota_per_day': only applies when api_auth is 'api_key'")
        if not self.api_key_callers or len(set(self.api_key_callers)) != len(self.api_key_callers):
            raise ValueError("key 'api_key_callers': name each caller once (at least one)")
        if self.result_expiry_days < max(self.job_ttl_days, MESSAGE_LIFETIME_DAYS):
            raise ValueError(
                f"key 'result_expiry_days': {self.result_expiry_days} is shorter than job_ttl_days "
                f"({self.job_ttl_days}) or a message's lifetime ({MESSAGE_LIFETIME_DAYS} days: dead-letter "
                "retention, then a redrive): a job's result is its stored answer, so it must outlive "
                "every record and message that can bring the job back"
            )
        if self.api_auth != "cognito":
            for key in sorted(COGNITO_KEYS & self.model_fields_set):
                raise ValueError(f"key '{key}': only applies when api_auth is 'cognito'")
        if self.cognito_domain_prefix is not None and re.search(
            "aws|amazon|cognito", self.cognito_domain_prefix
        ):
            raise ValueError(
                "key 'cognito_domain_prefix': Cognito refuses prefixes that contain 'aws', 'amazon' "
                "or 'cognito'"
            )
        if self.api_throttle_burst_limit < self.api_throttle_rate_limit:
            raise ValueError(
                "key 'api_throttle_burst_limit': must be at least api_throttle_rate_limit "
                "(the bucket must hold one second of the steady rate)"
            )
        longest = len(self.bucket_name_prefix) + len(f"-{_LONGEST_BUCKET_KIND}-") + _ACCOUNT_ID_LENGTH
        longest += 1 + len(self.region)
        if longest > _S3_BUCKET_NAME_MAX:
            raise ValueError(
                f"environment name {self.name!r} with region {self.region!r} makes bucket names of "
                f"{longest} characters (S3 allows {_S3_BUCKET_NAME_MAX}): use a shorter name"
            )
        return self

    @property
    def configured_model_ids(self) -> tuple[str, ...]:
        """Every model the functions may call: the allowed ones, then the fallbacks."""
        return self.allowed_model_ids + tuple(
            m for m in self.fallback_model_ids if m not in self.allowed_model_ids
        )

    # Names: every physical name derives from the stack name, so environments never collide.
    @property
    def stack_name(self) -> str:
        return f"{STACK_PREFIX}-{self.name}"

    @property
    def bucket_name_prefix(self) -> str:
        return f"{STACK_PREFIX.lower()}-{self.name}"

    @property
    def model_region(self) -> str:
        return self.bedrock_region or self.region

    @property
    def sync_budget_seconds(self) -> int:
        return self.api_timeout_seconds - self.sync_margin_seconds

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        return VISIBILITY_TIMEOUT_FACTOR * self.worker_timeout_seconds

    # The Bedrock quota, in one place. A sync request makes one model call and holds an api
    # function instance for at most api_timeout_seconds (T).
    #   rate  = rpm / 60 requests per second: the sync route's steady throttle, so the route alone
    #           never asks for more calls per minute than the quota.
    #   burst = max(1, ceil(rate)): API Gateway's token bucket holds one second of the steady rate
    #           and at least one request (a bucket of 0 would refuse everything).
    #   reserved concurrency = max(2, floor(burst + rate * T)): a token bucket admits at most
    #           burst + rate * T requests in any window of T seconds, so no more sync calls than
    #           that can be in flight at once; reserving exactly that many never throttles a
    #           request the gateway admitted, and never allows a call the quota has no room for
    #           (e.g. a direct invoke). Computed in integers: (burst * 60 + rpm * T) // 60.
    #           Never below 2: the quick routes share the function (MIN_API_RESERVED_CONCURRENCY).
    # Example: rpm 6, T 29 s -> rate 0.1/s, burst 1, reserved max(2, (60 + 174) // 60) = 3.
    @property
    def sync_throttle_rate_limit(self) -> float:
        return self.bedrock_requests_per_minute / 60

    @property
    def sync_throttle_burst_limit(self) -> int:
        return max(1, math.ceil(self.sync_throttle_rate_limit))

    @property
    def api_reserved_concurrency(self) -> int:
        admitted = (
            self.sync_throttle_burst_limit * 60 + self.bedrock_requests_per_minute * self.api_timeout_seconds
        ) // 60
        return max(MIN_API_RESERVED_CONCURRENCY, admitted)

    @property
    def destroy_on_delete(self) -> bool:
        return self.removal_policy == "destroy"


def _model_problem(model_ids: tuple[str, ...]) -> str | None:
    """A retired model would fail every job, an unknown one has no engine: refuse both at synth."""
    for model_id in model_ids:
        retired = retirement(model_id)
        if retired:
            return retired.message(model_id)
        try:
            engine_for(model_id)
        except InvalidRequest as exc:
            return exc.details[0].message if exc.details else exc.message
    return None


def environment_names(block: Mapping[str, Any]) -> list[str]:
    environments = block.get("environments")
    return sorted(environments) if isinstance(environments, Mapping) else []


def load_environment(block: Mapping[str, Any] | None, env_name: str | None) -> EnvironmentConfig:
    """The validated settings of `env_name` from cdk.json's `img2img` context block."""
    if not isinstance(block, Mapping):
        raise ConfigError(f"cdk.json: context key '{CONTEXT_KEY}' is missing or not an object")
    environments = block.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError(f"cdk.json: '{CONTEXT_KEY}.environments' must be a non-empty object")
    known = ", ".join(environment_names(block))
    if not env_name:
        raise ConfigError(f"no environment selected: pass -c {ENV_CONTEXT_KEY}=<name> (one of: {known})")
    if env_name not in environments:
        raise ConfigError(f"cdk.json has no environment {env_name!r} (known: {known})")
    defaults = block.get("defaults", {})
    own = environments[env_name]
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"cdk.json: '{CONTEXT_KEY}.defaults' must be an object")
    if not isinstance(own, Mapping):
        raise ConfigError(f"cdk.json environment {env_name!r}: must be an object")
    if "name" in own:
        raise ConfigError(
            f"cdk.json environment {env_name!r}: key 'name': is the entry's own key, not a setting"
        )
    merged: dict[str, Any] = {**defaults, **own}
    tags = {**defaults.get("tags", {}), **own.get("tags", {})} if "tags" in defaults or "tags" in own else {}
    merged["tags"] = tags
    merged["name"] = env_name
    merged = {key: tuple(value) if isinstance(value, list) else value for key, value in merged.items()}
    try:
        return EnvironmentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"cdk.json environment {env_name!r}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if not loc:
            problems.append(message)
            continue
        key = loc[0] + "".join(f"[{part}]" for part in loc[1:])
        if error["type"] == "missing":
            problems.append(f"key '{key}': is required (set it in 'defaults' or in the environment)")
        elif error["type"] == "extra_forbidden":
            problems.append(f"key '{key}': is not a setting (a typo?)")
        else:
            problems.append(f"key '{key}': {message} (got {error['input']!r})")
    return "; ".join(problems)
