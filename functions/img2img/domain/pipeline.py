"""pipeline.run(job): read the source, prepare it, call the model through its engine, write
the result image and its metadata JSON, and record the job's status. It knows nothing about
events or HTTP; both doors call it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from img2img import __version__
from img2img.domain.caller import Caller
from img2img.domain.errors import ModelTimeout, ModelUnavailable, ServiceError, StorageError
from img2img.domain.imaging import (
    FILE_EXTENSIONS,
    MIME_TYPES,
    ImageLimits,
    PreparedImage,
    encode_result,
    prepare_image,
)
from img2img.domain.job import Job, JobView, OutputKeys, SourceRef, Status
from img2img.domain.models import model_chain
from img2img.domain.ports import JobStorePort, ModelInvokerPort, ModelReply, ObjectStorePort
from img2img.engines import engine_for
from img2img.engines.base import Artifact, Engine, ModelCall

log = logging.getLogger(__name__)  # a child of the Powertools logger "img2img": same JSON lines

_T = TypeVar("_T")
# Where a job's model answer is kept (output bucket) until the job has finished from it.
ANSWERS_PREFIX = "answers/"


def answer_key(job_id: str) -> str:
    return f"{ANSWERS_PREFIX}{job_id}.json"


_STATUS_BY_FINISH: dict[str, Status] = {
    "SUCCESS": "SUCCEEDED",
    "CONTENT_FILTERED": "CONTENT_FILTERED",
    "ERROR": "FAILED",
}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Outcome:
    """What a run produced. `image` holds the result bytes for the sync API door only."""

    job_id: str
    status: Status
    metadata: dict[str, Any]
    image: bytes | None = None
    error: ServiceError | None = None

    @property
    def image_key(self) -> str | None:
        result = self.metadata.get("result") or {}
        return result.get("key")

    def summary(self) -> dict[str, Any]:
        """A small JSON-able record of the outcome (what idempotency stores; no image bytes)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "result": self.metadata.get("result"),
            "output": self.metadata.get("output"),
            "error": self.metadata.get("error"),
            "fallback_from": self.metadata.get("model", {}).get("fallback_from"),
        }


@dataclass
class _Timer:
    timings: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round((time.perf_counter() - start) * 1000)


