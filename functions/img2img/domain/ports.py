"""What the domain needs from the outside world. Adapters implement these with boto3; tests
may pass anything of the same shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from img2img.domain.imaging import PreparedImage
from img2img.domain.job_events import JobFinished
from img2img.domain.job_states import State
from img2img.domain.records import JobRecord
from img2img.domain.request import ImageToImageRequest
from img2img.vocabulary import FinishReason


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


class ObjectStorePort(Protocol):
    def get(
        self, bucket: str, key: str, *, max_bytes: int, version_id: str | None = None
    ) -> StoredObject: ...
    def find(self, bucket: str, key: str) -> StoredObject | None: ...
    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> str: ...
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


@dataclass(frozen=True)
class Written:
    """What one conditional write of a job record found: whether it took effect, and the record
    as it stood before (None: there was none)."""

    applied: bool
    before: State | None
    record: JobRecord | None


class JobStorePort(Protocol):
    def write(
        self,
        record: JobRecord,
        *,
        now: float,
        calls: int = 0,
        lease: float = 0.0,
        retry: bool = False,
        request_hash: str | None = None,
        billed: bool = False,
    ) -> Written:
        """Move the job to `record.status` if job_states.allowed says it may (a RUNNING write
        counts the attempt; `calls` is the writer's own attempt; a release, QUEUED with
        `calls`, gives the count back unless its call may have `billed`). Never raises for a
        refusal."""
        ...

    def get(self, job_id: str) -> JobRecord: ...


class JobQueuePort(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...
    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        """Every message, or a retryable StorageError (some may have been sent)."""
        ...


# --- model engines (img2img/engines/ implements these; the domain is handed `engine_for`) ---


@dataclass(frozen=True)
class ModelCall:
    body: dict[str, Any]  # the InvokeModel body, JSON-serialisable
    notes: tuple[str, ...] = field(default_factory=tuple)  # every field approximated or dropped


@dataclass(frozen=True)
class Artifact:
    seed: int
    image: bytes  # decoded image bytes as the model returned them
    finish_reason: FinishReason
    detail: str | None = None  # the model's own reason text, when it gave one


class Engine(Protocol):
    """Turns the SDXL request (the service's contract) into one model family's InvokeModel
    body and that family's response back into an SDXL artifact. It does no I/O."""

    family: str  # "sdxl", "sd3", "nova"
    model_ids: tuple[str, ...]  # base model ids this engine serves (no inference-profile prefix)

    def check_request(self, request: ImageToImageRequest) -> None:
        """The model's rules on the request alone, before any image is read or stored."""
        ...

    def build_body(self, request: ImageToImageRequest, image: PreparedImage) -> ModelCall: ...

    def parse_response(self, payload: dict[str, Any], call: ModelCall) -> Artifact: ...

    def field_support(self) -> dict[str, str]:
        """For GET /v1/models: each SDXL field -> what this engine does with it."""
        ...


EngineLookup = Callable[[str], Engine]  # a model id -> its engine (raises InvalidRequest)


class JobEventsPort(Protocol):
    def job_finished(self, event: JobFinished) -> None:
        """Announce that a job ended (its metadata JSON written). Never raises and never
        blocks for long: a job never depends on its event (a refused event is counted instead)."""
        ...
