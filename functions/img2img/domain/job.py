"""A job: one source image, one request, one model call, one result. Both doors build Jobs
and hand them to the pipeline; the job table keeps a JobRecord (domain/records.py) of each."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from img2img.domain.caller import Caller
from img2img.domain.records import Door, JobRecord, OutputInfo, SourceInfo, Status
from img2img.domain.request import ImageToImageRequest
from img2img.vocabulary import API_RESULTS


@dataclass(frozen=True)
class SourceRef:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None  # known when the door already read the object (an S3 drop)


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
    prefix = f"{API_RESULTS}{job_id}/"
    return OutputKeys(output_bucket, f"{prefix}result", f"{prefix}metadata.json")


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
    request_hash: str | None = None  # the request's hash, when an Idempotency-Key named the job
    # The API door's inline source, stored by the attempt that claimed the job (so a keyed
    # request with another body never replaces the first one's source).
    store_source: bool = False

    def effective_request(self) -> dict[str, Any]:
        """What was asked, without image bytes: for metadata, job records and logs."""
        body = self.request.model_dump(exclude_none=True, exclude={"init_image"})
        body["model_id"] = self.model_id
        body["init_image_s3_key"] = self.source.key
        return body

    def record(self, status: Status, now: str) -> JobRecord:
        """The job record as it stands before it has an outcome."""
        return JobRecord(
            job_id=self.job_id,
            status=status,
            door=self.door,
            created_at=self.created_at,
            updated_at=now,
            model_id=self.model_id,
            request=self.effective_request(),
            source=SourceInfo(bucket=self.source.bucket, key=self.source.key),
            output=OutputInfo(bucket=self.output.bucket, metadata_key=self.output.metadata_key),
            caller=self.caller,
        )


def stable_id(*parts: object) -> str:
    """A deterministic job id: a redelivered event maps to the job it already is."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:32]
