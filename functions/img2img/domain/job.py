"""A job: one source image, one request, one model call, one result. Both doors build Jobs
and hand them to the pipeline; the job table keeps a JobView of each."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from img2img.domain.caller import Caller
from img2img.domain.request import ImageToImageRequest

Door = Literal["api", "s3"]
Status = Literal["QUEUED", "RUNNING", "SUCCEEDED", "CONTENT_FILTERED", "FAILED"]
FINAL_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "CONTENT_FILTERED", "FAILED"})


@dataclass(frozen=True)
class SourceRef:
    bucket: str
    key: str
    version_id: str | None = None


@dataclass(frozen=True)
class OutputKeys:
    bucket: str
    stem: str  # the result image key without its extension
    metadata_key: str

    def image_key(self, extension: str) -> str:
        """`extension` with its dot, as imaging.FILE_EXTENSIONS has it."""
        return f"{self.stem}{extension}"


def api_output_keys(output_bucket: str, job_id: str) -> OutputKeys:
    """Where an API-door job's result and metadata go: derived from its id alone, so a queue
    message cannot point a job anywhere else."""
    return OutputKeys(output_bucket, f"jobs/{job_id}/result", f"jobs/{job_id}/metadata.json")


@dataclass(frozen=True)
class Job:
    job_id: str
    door: Door
    request: ImageToImageRequest
    model_id: str
    source: SourceRef
    output: OutputKeys
    created_at: str
    source_data: bytes | None = None  # the source, when the door already holds its bytes
    caller: Caller | None = None  # who asked (API door); S3-door jobs name the dropper if S3 did

    def effective_request(self) -> dict[str, Any]:
        """What was asked, without image bytes: for metadata, job records and logs."""
        body = self.request.model_dump(exclude_none=True, exclude={"init_image"})
        body["model_id"] = self.model_id
        body["init_image_s3_key"] = self.source.key
        return body


@dataclass
class JobView:
    """The job as `GET /v1/jobs/{id}` shows it (and as the job table stores it)."""

    job_id: str
    status: str
    door: str
    created_at: str
    updated_at: str
    model_id: str
    request: dict[str, Any]
    source: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # The models that answered end of life / not found / access denied before model_id ran.
    fallback_from: list[dict[str, str]] | None = None
    # Who asked (domain/caller.py): GET /v1/jobs/{id} answers only them.
    caller: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobView:
        return cls(**data)

    @classmethod
    def of(cls, job: Job, status: Status, now: str) -> JobView:
        return cls(
            job_id=job.job_id,
            status=status,
            door=job.door,
            created_at=job.created_at,
            updated_at=now,
            model_id=job.model_id,
            request=job.effective_request(),
            source={"bucket": job.source.bucket, "key": job.source.key},
            output={"bucket": job.output.bucket, "metadata_key": job.output.metadata_key},
            caller=job.caller.to_dict() if job.caller else None,
        )

    def belongs_to(self, caller: Caller) -> bool:
        return self.caller == caller.to_dict()


def stable_id(*parts: object) -> str:
    """A deterministic job id: a redelivered event maps to the job it already is."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:32]
