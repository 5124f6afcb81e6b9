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


class ConfigError(ValueError):
    """cdk.json does not describe a usable environment. The message names the environment and key."""


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
    # keep it inside the Bedrock requests-per-minute quota of the model.
    worker_max_concurrency: Annotated[int, Field(ge=2, le=1000)]
    worker_batch_size: Annotated[int, Field(ge=1, le=10)]
    # Deliveries of one message before it moves to the dead-letter queue.
    max_receive_count: Annotated[int, Field(ge=1, le=1000)]

    # "iam": every method needs SigV4 (AWS_IAM). "api_key": every method needs x-api-key, and a
    # usage plan applies the throttle (and the optional daily quota) per key.
    api_auth: Literal["iam", "api_key"]
    api_throttle_rate_limit: Annotated[float, Field(gt=0, le=10000)]
    api_throttle_burst_limit: Annotated[int, Field(ge=1, le=5000)]
    api_key_quota_per_day: Annotated[int, Field(ge=1)] | None = None
    # Create the account-level role API Gateway needs to write execution logs (retained on
    # destroy: it is shared by every API in the account and region). Set false where the
    # account already has one (Settings -> CloudWatch log role ARN in the API Gateway console).
    api_cloudwatch_role: bool

    log_retention_days: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]

    # Lifecycle expiry (days) of sources in the input bucket, results in the output bucket and
    # S3 server access logs; job records expire (DynamoDB TTL) after job_ttl_days.
    input_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    result_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    access_log_expiry_days: Annotated[int, Field(ge=1, le=3650)]
    job_ttl_days: Annotated[int, Field(ge=1, le=3650)]
    presign_expiry_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)]

    # "destroy": `cdk destroy` deletes buckets (emptied first), table and log groups.
    # "retain": they outlive the stack, and the table has deletion protection.
    removal_policy: Literal["destroy", "retain"]
    point_in_time_recovery: bool

    # Alarms go to an SNS topic; with an address it gets an e-mail subscription (confirm it).
    alarm_email: Email | None = None
    sync_latency_p90_alarm_ms: Annotated[int, Field(ge=100, le=60000)]
    model_failures_alarm_threshold: Annotated[int, Field(ge=1)]

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
