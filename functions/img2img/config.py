"""Typed settings, read once from the environment at cold start. The CDK stack and local mode
set the same variables; nothing else in the code reads os.environ. AWS endpoints are not
settings of ours: boto3 reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> itself, which is
the only thing local mode changes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from img2img.catalog import DEFAULT_MODEL_ID

_PREFIX = "IMG2IMG_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    env: str = "local"
    input_bucket: str
    output_bucket: str
    jobs_table: str
    queue_url: str = ""
    allowed_model_ids: tuple[str, ...] = (DEFAULT_MODEL_ID,)
    default_model_id: str = DEFAULT_MODEL_ID
    # Tried in order when the chosen model is gone (end of life, not found, access denied).
    fallback_model_ids: tuple[str, ...] = ()
    bedrock_region: str | None = None  # defaults to the function's own region
    # Where each job's "Image Job Finished" event goes (cdk.json's event_bus_name; the account's
    # default bus unless an environment names one).
    event_bus_name: str = "default"

    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    presign_expiry_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    upload_max_bytes: int | None = Field(default=None, gt=0)  # default: max_image_bytes
    job_ttl_days: int = Field(default=30, gt=0)
    # The model client's read timeout: a call unanswered by then is a model_timeout, never
    # called again (the model may have run, and billed). The stack sets each function's: the
    # api's leaves time to answer before API Gateway's integration timeout, the worker's is its
    # function timeout less the same margin. Sync calls with a deadline of their own end sooner.
    model_read_timeout_seconds: float = Field(default=25.0, gt=0)
    # Every model call (the sync route's and the worker's) ends this long before its invocation's
    # deadline, leaving time to store the answer, the result and the records and to answer (a
    # model_timeout with the job id, never a gateway 504 or a killed worker that leaves the job
    # RUNNING and its answer unstored).
    model_reserve_seconds: float = Field(default=3.0, gt=0)
    # Bounded retries of ModelTimeoutException in the worker (adapters/bedrock.py; botocore
    # never retries a model call, since a read timeout may already be billed).
    model_timeout_retries: int = Field(default=1, ge=0, le=5)
    # Must equal the queue's redrive maxReceiveCount: the last receive records the failure.
    max_receive_count: int = Field(default=5, ge=1)

    # How callers authenticate (cdk.json's api_auth; API Gateway enforces it, not the function).
    # With "cognito", GET /v1/auth-config tells the page where to sign users in: the user
    # pool's managed login domain (local mode: its emulated endpoints), the page's public app
    # client and the redirect URI registered for it.
    api_auth: Literal["iam", "api_key", "cognito"] = "iam"
    auth_base_url: str | None = None
    auth_client_id: str | None = None
    auth_redirect_uri: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """IMG2IMG_<FIELD> variables, in any case; others are ignored. Values are strings that
        pydantic converts as it validates (a comma-separated list for the model ids). Plain
        pydantic, not pydantic-settings: that package cost each cold start about 3% more CPU
        (instructions counted under callgrind) for a dictionary comprehension."""
        return cls.model_validate(
            {
                key[len(_PREFIX) :].lower(): value
                for key, value in environ.items()
                if key.upper().startswith(_PREFIX)
            }
        )

    @field_validator("allowed_model_ids", "fallback_model_ids", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def upload_cap(self) -> int:
        """An upload larger than what a job may read would only fail later."""
        return min(self.upload_max_bytes or self.max_image_bytes, self.max_image_bytes)

    @model_validator(mode="after")
    def _signs_in_somewhere(self) -> Settings:
        if self.api_auth == "cognito" and not (
            self.auth_base_url and self.auth_client_id and self.auth_redirect_uri
        ):
            raise ValueError(
                "IMG2IMG_API_AUTH 'cognito' needs IMG2IMG_AUTH_BASE_URL, IMG2IMG_AUTH_CLIENT_ID "
                "and IMG2IMG_AUTH_REDIRECT_URI"
            )
        return self

    @model_validator(mode="after")
    def _default_is_allowed(self) -> Settings:
        if self.default_model_id not in self.allowed_model_ids:
            raise ValueError(
                f"IMG2IMG_DEFAULT_MODEL_ID {self.default_model_id!r} is not in IMG2IMG_ALLOWED_MODEL_IDS"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment()  # required fields come from the environment