class Pipeline:
    def __init__(
        self,
        *,
        store: ObjectStorePort,
        invoker: ModelInvokerPort,
        jobs: JobStorePort,
        limits: ImageLimits,
        environment: str,
        fallback_model_ids: tuple[str, ...] = (),
        clock: Callable[[], str] = utc_now,
        on_start: Callable[[Job], None] = lambda job: None,
        write_attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        reserve_seconds: float = 3.0,
    ) -> None:
        self._store = store
        self._invoker = invoker
        self._jobs = jobs
        self._limits = limits
        self._environment = environment
        self._fallbacks = fallback_model_ids
        self._clock = clock
        self._on_start = on_start  # handlers use it to make the job id the logs' correlation id
        self._write_attempts = write_attempts
        # What a deadline keeps back for the work after the model answers (decode, encode, the
        # S3 and DynamoDB writes): make bench measures it in well under a second.
        self._reserve = reserve_seconds
        self._sleep = sleep

    def run(
        self,
        job: Job,
        *,
        final_attempt: bool = True,
        first_attempt: bool = True,
        time_left: Callable[[], float] | None = None,
    ) -> Outcome:
        """Run one job to a final status. A retryable failure (throttling, model timeout,
        storage fault) is raised instead when another attempt will follow; otherwise every
        failure ends as a FAILED job with its metadata written.

        The model's answer is stored before anything else can fail (answers/<job id>.json in
        the output bucket), and a later attempt (`first_attempt` False) finishes from it: a job
        is billed once, whatever fails after the model answered.

        `time_left` (seconds, the sync route's invocation) bounds the model call so that the
        job can still be finished and answered: a model that outlasts it is a model_timeout
        recorded on the job, never a gateway 504 that leaves the job RUNNING."""
        self._on_start(job)
        meta = self._base_metadata(job)
        timer = _Timer()
        started = time.perf_counter()
        self._jobs.save(JobView.of(job, "RUNNING", self._clock()))
        try:
            outcome = self._execute(job, meta, timer, first_attempt, time_left)
        except ServiceError as error:
            if error.retryable and not final_attempt:
                raise
            meta["status"] = "FAILED"
            meta["error"] = error.to_dict()
            outcome = Outcome(job.job_id, "FAILED", meta, error=error)
        meta["timings_ms"] = {**timer.timings, "total": round((time.perf_counter() - started) * 1000)}
        meta["completed_at"] = self._clock()
        self._finish(job, outcome)
        log.info(
            "job %s %s",
            job.job_id,
            outcome.status,
            extra={"job_id": job.job_id, "model_id": job.model_id, "timings_ms": meta["timings_ms"]},
        )
        return outcome

    def reject(
        self,
        job_id: str,
        source: SourceRef,
        output: OutputKeys,
        error: ServiceError,
        caller: Caller | None = None,
    ) -> dict[str, Any]:
        """Record a job that could not start (no parameters, a bad manifest): its metadata says
        why, where the result would have been."""
        now = self._clock()
        meta: dict[str, Any] = {
            "job_id": job_id,
            "status": "FAILED",
            "door": "s3",
            "created_at": now,
            "completed_at": now,
            "source": {"bucket": source.bucket, "key": source.key, "version_id": source.version_id},
            "output": {"bucket": output.bucket, "metadata_key": output.metadata_key},
            "error": error.to_dict(),
            "service": self._service_info(),
        }
        body = json.dumps(meta, indent=2).encode()
        self._store.put(output.bucket, output.metadata_key, body, "application/json")
        view = JobView(
            job_id=job_id,
            status="FAILED",
            door="s3",
            created_at=now,
            updated_at=now,
            model_id="",
            request={},
            source=meta["source"],
            output=meta["output"],
            error=meta["error"],
            caller=caller.to_dict() if caller else None,
        )
        self._jobs.save(view)
        return Outcome(job_id, "FAILED", meta, error=error).summary()

    def _service_info(self) -> dict[str, str]:
        return {"name": "img2img", "version": __version__, "environment": self._environment}

    def _execute(
        self,
        job: Job,
        meta: dict[str, Any],
        timer: _Timer,
        first_attempt: bool,
        time_left: Callable[[], float] | None,
    ) -> Outcome:
        with timer.step("read"):
            data = self._read_source(job, meta)
        with timer.step("prepare"):
            prepared = prepare_image(data, job.request.resize_mode, self._limits)
            engine = engine_for(job.model_id)
            call = engine.build_body(job.request, prepared)
        meta["source"].update(
            format=prepared.source_format, width=prepared.source_width, height=prepared.source_height
        )
        meta["preparation"] = {
            "resize_mode": prepared.resize_mode,
            "from": [prepared.source_width, prepared.source_height],
            "to": [prepared.width, prepared.height],
            "passthrough": prepared.passthrough,
            "operations": list(prepared.operations),
        }
        with timer.step("model"):
            stored = None if first_attempt else self._stored_answer(job)
            if stored is None:
                engine, call, reply = self._call_model(job, engine, call, prepared, meta, time_left)
                self._keep_answer(job, reply, meta)
            else:
                engine, call, reply = self._replay(job, stored, prepared, meta)
            artifact = engine.parse_response(reply.payload, call)
        meta["model"].update(emulated=reply.emulated, attempts=reply.attempts)
        status = _STATUS_BY_FINISH[artifact.finish_reason]
        meta["status"] = status
        image: bytes | None = None
        with timer.step("write"):
            if artifact.finish_reason != "ERROR" and artifact.image:
                image = self._write_result(job, artifact, meta)
            elif artifact.finish_reason == "CONTENT_FILTERED":
                # The live Stability models answer a filtered call with no image at all: the
                # caller still learns the seed and why, as SDXL's CONTENT_FILTERED artifact said.
                meta["result"] = {
                    "seed": artifact.seed,
                    "finish_reason": artifact.finish_reason,
                    "detail": artifact.detail,
                }
        if status == "FAILED":
            meta["error"] = {
                "code": "model_error",
                "message": f"the model finished with ERROR: {artifact.detail or 'no reason given'}",
                "details": [],
            }
        return Outcome(job.job_id, status, meta, image=image)

    def _call_model(
        self,
        job: Job,
        engine: Engine,
        call: ModelCall,
        prepared: PreparedImage,
        meta: dict[str, Any],
        time_left: Callable[[], float] | None = None,
    ) -> tuple[Engine, ModelCall, ModelReply]:
        """One call to the job's model; if Bedrock says that model is gone (end of life, not
        found, access denied: answers that are never billed), one call to each fallback in
        turn. A caller's bad input, a content filter or a throttle never falls back."""
        gone: list[dict[str, str]] = []
        chain = model_chain(job.model_id, self._fallbacks)
        for index, model_id in enumerate(chain):
            if index:
                engine = engine_for(model_id)
                call = engine.build_body(job.request, prepared)
            meta["model"].update(id=model_id, engine=engine.family, notes=list(call.notes))
            try:
                return (
                    engine,
                    call,
                    self._invoker.invoke(model_id, call.body, timeout=self._deadline(time_left)),
                )
            except ModelUnavailable as error:
                gone.append({"model_id": model_id, "code": error.code, "reason": error.message})
                meta["model"]["fallback_from"] = gone
                if index == len(chain) - 1:
                    raise
                log.warning(
                    "model %s is unavailable, falling back to %s",
                    model_id,
                    chain[index + 1],
                    extra={"job_id": job.job_id, "reason": error.message},
                )
        raise AssertionError("unreachable: the chain always holds the job's own model")

    def _deadline(self, time_left: Callable[[], float] | None) -> float | None:
        if time_left is None:
            return None
        seconds = time_left() - self._reserve
        if seconds < 1:
            # Not worth starting (and billing) a call that could not be answered in time.
            raise ModelTimeout("no time is left for the model within this request's budget")
        return seconds

    # --- the model's answer, kept so that nothing after it can cause a second call -----------

    def _keep_answer(self, job: Job, reply: ModelReply, meta: dict[str, Any]) -> None:
        record = {
            "job_id": job.job_id,
            "model_id": meta["model"]["id"],
            "fallback_from": meta["model"].get("fallback_from"),
            "emulated": reply.emulated,
            "attempts": reply.attempts,
            "payload": reply.payload,
        }
        body = json.dumps(record, separators=(",", ":")).encode()
        self._durably(
            lambda: self._store.put(job.output.bucket, answer_key(job.job_id), body, "application/json")
        )

    def _stored_answer(self, job: Job) -> dict[str, Any] | None:
        data = self._durably(lambda: self._store.find(job.output.bucket, answer_key(job.job_id)))
        if data is None:
            return None
        stored = json.loads(data)
        return stored if isinstance(stored, dict) and stored.get("job_id") == job.job_id else None

    def _replay(
        self, job: Job, stored: dict[str, Any], prepared: PreparedImage, meta: dict[str, Any]
    ) -> tuple[Engine, ModelCall, ModelReply]:
        """The answer an earlier attempt stored, read back as if the model had just given it."""
        model_id = str(stored["model_id"])
        engine = engine_for(model_id)
        call = engine.build_body(job.request, prepared)  # deterministic: the body that was sent
        meta["model"].update(id=model_id, engine=engine.family, notes=list(call.notes), replayed=True)
        if stored.get("fallback_from"):
            meta["model"]["fallback_from"] = stored["fallback_from"]
        log.info("job %s finishes from its stored model answer", job.job_id, extra={"job_id": job.job_id})
        return engine, call, ModelReply(stored["payload"], bool(stored["emulated"]), int(stored["attempts"]))

    def _durably(self, write: Callable[[], _T]) -> _T:
        """A storage step retried in place (on top of botocore's own retries): after the model
        has answered, giving up means another attempt later, so try a little harder now."""
        for attempt in range(1, self._write_attempts + 1):
            try:
                return write()
            except StorageError:
                if attempt == self._write_attempts:
                    raise
                self._sleep(0.2 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _read_source(self, job: Job, meta: dict[str, Any]) -> bytes:
        if job.source_data is not None:
            data = job.source_data
        else:
            stored = self._store.get(
                job.source.bucket,
                job.source.key,
                max_bytes=self._limits.max_bytes,
                version_id=job.source.version_id,
            )
            data = stored.data
            meta["source"].update(etag=stored.etag, version_id=stored.version_id)
        meta["source"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        return data

    def _write_result(self, job: Job, artifact: Artifact, meta: dict[str, Any]) -> bytes:
        fmt = job.request.output_format
        image = encode_result(artifact.image, fmt)
        key = job.output.image_key(FILE_EXTENSIONS[fmt])
        self._durably(lambda: self._store.put(job.output.bucket, key, image, MIME_TYPES[fmt]))
        meta["result"] = {
            "bucket": job.output.bucket,
            "key": key,
            "seed": artifact.seed,
            "finish_reason": artifact.finish_reason,
            "format": fmt,
            "bytes": len(image),
            "sha256": hashlib.sha256(image).hexdigest(),
        }
        return image

    def _finish(self, job: Job, outcome: Outcome) -> None:
        """Metadata goes last: whoever sees it can rely on the image being there."""
        body = json.dumps(outcome.metadata, indent=2, sort_keys=False).encode()
        self._durably(
            lambda: self._store.put(job.output.bucket, job.output.metadata_key, body, "application/json")
        )
        view = JobView.of(job, outcome.status, self._clock())
        view.model_id = outcome.metadata["model"]["id"]
        view.fallback_from = outcome.metadata["model"].get("fallback_from")
        view.output = outcome.metadata["output"]
        view.result = outcome.metadata.get("result")
        view.error = outcome.metadata.get("error")
        self._durably(lambda: self._jobs.save(view))

    def _base_metadata(self, job: Job) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "status": "RUNNING",
            "door": job.door,
            "created_at": job.created_at,
            "source": {"bucket": job.source.bucket, "key": job.source.key},
            "request": job.effective_request(),
            "model": {"id": job.model_id, "region": self._invoker.region},
            "output": {"bucket": job.output.bucket, "metadata_key": job.output.metadata_key},
            "service": self._service_info(),
        }
