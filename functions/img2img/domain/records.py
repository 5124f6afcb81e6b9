"""What the service writes down, typed once and serialized everywhere: the metadata JSON every
job leaves in the output bucket, the job record (job table and GET /v1/jobs/{id}), the summary
a door keeps, and the message that queues an API job. `make schema` publishes the metadata
JSON's schema (docs/metadata.schema.json) for people who parse it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from img2img.domain.caller import Caller
from img2img.domain.errors import ServiceError
from img2img.vocabulary import FINAL_STATUSES, Door, FinishReason, Status


def optional(**kwargs: Any) -> Any:
    """An optional field that is left out, not written as null, when it has no value."""
    return Field(default=None, exclude_if=lambda value: value is None, **kwargs)


class _Record(BaseModel):
    # Unknown keys are kept when reading: a record written by a newer version still loads.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Detail(_Record):
    field: str
    message: str


class ErrorInfo(_Record):
    """Every error, in responses and records alike: a stable code, words for people, the fields."""

    code: str
    message: str
    details: list[Detail] = Field(default_factory=list)

    @classmethod
    def of(cls, error: ServiceError) -> ErrorInfo:
        return cls.model_validate(error.to_dict())


class FallbackFrom(_Record):
    """A model that answered end of life, not found or access denied before the job's ran."""

    model_id: str
    code: str
    reason: str


class SourceInfo(_Record):
    bucket: str
    key: str
    etag: str | None = optional()
    version_id: str | None = optional()
    sha256: str | None = optional()
    size: int | None = optional()
    format: str | None = optional()
    width: int | None = optional()
    height: int | None = optional()


class Preparation(_Record):
    resize_mode: str
    from_: list[int] = Field(alias="from")
    to: list[int]
    passthrough: bool
    operations: list[str] = Field(default_factory=list)


class ModelInfo(_Record):
    id: str
    region: str | None = optional()
    engine: str | None = optional()
    notes: list[str] | None = optional()
    emulated: bool | None = optional()
    attempts: int | None = optional()
    replayed: bool | None = optional()  # finished from the answer an earlier attempt stored
    fallback_from: list[FallbackFrom] | None = optional()


class ResultInfo(_Record):
    bucket: str | None = optional()
    key: str | None = optional()
    seed: int
    finish_reason: FinishReason
    format: str | None = optional()
    bytes: int | None = optional()
    sha256: str | None = optional()
    detail: str | None = optional()  # why a filtered job has no image


class OutputInfo(_Record):
    bucket: str
    metadata_key: str


class ServiceInfo(_Record):
    name: str
    version: str
    environment: str


class Metadata(_Record):
    """The metadata JSON: one per job, from either door, successful or not, written last (so
    whoever sees it can rely on the result image being there). A job refused before its source
    was read has no preparation, model, result or timings."""

    job_id: str
    status: Status
    door: Door
    created_at: str
    completed_at: str | None = optional()
    source: SourceInfo
    preparation: Preparation | None = optional()
    request: dict[str, Any] = Field(default_factory=dict)
    model: ModelInfo | None = optional()
    result: ResultInfo | None = optional()
    timings_ms: dict[str, int] | None = optional()
    error: ErrorInfo | None = optional()
    output: OutputInfo
    service: ServiceInfo

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_json_dict(), indent=2).encode()


class JobRecord(_Record):
    """The job as the job table stores it and GET /v1/jobs/{id} shows it (its owner only)."""

    job_id: str
    status: Status
    door: Door
    created_at: str
    updated_at: str
    model_id: str
    request: dict[str, Any] = Field(default_factory=dict)
    source: SourceInfo
    output: OutputInfo | None = optional()
    result: ResultInfo | None = optional()
    error: ErrorInfo | None = optional()
    fallback_from: list[FallbackFrom] | None = optional()
    caller: Caller | None = optional()

    @model_validator(mode="before")
    @classmethod
    def _older_records(cls, data: Any) -> Any:
        """Records written before these types held `{}` where nothing was known yet."""
        if isinstance(data, dict):
            return {
                k: (None if v == {} and k in ("output", "result", "error") else v) for k, v in data.items()
            }
        return data

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def belongs_to(self, caller: Caller) -> bool:
        return self.caller == caller


class Summary(_Record):
    """What a finished job leaves for its door (and the on_finish hook gets): no image bytes."""

    job_id: str
    status: Status
    result: ResultInfo | None = optional()
    output: OutputInfo | None = optional()
    error: ErrorInfo | None = optional()
    fallback_from: list[FallbackFrom] | None = optional()


class QueuedOutput(_Record):
    bucket: str
    stem: str
    metadata_key: str


class QueuedJob(_Record):
    """The queue message of an async API job: the request without image bytes (the source is
    already in S3), small enough for SQS. The worker trusts no more of it than it re-checks."""

    kind: Literal["api_job"] = "api_job"
    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")  # what ApiDoor hands out (uuid4().hex or stable_id)
    model_id: str
    created_at: str
    request: dict[str, Any]
    output: QueuedOutput
    caller: Caller


class ManifestImage(_Record):
    """The queue message of one image a manifest names (the worker fans a manifest out into
    these): the manifest as S3 named it, the image's place in it and its request. The worker
    derives the job id and keys again from the manifest and the index."""

    kind: Literal["manifest_image"] = "manifest_image"
    bucket: str
    key: str
    version_id: str | None = None
    etag: str
    principal: str | None = None
    event_time: str | None = None
    index: int = Field(ge=0)
    request: dict[str, Any]


class ManifestJob(_Record):
    job_id: str
    image: str  # the key the manifest named
    result_key: str
    metadata_key: str


class ManifestJobs(_Record):
    """A manifest's own JSON once its images are queued (results/<path>/<m>.json.json): its jobs,
    each with its result and metadata keys. A manifest refused as a whole gets a metadata JSON
    (status FAILED) at the same key instead."""

    status: Literal["QUEUED"] = "QUEUED"
    manifest: SourceInfo
    jobs: list[ManifestJob]


def metadata_schema() -> dict[str, Any]:
    """The metadata JSON's JSON Schema, as published in docs/metadata.schema.json."""
    schema = Metadata.model_json_schema(mode="serialization", by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "img2img metadata JSON"
    schema["description"] = (
        "What every img2img job writes beside its result (results/<key>.json for the S3 door, "
        "jobs/<job id>/metadata.json for the API door). Generated from domain/records.py."
    )
    return schema
