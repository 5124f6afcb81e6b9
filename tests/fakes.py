"""Test doubles, all in one place.

In memory, one per port of domain/ports.py: `MemoryObjectStore`, `FakeModel`, `MemoryJobStore`,
`MemoryQueue`, `MemoryJobEvents`. Each behaves as its adapter does, error for error; the same
assertions run against both (tests/contracts.py: the fakes in tests/domain/test_fake_contracts.py,
the adapters over moto in tests/handlers/test_adapter_contracts.py, the Bedrock adapter in
tests/unit/test_bedrock_adapter.py). Faults are injected through the fakes' own `fail(...)`
(`refuse(...)` for events), never by reaching into private parts.
`House` builds the real Pipeline, ApiDoor and QueueWorker on top of them (tests/domain/).

For the real adapters: `FakeBedrock`, a bedrock-runtime client (InvokeModel) that raises real
botocore ClientErrors, which moto cannot fake in-process, and `png_bytes`."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError
from PIL import Image

from img2img.adapters.s3 import gone_version
from img2img.domain.api_door import ApiDoor
from img2img.domain.door_settings import DoorSettings
from img2img.domain.errors import (
    FieldError,
    ImageTooLarge,
    JobNotFound,
    ServiceError,
    SourceNotFound,
    StorageError,
)
from img2img.domain.imaging import ImageLimits
from img2img.domain.job_states import State, allowed
from img2img.domain.pipeline import Attempt, Pipeline
from img2img.domain.ports import ModelReply, PresignedPost, StoredObject, Written
from img2img.domain.queue_worker import QueueWorker
from img2img.domain.records import JobRecord, Summary
from img2img.engines import engine_for

# The test environment's names, the same in memory and over moto (tests/handlers/world.py).
INPUT, OUTPUT, TABLE, QUEUE = "in-bucket", "out-bucket", "jobs-table", "jobs-queue"
SD3 = "stability.sd3-5-large-v1:0"
ULTRA = "stability.stable-image-ultra-v1:1"
STRUCTURE = "us.stability.stable-image-control-structure-v1:0"
MODELS = (SD3, ULTRA, STRUCTURE)
DEFAULT_MODEL = SD3
REGION = "us-east-1"


def png_bytes(width: int = 1024, height: int = 1024, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


# --- what a live Stability model answers (tests/fixtures/bedrock/*.json, "responses") ----------

# The documented non-success answers of the live Stability models: the reason, no seeds, no images.
NOT_SUCCESS = {"CONTENT_FILTERED": "Filter reason: prompt", "ERROR": "Inference error"}
_RESULT_PNG = png_bytes(64, 64)


def stability_answer(body: dict[str, Any], finish_reason: str = "SUCCESS") -> dict[str, Any]:
    """The documented answer shape: one seed (the body's, else 1234), no finish reason and one
    image; a filtered or failed call the reason alone."""
    if finish_reason in NOT_SUCCESS:
        return {"finish_reasons": [NOT_SUCCESS[finish_reason]]}
    return {
        "seeds": [body.get("seed") or 1234],
        "finish_reasons": [None],
        "images": [base64.b64encode(_RESULT_PNG).decode()],
    }


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Fault:
    """The next `times` calls (None: every call) of `op` that `matches` raise `error()`."""

    op: str
    matches: Callable[..., bool]
    error: Callable[[], BaseException]
    times: int | None = None
    hits: int = 0

    def strike(self, op: str, *args: Any) -> None:
        if op != self.op or (self.times is not None and self.hits >= self.times) or not self.matches(*args):
            return
        self.hits += 1
        raise self.error()


class _Faulty:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def _strike(self, op: str, *args: Any) -> None:
        for fault in self.faults:
            fault.strike(op, *args)


# --- ObjectStorePort ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    data: bytes
    etag: str
    version_id: str | None
    content_type: str
    metadata: dict[str, str]


class MemoryObjectStore(_Faulty):
    """S3 as the ObjectStore adapter shows it: per-bucket versioning, MD5 ETags, lower-cased
    metadata names, the adapter's errors (a missing source is SourceNotFound, a missing object of
    our own or any bucket fault a StorageError), presigned URLs and POST policies that name the
    key but sign nothing. `fail("put", where="metadata.json", times=3)` makes writes fail as S3
    does past botocore's retries."""

    def __init__(self, buckets: dict[str, bool] | None = None) -> None:
        super().__init__()
        self._buckets: dict[str, dict[str, list[_Version]]] = {}
        self._versioned: dict[str, bool] = {}
        self._ids = itertools.count(1)
        self.writes: list[tuple[str, str]] = []  # (bucket, key) of every write, in order
        for name, versioned in (buckets or {}).items():
            self.create_bucket(name, versioned=versioned)

    # -- arranging and inspecting, as a test (or a user with the AWS CLI) would --

    def create_bucket(self, name: str, *, versioned: bool = False) -> None:
        self._buckets.setdefault(name, {})
        self._versioned[name] = versioned

    def delete_bucket(self, name: str) -> None:
        del self._buckets[name]

    def add(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "binary/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Put an object as someone else would (a user's drop or upload); answers what S3 says
        of it (its ETag and version)."""
        version = self._write(bucket, key, data, content_type, metadata or {})
        return self._stored(bucket, key, version)

    def fail(
        self,
        op: str,
        *,
        bucket: str | None = None,
        where: str = "",
        times: int | None = None,
        error: Callable[[], BaseException] | None = None,
    ) -> Fault:
        """`op` ("get", "find", "put") on keys containing `where` (in `bucket`, if
        given) fails `times` times (None: always) with the adapter's StorageError, or `error()`."""
        verb = "write" if op == "put" else "read"

        def matches(b: str, k: str) -> bool:
            return (bucket is None or b == bucket) and where in k

        fault = Fault(
            op,
            matches,
            error or (lambda: StorageError(f"could not {verb} a key", internal="injected fault")),
            times,
        )
        self.faults.append(fault)
        return fault

    def keys(self, bucket: str) -> list[str]:
        return sorted(self._buckets[bucket])

    def object(self, bucket: str, key: str) -> StoredObject:
        return self._stored(bucket, key, self._buckets[bucket][key][-1])

    def read(self, bucket: str, key: str) -> bytes:
        return self.object(bucket, key).data

    def json(self, bucket: str, key: str) -> Any:
        return json.loads(self.read(bucket, key))

    # -- the port --

    def get(self, bucket: str, key: str, *, max_bytes: int, version_id: str | None = None) -> StoredObject:
        self._strike("get", bucket, key)
        versions = self._bucket(bucket, "read", key).get(key)
        if not versions:
            raise SourceNotFound(
                "init_image_s3_key names no object in the input bucket (never uploaded, or expired)",
                [FieldError("init_image_s3_key", "no such object in the input bucket")],
                internal=f"s3://{bucket}/{key}",
            )
        found = versions[-1]
        if version_id:
            match = [v for v in versions if v.version_id == version_id]
            if not match:  # S3's NoSuchVersion
                raise gone_version(bucket, key, version_id)
            found = match[0]
        if len(found.data) > max_bytes:
            raise ImageTooLarge(
                f"the source is {len(found.data)} bytes; the limit is {max_bytes}",
                [FieldError("init_image", f"larger than {max_bytes} bytes")],
            )
        return self._stored(bucket, key, found)

    def find(self, bucket: str, key: str) -> StoredObject | None:
        self._strike("find", bucket, key)
        versions = self._bucket(bucket, "read", key).get(key)
        return self._stored(bucket, key, versions[-1]) if versions else None

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> str:
        self._strike("put", bucket, key)
        return self._write(bucket, key, data, content_type, metadata or {}).etag

    def presign_get(self, bucket: str, key: str, expires_in: int) -> str:
        return (
            f"https://{bucket}.s3.amazonaws.com/{quote(key)}"
            f"?X-Amz-Expires={expires_in}&X-Amz-Signature=in-memory"
        )

    def presign_post(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> PresignedPost:
        expiration = datetime.now(UTC) + timedelta(seconds=expires_in)
        policy = {
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
                {"bucket": bucket},
                {"key": key},
            ],
        }
        return PresignedPost(
            url=f"https://{bucket}.s3.amazonaws.com/",
            fields={
                "Content-Type": content_type,
                "key": key,
                "policy": base64.b64encode(json.dumps(policy).encode()).decode(),
                "x-amz-signature": "in-memory",
            },
        )

    # -- inside --

    def _bucket(self, bucket: str, verb: str, key: str) -> dict[str, list[_Version]]:
        if bucket not in self._buckets:
            raise StorageError(f"could not {verb} {key}", internal=f"s3://{bucket}/{key}: NoSuchBucket")
        return self._buckets[bucket]

    def _write(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> _Version:
        objects = self._bucket(bucket, "write", key)
        version = _Version(
            data=bytes(data),
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            version_id=f"v{next(self._ids)}" if self._versioned[bucket] else None,
            content_type=content_type,
            metadata={name.lower(): value for name, value in metadata.items()},
        )
        if self._versioned[bucket]:
            objects.setdefault(key, []).append(version)
        else:
            objects[key] = [version]
        self.writes.append((bucket, key))
        return version

    @staticmethod
    def _stored(bucket: str, key: str, version: _Version) -> StoredObject:
        return StoredObject(
            bucket=bucket,
            key=key,
            data=version.data,
            etag=version.etag,
            version_id=version.version_id,
            content_type=version.content_type,
            metadata=dict(version.metadata),
        )


# --- ModelInvokerPort ---------------------------------------------------------------------------


@dataclass
class Call:
    model_id: str
    body: dict[str, Any]
    timeout: float | None


def bedrock_error(code: str, model_id: str = SD3, message: str | None = None) -> ServiceError:
    """The domain error the real Bedrock adapter raises for InvokeModel's `code`: made by that
    adapter itself, over FakeBedrock, so its words are the adapter's."""
    from img2img.adapters.bedrock import BedrockInvoker

    fake = FakeBedrock(errors=[code], messages={code: message} if message else {})
    try:
        BedrockInvoker(fake, timeout_retries=0, attempts=1).invoke(model_id, {})
    except ServiceError as error:
        return error
    raise AssertionError(f"{code} raised no domain error")


END_OF_LIFE = "This model version has reached the end of its life."


@dataclass
class FakeModel:
    """The model invoker: records every call, answers the documented Stability payload (or
    `finish_reason`'s), raises `errors` first (domain errors, one per call) and, for a model in
    `gone`, what the adapter raises for Bedrock's end-of-life answer, every time."""

    finish_reason: str = "SUCCESS"
    errors: list[ServiceError] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    emulated: bool = False
    region_name: str = REGION
    calls: list[Call] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.region_name

    @property
    def model_ids(self) -> list[str]:
        return [call.model_id for call in self.calls]

    def invoke(self, model_id: str, body: dict[str, Any], *, timeout: float | None = None) -> ModelReply:
        self.calls.append(Call(model_id, copy.deepcopy(body), timeout))
        if model_id in self.gone:
            raise bedrock_error("ResourceNotFoundException", model_id, END_OF_LIFE)
        if self.errors:
            raise self.errors.pop(0)
        return ModelReply(stability_answer(body, self.finish_reason), self.emulated, 1)


# --- JobStorePort -------------------------------------------------------------------------------


class MemoryJobStore(_Faulty):
    """Job records as the JobStore adapter keeps them: the JSON document and the control
    fields, each write applied only if domain/job_states.py allows it (the adapter spells the
    same rules as DynamoDB conditions; tests/contracts.py holds both to them).
    `fail("write", when=lambda r: r.status != "RUNNING", times=3)`."""

    def __init__(self) -> None:
        super().__init__()
        self._items: dict[str, tuple[State, str]] = {}
        self.saved: list[tuple[str, str]] = []  # (job id, status) of every write that took effect

    def fail(
        self,
        op: str,
        *,
        when: Callable[[Any], bool] = lambda arg: True,
        times: int | None = None,
        error: Callable[[], BaseException] | None = None,
    ) -> Fault:
        """`op` "write" (`when` gets the record) or "get" (`when` gets the job id) fails."""
        fault = Fault(
            op, when, error or (lambda: StorageError("could not record a job", internal="injected")), times
        )
        self.faults.append(fault)
        return fault

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
        self._strike("write", record)
        found = self._items.get(record.job_id)
        before, doc = found if found else (None, None)
        old = JobRecord.model_validate_json(doc) if doc else None
        if not allowed(before, record.status, now=now, calls=calls, lease=lease, request_hash=request_hash):
            return Written(False, before, old)
        count = before.calls if before else 0
        if record.status == "RUNNING":
            count += 1
        elif record.status == "QUEUED" and calls:
            count = calls if billed else calls - 1
        state = State(
            record.status, count, lease, retry, request_hash or (before.request_hash if before else None)
        )
        self._items[record.job_id] = (state, json.dumps(record.to_json_dict(), separators=(",", ":")))
        self.saved.append((record.job_id, record.status))
        return Written(True, before, old)

    def get(self, job_id: str) -> JobRecord:
        self._strike("get", job_id)
        found = self._items.get(job_id)
        if found is None:
            raise JobNotFound(f"no job {job_id}")
        return JobRecord.model_validate_json(found[1])

    def state(self, job_id: str) -> State | None:
        found = self._items.get(job_id)
        return found[0] if found else None

    def expire(self, job_id: str) -> None:
        """What DynamoDB's TTL does to a record."""
        del self._items[job_id]

    def statuses(self, job_id: str) -> list[str]:
        return [status for saved_id, status in self.saved if saved_id == job_id]


# --- JobQueuePort -------------------------------------------------------------------------------


class MemoryQueue(_Faulty):
    """The job queue: every message as its JSON body would be received."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def fail(self, *, times: int | None = None) -> Fault:
        fault = Fault(
            "send",
            lambda message: True,
            lambda: StorageError("could not queue the job", internal="injected"),
            times,
        )
        self.faults.append(fault)
        return fault

    def send(self, message: dict[str, Any]) -> None:
        self._strike("send", message)
        self.messages.append(json.loads(json.dumps(message)))

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:  # a fault stops it part way, as a failed batch would
            self.send(message)


# --- JobEventsPort ------------------------------------------------------------------------------


class MemoryJobEvents:
    """The events adapter (adapters/events.py) over an event bus in memory: each event as
    PutEvents' entry (`entries`, the ones EventBridge took), refusals as PutEvents answers
    them per entry. `refuse("ThrottlingException", times=2)` refuses the next two puts with that
    code; a retryable code is tried again (3 puts in all), any other is not; an event still
    refused is counted in `undelivered` (its last code), never raised."""

    RETRYABLE = frozenset({"InternalFailure", "ThrottlingException"})

    def __init__(self, bus: str = "default") -> None:
        self.bus = bus
        self.entries: list[dict[str, Any]] = []
        self.undelivered: list[str] = []
        self.requests: list[list[dict[str, Any]]] = []  # each PutEvents call's Entries
        self._refusals: list[str] = []

    def refuse(self, code: str, *, times: int = 1) -> None:
        self._refusals.extend([code] * times)

    def job_finished(self, event: Any) -> None:
        from img2img.domain.job_events import DETAIL_TYPE, SOURCE

        detail = json.dumps(event.to_json_dict(), separators=(",", ":"))
        entry = {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": detail, "EventBusName": self.bus}
        for attempt in range(1, 4):
            self.requests.append([entry])
            code = self._refusals.pop(0) if self._refusals else None
            if code is None:
                self.entries.append(entry)
                return
            if code not in self.RETRYABLE or attempt == 3:
                self.undelivered.append(code)
                return

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(entry["Detail"]) for entry in self.entries]


# --- the domain on top of the fakes ------------------------------------------------------------


def door_settings(**overrides: Any) -> DoorSettings:
    values: dict[str, Any] = {
        "input_bucket": INPUT,
        "output_bucket": OUTPUT,
        "allowed_model_ids": MODELS,
        "default_model_id": DEFAULT_MODEL,
        "max_image_bytes": 20 * 1024 * 1024,
        "upload_max_bytes": 20 * 1024 * 1024,
        "presign_expiry_seconds": 3600,
    }
    return DoorSettings(**{**values, **overrides})


@dataclass
class House:
    """The real domain services (Pipeline, ApiDoor, QueueWorker) over the in-memory ports, as
    handlers/wiring.py composes them over the adapters. Properties build them afresh, so a test
    may change `fallbacks`, `settings` or `clock` first."""

    settings: DoorSettings = field(default_factory=door_settings)
    store: MemoryObjectStore = field(default_factory=lambda: MemoryObjectStore({INPUT: True, OUTPUT: False}))
    model: FakeModel = field(default_factory=FakeModel)
    jobs: MemoryJobStore = field(default_factory=MemoryJobStore)
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    events: MemoryJobEvents = field(default_factory=MemoryJobEvents)
    fallbacks: tuple[str, ...] = ()
    clock: Callable[[], float] | None = None  # epoch seconds
    limits: ImageLimits = field(default_factory=ImageLimits)
    environment: str = "unit"
    finished: list[Summary] = field(default_factory=list)  # on_finish: each recorded outcome
    started: list[str] = field(default_factory=list)  # on_start: each job id run
    skipped: list[str] = field(default_factory=list)  # the worker's on_skip reasons
    ids: Callable[[], str] | None = None  # ApiDoor's new_id

    @property
    def pipeline(self) -> Pipeline:
        extra: dict[str, Any] = {"clock": self.clock} if self.clock else {}
        return Pipeline(
            store=self.store,
            invoker=self.model,
            jobs=self.jobs,
            engines=engine_for,
            events=self.events,
            limits=self.limits,
            environment=self.environment,
            fallback_model_ids=self.fallbacks,
            on_start=lambda job: self.started.append(job.job_id),
            on_finish=self.finished.append,
            **extra,
        )

    @property
    def api(self) -> ApiDoor:
        extra: dict[str, Any] = {"new_id": self.ids} if self.ids else {}
        if self.clock:
            extra["clock"] = self.clock
        return ApiDoor(
            settings=self.settings,
            pipeline=self.pipeline,
            store=self.store,
            jobs=self.jobs,
            queue=self.queue,
            engines=engine_for,
            **extra,
        )

    @property
    def worker(self) -> QueueWorker:
        return QueueWorker(
            settings=self.settings,
            pipeline=self.pipeline,
            store=self.store,
            queue=self.queue,
            on_skip=self.skipped.append,
        )

    def deliver(
        self, message: dict[str, Any], *, final_attempt: bool, time_left: Callable[[], float] | None = None
    ) -> list[Summary]:
        """A queue message as the worker handler reads it (handlers/queue_messages.py), then
        handled by the worker: what one SQS record's body does, without the SQS record."""
        from img2img.handlers.queue_messages import Skipped, read_message

        read = read_message(json.dumps(message))
        if isinstance(read, Skipped):
            return []
        return self.worker.handle(read, Attempt(final=final_attempt, time_left=time_left))

    def meta(self, key: str) -> Any:
        """A metadata JSON (or any JSON object) from the output bucket."""
        return self.store.json(OUTPUT, key)


def memory_service(settings: Any) -> tuple[Any, House]:
    """A handlers/wiring.py Service over the in-memory ports, for wiring.install(): the real
    handlers with nothing behind them but memory. Answers the service and its house."""
    from img2img.handlers import wiring
    from img2img.handlers.wiring import Clients, Service

    house = House(
        settings=wiring.door_settings(settings),
        store=MemoryObjectStore({settings.input_bucket: True, settings.output_bucket: False}),
        fallbacks=settings.fallback_model_ids,
        limits=ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels),
        environment=settings.env,
    )
    # No boto3 behind the fakes: nothing for fault tests to hook.
    service = Service(settings, house.api, house.worker, Clients(None, None, None, None, None))
    return service, house


# --- the Bedrock Runtime client, for the real adapter ---------------------------------------------

STATUS = {
    "ThrottlingException": 429,
    "ModelTimeoutException": 408,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "ValidationException": 400,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
}


@dataclass
class FakeBedrock:
    """Answers like the live Stability models on Bedrock (docs/models.md): one seed, one
    finish reason, a small PNG; a filtered or failed call the reason alone. Has the boto3
    client's `invoke_model` signature and raises real botocore ClientErrors, so the real
    adapter's error translation is what gets tested."""

    finish_reason: str = "SUCCESS"
    errors: list[str] = field(default_factory=list)  # raised first, one per call
    gone: set[str] = field(default_factory=set)  # model ids that answer end of life, every time
    calls: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)  # an error code's message, if not "fake <code>"
    meta: Any = field(default_factory=lambda: SimpleNamespace(region_name=REGION))

    def invoke_model(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "body": json.loads(kwargs["body"])})
        if kwargs["modelId"] in self.gone:
            raise client_error("ResourceNotFoundException", END_OF_LIFE)
        if self.errors:
            code = self.errors.pop(0)
            raise client_error(code, self.messages.get(code, f"fake {code}"))
        payload = stability_answer(self.calls[-1]["body"], self.finish_reason)
        return {"body": io.BytesIO(json.dumps(payload).encode()), "ResponseMetadata": {"HTTPHeaders": {}}}


def client_error(code: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": STATUS[code]}},
        "InvokeModel",
    )
