"""What the domain needs from the outside world. Adapters implement these with boto3; tests
may pass anything of the same shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from img2img.domain.job_events import JobFinished
from img2img.domain.records import JobRecord


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    data: bytes
    etag: str
    version_id: str | None
    content_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class ModelReply:
    payload: dict[str, Any]
    emulated: bool  # answered by the local Bedrock emulator, not a real model
    attempts: int
    # The JSON text `payload` was parsed from, when the adapter kept it (plain ASCII): the
    # pipeline stores the answer before anything else, and writing this text out again costs
    # nothing, where serialising a megabytes-long base64 image a second time costs milliseconds.
    text: bytes | None = None


class ObjectStorePort(Protocol):
    def get(
        self, bucket: str, key: str, *, max_bytes: int, version_id: str | None = None
    ) -> StoredObject: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def find(self, bucket: str, key: str) -> bytes | None: ...
    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str: ...
    def presign_get(self, bucket: str, key: str, expires_in: int) -> str: ...
    def presign_post(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> PresignedPost: ...


class ModelInvokerPort(Protocol):
    @property
    def region(self) -> str: ...
    def invoke(self, model_id: str, body: dict[str, Any], *, timeout: float | None = None) -> ModelReply:
        """`timeout`: seconds the model may take on this call (None: the client's own)."""
        ...


class JobStorePort(Protocol):
    def save(self, record: JobRecord, *, over_failed: bool = False) -> str | None:
        """Answers the status the record had before (None: this job had no record)."""
        ...

    def get(self, job_id: str) -> JobRecord: ...


class JobQueuePort(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class JobEventsPort(Protocol):
    def job_finished(self, event: JobFinished) -> None:
        """Announce that a job ended (its metadata JSON written). Never raises and never
        blocks for long: a job never depends on its event (a refused event is counted instead)."""
        ...
