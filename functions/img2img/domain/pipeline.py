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
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.models import model_chain
from img2img.domain.ports import JobStorePort, ModelInvokerPort, ModelReply, ObjectStorePort
from img2img.domain.records import (
    ErrorInfo,
    FallbackFrom,
    JobRecord,
    Metadata,
    ModelInfo,
    OutputInfo,
    Preparation,
    ResultInfo,
    ServiceInfo,
    SourceInfo,
    Status,
    Summary,
)
from img2img.engines import engine_for
from img2img.engines.base import Artifact, Engine, ModelCall
from img2img.vocabulary import ANSWERS, Door

log = logging.getLogger(__name__)  # a child of the Powertools logger "img2img": same JSON lines

_T = TypeVar("_T")


def answer_key(job_id: str) -> str:
    return f"{ANSWERS}{job_id}.json"


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

    metadata: Metadata
    image: bytes | None = None
    error: ServiceError | None = None

    @property
    def status(self) -> Status:
        return self.metadata.status

    def summary(self) -> Summary:
        """What the door keeps of the outcome (what idempotency stores; no image bytes)."""
        meta = self.metadata
        return Summary(
            job_id=meta.job_id,
            status=meta.status,
            result=meta.result,
            output=meta.output,
            error=meta.error,
            fallback_from=meta.model.fallback_from if meta.model else None,
        )


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
        on_finish: Callable[[Summary], None] = lambda summary: None,
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
        self._on_finish = on_finish  # once per recorded outcome (metrics), never on a replay
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
        time_left: Callable[[], float] | None = None,
    ) -> Outcome:
        """Run one job to a final status. A retryable failure (throttling, model timeout,
        storage fault) is raised instead when another attempt will follow; otherwise every
        failure ends as a FAILED job with its metadata written.

        The model's answer is stored before anything else can fail (answers/<job id>.json in
        the output bucket), and a later attempt finishes from it: a job is billed once, whatever
        fails after the model answered. A later attempt is one that finds the job already
        recorded: a redelivery, a dead-letter redrive (a new message to SQS), a keyed retry.

        `time_left` (seconds, the sync route's invocation) bounds the model call so that the
        job can still be finished and answered: a model that outlasts it is a model_timeout
        recorded on the job, never a gateway 504 that leaves the job RUNNING."""
        self._on_start(job)
        meta = self._base_metadata(job)
        timer = _Timer()
        started = time.perf_counter()
        try:
            # Inside the try: on the last attempt a job table fault here still ends the job
            # FAILED with its metadata, instead of leaving it QUEUED with nothing written.
            previous = self._jobs.save(job.record("RUNNING", self._clock()))
            # Only an attempt that finds the job recorded can follow one that called the model
            # (every attempt records RUNNING before it calls): a job new to the table reads no
            # answers/, which saves a round trip on nearly every job.
            outcome = self._execute(job, meta, timer, previous is not None, time_left)
        except ServiceError as error:
            if error.retryable and not final_attempt:
                raise
            meta.status = "FAILED"
            meta.error = ErrorInfo.of(error)
            error.job_id = job.job_id  # recorded: whoever reports it can name the job
            outcome = Outcome(meta, error=error)
        meta.timings_ms = {**timer.timings, "total": round((time.perf_counter() - started) * 1000)}
        meta.completed_at = self._clock()
        try:
            self._finish(job, outcome, time_left)
        except StorageError as error:
            error.job_id = job.job_id  # the model answered and its answer is stored: name the job
            if final_attempt:
                self._record_unfinished(job, error)
            raise
        self._on_finish(outcome.summary())
        log.info(
            "job %s %s",
            job.job_id,
            outcome.status,
            extra={
                "job_id": job.job_id,
                "door": job.door,
                "model_id": job.model_id,
                "timings_ms": meta.timings_ms,
            },
        )
        return outcome

    def _record_unfinished(self, job: Job, error: StorageError) -> None:
        """The last attempt could not write the outcome past its retries: the job ends FAILED
        (storage_error) in its record rather than RUNNING for ever, if the job table takes
        it. A keyed retry or a redrive still finishes it from the stored model answer."""
        record = job.record("FAILED", self._clock())
        record.error = ErrorInfo.of(error)
        try:
            self._jobs.save(record)
        except StorageError:
            log.error("job %s: could not record its failure either", job.job_id, extra={"job_id": job.job_id})
        self._on_finish(Summary(job_id=job.job_id, status="FAILED", output=record.output, error=record.error))

    def reject(
        self,
        job_id: str,
        source: SourceRef,
        output: OutputKeys,
        error: ServiceError,
        caller: Caller | None = None,
        *,
        door: Door = "s3",
        created_at: str | None = None,
    ) -> Summary:
        """Record a job that could not start (no parameters, a bad manifest, a queued job whose
        model is gone): its metadata says why, where the result would have been."""
        now = self._clock()
        meta = Metadata(
            job_id=job_id,
            status="FAILED",
            door=door,
            created_at=created_at or now,
            completed_at=now,
            source=SourceInfo(bucket=source.bucket, key=source.key, version_id=source.version_id),
            output=OutputInfo(bucket=output.bucket, metadata_key=output.metadata_key),
            error=ErrorInfo.of(error),
            service=self._service_info(),
        )
        self._store.put(output.bucket, output.metadata_key, meta.to_json_bytes(), "application/json")
        self._jobs.save(
            JobRecord(
                job_id=job_id,
                status="FAILED",
                door=door,
                created_at=created_at or now,
                updated_at=now,
                model_id="",
                source=meta.source,
                output=meta.output,
                error=meta.error,
                caller=caller,
            )
        )
        error.job_id = job_id
        summary = Outcome(meta, error=error).summary()
        self._on_finish(summary)
        return summary

    def _service_info(self) -> ServiceInfo:
        return ServiceInfo(name="img2img", version=__version__, environment=self._environment)

    def _execute(
        self,
        job: Job,
        meta: Metadata,
        timer: _Timer,
        recorded_before: bool,
        time_left: Callable[[], float] | None,
    ) -> Outcome:
        with timer.step("read"):
            data = self._read_source(job, meta)
        with timer.step("prepare"):
            prepared = prepare_image(data, job.request.resize_mode, self._limits)
            engine = engine_for(job.model_id)
            call = engine.build_body(job.request, prepared)
        meta.source.format = prepared.source_format
        meta.source.width, meta.source.height = prepared.source_width, prepared.source_height
        meta.preparation = Preparation(
            resize_mode=prepared.resize_mode,
            from_=[prepared.source_width, prepared.source_height],
            to=[prepared.width, prepared.height],
            passthrough=prepared.passthrough,
            operations=list(prepared.operations),
        )
        with timer.step("model"):
            stored = self._stored_answer(job, time_left) if recorded_before else None
            if stored is None:
                engine, call, reply = self._call_model(job, engine, call, prepared, meta, time_left)
                self._keep_answer(job, reply, meta, time_left)
            else:
                engine, call, reply = self._replay(job, stored, prepared, meta)
            artifact = engine.parse_response(reply.payload, call)
        model = _model_of(meta)
        model.emulated, model.attempts = reply.emulated, reply.attempts
        status = _STATUS_BY_FINISH[artifact.finish_reason]
        meta.status = status
        image: bytes | None = None
        with timer.step("write"):
            if artifact.finish_reason != "ERROR" and artifact.image:
                image = self._write_result(job, artifact, meta, time_left)
            elif artifact.finish_reason == "CONTENT_FILTERED":
                # The live Stability models answer a filtered call with no image at all: the
                # caller still learns the seed and why, as SDXL's CONTENT_FILTERED artifact said.
                meta.result = ResultInfo(
                    seed=artifact.seed, finish_reason=artifact.finish_reason, detail=artifact.detail
                )
        if status == "FAILED":
            meta.error = ErrorInfo(
                code="model_error",
                message=f"the model finished with ERROR: {artifact.detail or 'no reason given'}",
            )
        return Outcome(meta, image=image)

    def _call_model(
        self,
        job: Job,
        engine: Engine,
        call: ModelCall,
        prepared: PreparedImage,
        meta: Metadata,
        time_left: Callable[[], float] | None = None,
    ) -> tuple[Engine, ModelCall, ModelReply]:
        """One call to the job's model; if Bedrock says that model is gone (end of life, not
        found, access denied: answers that are never billed), one call to each fallback in
        turn. A caller's bad input, a content filter or a throttle never falls back."""
        gone: list[FallbackFrom] = []
        chain = model_chain(job.model_id, self._fallbacks)
        model = _model_of(meta)
        for index, model_id in enumerate(chain):
            if index:
                engine = engine_for(model_id)
                call = engine.build_body(job.request, prepared)
            model.id, model.engine, model.notes = model_id, engine.family, list(call.notes)
            try:
                return (
                    engine,
                    call,
                    self._invoker.invoke(model_id, call.body, timeout=self._deadline(time_left)),
                )
            except ModelUnavailable as error:
                gone.append(FallbackFrom(model_id=model_id, code=error.code, reason=error.message))
                model.fallback_from = gone
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
            raise ModelTimeout(
                "no time is left for the model in this invocation (the request's or the worker's)"
            )
        return seconds

    # --- the model's answer, kept so that nothing after it can cause a second call -----------

    def _keep_answer(
        self, job: Job, reply: ModelReply, meta: Metadata, time_left: Callable[[], float] | None
    ) -> None:
        model = _model_of(meta)
        record = {
            "job_id": job.job_id,
            "model_id": model.id,
            "fallback_from": [f.to_json_dict() for f in model.fallback_from or []] or None,
            "emulated": reply.emulated,
            "attempts": reply.attempts,
        }
        if reply.text is None:
            body = json.dumps({**record, "payload": reply.payload}, separators=(",", ":")).encode()
        else:
            # The answer's own JSON text, as the model sent it (ModelReply.text): one JSON value
            # spliced in where its serialisation would go, the same record when read back.
            head = json.dumps(record, separators=(",", ":")).encode()[:-1]  # without its "}"
            body = b"".join((head, b',"payload":', reply.text, b"}"))
        self._durably(
            lambda: self._store.put(job.output.bucket, answer_key(job.job_id), body, "application/json"),
            time_left,
        )

    def _stored_answer(self, job: Job, time_left: Callable[[], float] | None) -> dict[str, Any] | None:
        data = self._durably(lambda: self._store.find(job.output.bucket, answer_key(job.job_id)), time_left)
        if data is None:
            return None
        stored = json.loads(data)
        return stored if isinstance(stored, dict) and stored.get("job_id") == job.job_id else None

    def _replay(
        self, job: Job, stored: dict[str, Any], prepared: PreparedImage, meta: Metadata
    ) -> tuple[Engine, ModelCall, ModelReply]:
        """The answer an earlier attempt stored, read back as if the model had just given it."""
        model_id = str(stored["model_id"])
        engine = engine_for(model_id)
        call = engine.build_body(job.request, prepared)  # deterministic: the body that was sent
        model = _model_of(meta)
        model.id, model.engine, model.notes, model.replayed = model_id, engine.family, list(call.notes), True
        if stored.get("fallback_from"):
            model.fallback_from = [FallbackFrom.model_validate(f) for f in stored["fallback_from"]]
        log.info("job %s finishes from its stored model answer", job.job_id, extra={"job_id": job.job_id})
        return engine, call, ModelReply(stored["payload"], bool(stored["emulated"]), int(stored["attempts"]))

    def _durably(self, write: Callable[[], _T], time_left: Callable[[], float] | None = None) -> _T:
        """A storage step retried in place (on top of botocore's own retries): after the model
        has answered, giving up means another attempt later, so try a little harder now. Not
        past the sync route's deadline: a 500 that names the job (its answer stored, a keyed
        retry finishes it) beats a gateway timeout that answers nothing."""
        for attempt in range(1, self._write_attempts + 1):
            try:
                return write()
            except StorageError:
                delay = 0.2 * 2 ** (attempt - 1)
                if attempt == self._write_attempts or (time_left is not None and time_left() < delay + 1):
                    raise
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _read_source(self, job: Job, meta: Metadata) -> bytes:
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
            meta.source.etag, meta.source.version_id = stored.etag, stored.version_id
        meta.source.sha256, meta.source.size = hashlib.sha256(data).hexdigest(), len(data)
        return data

    def _write_result(
        self, job: Job, artifact: Artifact, meta: Metadata, time_left: Callable[[], float] | None
    ) -> bytes:
        fmt = job.request.output_format
        image = encode_result(artifact.image, fmt)
        key = job.output.image_key(FILE_EXTENSIONS[fmt])
        self._durably(lambda: self._store.put(job.output.bucket, key, image, MIME_TYPES[fmt]), time_left)
        meta.result = ResultInfo(
            bucket=job.output.bucket,
            key=key,
            seed=artifact.seed,
            finish_reason=artifact.finish_reason,
            format=fmt,
            bytes=len(image),
            sha256=hashlib.sha256(image).hexdigest(),
        )
        return image

    def _finish(self, job: Job, outcome: Outcome, time_left: Callable[[], float] | None) -> None:
        """Metadata goes last: whoever sees it can rely on the image being there."""
        meta = outcome.metadata
        body = meta.to_json_bytes()
        self._durably(
            lambda: self._store.put(job.output.bucket, job.output.metadata_key, body, "application/json"),
            time_left,
        )
        record = job.record(outcome.status, self._clock())
        model = _model_of(meta)
        record.model_id, record.fallback_from = model.id, model.fallback_from
        record.output, record.result, record.error = meta.output, meta.result, meta.error
        self._durably(lambda: self._jobs.save(record), time_left)

    def _base_metadata(self, job: Job) -> Metadata:
        return Metadata(
            job_id=job.job_id,
            status="RUNNING",
            door=job.door,
            created_at=job.created_at,
            source=SourceInfo(
                bucket=job.source.bucket,
                key=job.source.key,
                etag=job.source.etag,
                version_id=job.source.version_id,
            ),
            request=job.effective_request(),
            model=ModelInfo(id=job.model_id, region=self._invoker.region),
            output=OutputInfo(bucket=job.output.bucket, metadata_key=job.output.metadata_key),
            service=self._service_info(),
        )


def _model_of(meta: Metadata) -> ModelInfo:
    """A running job's metadata always has its model (only a refused job's has none)."""
    assert meta.model is not None
    return meta.model
