"""What the API door answers, typed once: the routes return these, so the served OpenAPI spec
documents every body the service sends (and the schema fuzz checks them). The sync answer is
Bedrock's SDXL response shape with the service's fields beside it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from img2img.domain.records import ErrorInfo, JobRecord, optional
from img2img.vocabulary import FinishReason, Status


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_Answer):
    s3_uri: str
    url: str | None = optional(description="presigned GET, for API-door results only")


class Locations(_Answer):
    image: Location | None = optional()
    metadata: Location | None = optional()


class SdxlArtifact(_Answer):
    seed: int
    finishReason: FinishReason
    base64: str | None = optional(description="left out with ?return=url")


class SyncAnswer(Locations):
    """`POST /v1/image-to-image`: what Bedrock's SDXL 1.0 answered, plus where the job lives."""

    result: Literal["success"] = "success"
    artifacts: list[SdxlArtifact]
    job_id: str
    status: Status
    error: ErrorInfo | None = optional(description="when the model finished with ERROR")


class JobLinks(_Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    self_: str = Field(alias="self", serialization_alias="self")


class JobAccepted(_Answer):
    """`POST /v1/jobs`: queued; poll `links.self`."""

    job_id: str
    status: Status
    links: JobLinks


class JobAnswer(JobRecord):
    """`GET /v1/jobs/{job_id}`: the job record, with where its image and metadata are once it
    has ended."""

    image: Location | None = optional()
    metadata: Location | None = optional()


class UploadForm(_Answer):
    url: str
    fields: dict[str, str]
    method: Literal["POST"] = "POST"


class UploadTicket(_Answer):
    """`POST /v1/uploads`: a presigned POST into the caller's own uploads folder."""

    init_image_s3_key: str
    upload: UploadForm
    max_bytes: int
    expires_in: int


class ModelAnswer(_Answer):
    id: str
    engine: str
    fields: dict[str, str] = Field(description="what this model does with each SDXL field")


class ModelsAnswer(_Answer):
    default: str
    models: list[ModelAnswer]
    fallbacks: list[ModelAnswer] = Field(
        description="tried in this order, once each, when a job's model answers end of life, "
        "not found or access denied"
    )


class HealthAnswer(_Answer):
    status: Literal["ok"] = "ok"
    environment: str
    version: str


class SignInSettings(_Answer):
    """Where the page signs users in: OAuth 2.0 authorization code grant with PKCE (S256) at
    a public app client, then the ID token in the Authorization header of every API call."""

    authorize_url: str
    token_url: str
    logout_url: str
    client_id: str
    redirect_uri: str
    scopes: str


class AuthConfigAnswer(_Answer):
    """How this deployment authenticates callers (cdk.json's api_auth); `sign_in` with
    "cognito" only."""

    api_auth: Literal["iam", "api_key", "cognito"]
    sign_in: SignInSettings | None = None


class ErrorAnswer(_Answer):
    """Every error the API answers: one shape."""

    error: ErrorInfo
    job_id: str | None = optional(description="the job recorded before the failure")
    request_id: str | None = optional(description="5xx only: what to quote to an operator")
