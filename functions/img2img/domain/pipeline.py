"""pipeline.run(job, attempt): claim the job (RUNNING), read the source, prepare it, find the
stored result or call the model, store the result, and `finish`. It knows nothing about
events or HTTP; both doors call it.

One job, one record: the job record's conditional writes (domain/job_states.py) say whether
this attempt may run at all and how many attempts before it reached the model (`calls`). The
result image is the stored answer: written once, with what the model said in its object
metadata, so an attempt that finds it finishes from it without a call. Only an attempt whose
call may have billed without leaving an answer (a read timeout, a call cut off, a lost
result, the function stopped) costs a call again, and only once: after two, the job ends
FAILED with the last model error it recorded."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from img2img import __version__
from img2img.domain.caller import Caller
from img2img.domain.errors import (
    AnswerLost,
    IdempotencyConflict,
    InProgress,
    ModelBusy,
    ModelTimeout,
    ModelUnavailable,
    ServiceError,
    StorageError,
)
from img2img.domain.imaging import (
    FILE_EXTENSIONS,
    MIME_TYPES,
    ImageLimits,
    PreparedImage,
    encode_result,
    prepare_image,
)
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.job_events import JobFinished
from img2img.domain.models import model_chain
from img2img.domain.ports import (
    Artifact,
    EngineLookup,
    JobEventsPort,
    JobStorePort,
    ModelInvokerPort,
    ObjectStorePort,
    StoredObject,
    Written,
)
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
    Summary,
)
from img2img.vocabulary import Door, Status

log = logging.getLogger(__name__)  # a child of the Powertools logger "img2img": same JSON lines

_STATUS_BY_FINISH: dict[str, Status] = {
    "SUCCESS": "SUCCEEDED",
    "CONTENT_FILTERED": "CONTENT_FILTERED",
    "ERROR": "FAILED",
}
# The result's x-amz-meta-* name that holds what the model answered (S3 lower-cases names).
ANSWER_METADATA = "img2img-answer"
# A job created longer ago than this whose record is missing may have had it expire (TTL):
# it looks for its result before it calls the model. Longer than any invocation (15 minutes).
RECHECK_AFTER_SECONDS = 15 * 60
# A RUNNING record is its attempt's until the invocation's deadline; without one (tests), this.
_LEASE_SECONDS = 15 * 60


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso(time.time())


@dataclass(frozen=True)
class Attempt:
    """One receive of a job: whether it is the last (a retryable failure is then recorded, not
    raised) and how long the invocation has left (None: unbounded, as in tests)."""

    final: bool = True
    time_left: Callable[[], float] | None = None

    def lease(self, now: float) -> float:
        return now + (self.time_left() if self.time_left else _LEASE_SECONDS)


@dataclass(frozen=True)
class Outcome:
    """What a run produced: the summary its door keeps, the result bytes (for the sync route)
    and the error a failed job ended with."""

    summary: Summary
    image: bytes | None = None
    error: ServiceError | None = None

    @property
    def status(self) -> Status:
        return self.summary.status


def _summary(record: JobRecord) -> Summary:
    return Summary(
        job_id=record.job_id,
        status=record.status,
        result=record.result,
        output=record.output,
        error=record.error,
        fallback_from=record.fallback_from,
    )


def _preparation(prepared: PreparedImage) -> Preparation:
    return Preparation(
        resize_mode=prepared.resize_mode,
        from_=[prepared.source_width, prepared.source_height],
        to=[prepared.width, prepared.height],
        passthrough=prepared.passthrough,
        operations=list(prepared.operations),
    )


def _capped(before: JobRecord | None) -> ServiceError:
    """The error a job ends with once two attempts may have reached its model without leaving
    an answer: the last one's model error if it recorded one (a read timeout, a call cut
    off), else the answer was lost (or the attempt stopped) before it was stored."""
    last = before.error.code if before and before.error else None
    if last == ModelTimeout.code:
        return ModelTimeout("the model did not answer this job in time twice: it is not called again")
    if last == ModelBusy.code:
        return ModelBusy("the call to this job's model was cut off twice: it is not called again")
    return AnswerLost(
        "two attempts at this job may have reached the model and neither stored an answer "
        "(stopped, cut off, or the result lost): it is not called again"
    )


def _owner(found: StoredObject, metadata_json: bool) -> str | None:
    """The job a stored result (or a final metadata JSON) belongs to: a key is reused when the
    same source is dropped again, so only the job's own counts."""
    try:
        said = json.loads(found.data if metadata_json else found.metadata[ANSWER_METADATA])
    except (KeyError, ValueError):
        return None
    return str(said.get("job_id")) if isinstance(said, dict) else None


@dataclass(frozen=True)
class Refused:
    """A job that could not start (no parameters, a bad manifest, a queued job whose model is
    gone): recorded where its result would have been, saying why."""

    job_id: str
    door: Door
    created_at: str
    caller: Caller | None
    source: SourceRef
    output: OutputKeys
    model_id: str = ""
    request_hash: str | None = None

    def effective_request(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Answer:
    """What the model said, called now or found stored with the result."""

    model: ModelInfo
    artifact: Artifact | None = None
    error: ServiceError | None = None  # the call failed: the model info still goes on record


@dataclass(frozen=True)
class Ending:
    """Every step's typed value, read once by finish()."""

    status: Status
    source: SourceInfo
    preparation: Preparation | None = None
    model: ModelInfo | None = None
    result: ResultInfo | None = None
    image: bytes | None = None
    error: ServiceError | None = None
    timings_ms: dict[str, int] | None = None
    metadata_written: Metadata | None = None  # found: an earlier attempt wrote it


@dataclass
class _Timer:
    timings: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round((time.perf_counter() - start) * 1000)

    def total(self) -> dict[str, int]:
        return {**self.timings, "total": round((time.perf_counter() - self.started) * 1000)}


class Pipeline:
    def __init__(
        self,
        *,
        store: ObjectStorePort,
        invoker: ModelInvokerPort,
        jobs: JobStorePort,
        engines: EngineLookup,
        events: JobEventsPort,
        limits: ImageLimits,
        environment: str,
        fallback_model_ids: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        on_start: Callable[[Job], None] = lambda job: None,
        on_finish: Callable[[Summary], None] = lambda summary: None,
        reserve_seconds: float = 3.0,
    ) -> None:
        self._store = store
        self._invoker = invoker
        self._jobs = jobs
        self._engines = engines
        self._events = events  # one "Image Job Finished" per finished job, once it is written
        self._limits = limits
        self._service = ServiceInfo(name="img2img", version=__version__, environment=environment)
        self._fallbacks = fallback_model_ids
        self._clock = clock
        self._on_start = on_start  # handlers use it to make the job id the logs' correlation id
        self._on_finish = on_finish  # once per recorded outcome (metrics), never on a replay
        # What a deadline keeps back for the work after the model answers (decode, encode, the
        # S3 and DynamoDB writes): make bench measures it in well under a second.
        self._reserve = reserve_seconds

    def run(self, job: Job, attempt: Attempt) -> Outcome:
        """Run one job to a final status. A retryable failure (throttling, model timeout,
        storage fault) is raised instead when another attempt will follow; otherwise every
        failure ends as a FAILED job with its metadata written. A job already settled answers
        its record, calling and writing nothing."""
        self._on_start(job)
        timer = _Timer()
        source = SourceInfo(bucket=job.source.bucket, key=job.source.key, version_id=job.source.version_id)
        calls, lease = 0, 0.0  # this attempt's claim: its count and lease identify its writes
        billed = False  # the model may have run (and billed) in this attempt
        model: ModelInfo | None = None
        prepared: PreparedImage | None = None
        try:
            now = self._clock()
            lease = attempt.lease(now)
            claim = self._claim(job, now, lease)
            if not claim.applied:
                assert claim.record is not None
                log.info("job %s was settled before: nothing to do", job.job_id, extra={"job_id": job.job_id})
                return Outcome(_summary(claim.record))
            calls = (claim.before.calls if claim.before else 0) + 1
            with timer.step("read"):
                data, source = self._read(job)
            with timer.step("prepare"):
                prepared = prepare_image(data, job.request.resize_mode, self._limits)
            source.format, source.width, source.height = (
                prepared.source_format,
                prepared.source_width,
                prepared.source_height,
            )
            with timer.step("model"):
                found = self._found(job, claim)
                if found is not None and found.content_type == "application/json":
                    ended = Metadata.model_validate_json(found.data)
                    if ended.status != "FAILED":  # a failure is no answer: a redrive runs the job again
                        return self.finish(
                            job,
                            Ending(ended.status, ended.source, metadata_written=ended),
                            calls=calls,
                            lease=lease,
                        )
                    found = None
                if found is None and calls > 2:
                    raise _capped(claim.record)
                answer = (
                    self._stored_answer(job, found, prepared) if found else self._call(job, prepared, attempt)
                )
                model = answer.model
                billed = found is None and (answer.error is None or answer.error.may_have_billed)
                if answer.error is not None:
                    raise answer.error
                assert answer.artifact is not None
            with timer.step("write"):
                result, image = self._store_result(job, answer.model, answer.artifact, found)
            ending = Ending(
                status=_STATUS_BY_FINISH[answer.artifact.finish_reason],
                source=source,
                preparation=_preparation(prepared),
                model=model,
                result=result,
                image=image,
                timings_ms=timer.total(),
            )
        except IdempotencyConflict:
            raise  # another attempt holds the job, or another body its key: theirs to end
        except ServiceError as error:
            error.job_id = job.job_id  # recorded: whoever reports it can name the job
            if error.retryable and not (billed and attempt.final):
                # Another attempt follows: the model did not run (a retry costs nothing more),
                # or it may have (the count stays, and the error, for the cap to end with).
                self._release(job, calls, lease, error if billed else None)
            if error.retryable and not attempt.final:
                raise
            preparation = _preparation(prepared) if prepared else None
            ending = Ending("FAILED", source, preparation, model, error=error, timings_ms=timer.total())
        try:
            return self.finish(job, ending, calls=calls, lease=lease)
        except StorageError as error:
            error.job_id = job.job_id
            if not attempt.final:
                raise
            return self._give_up(job, source, ending.error or error, calls, lease)

    def _give_up(
        self, job: Job, source: SourceInfo, error: ServiceError, calls: int, lease: float
    ) -> Outcome:
        """The last attempt could not write its outcome: the job still ends FAILED where its
        caller looks, as far as storage lets, saying why it failed (the model's error if it
        had one, else the storage fault). The record alone if the metadata cannot be written;
        a redrive may take the job up again (retry is set)."""
        try:
            return self.finish(
                job, Ending(status="FAILED", source=source, error=error), calls=calls, lease=lease
            )
        except StorageError as fault:
            fault.job_id = job.job_id
            now = self._clock()
            record = job.record("FAILED", iso(now))
            record.error = ErrorInfo.of(error)
            try:
                self._jobs.write(record, now=now, calls=calls, lease=lease, retry=True)
            except StorageError as last:
                last.job_id = job.job_id  # the job was recorded: whoever reports this names it
                raise
            return Outcome(_summary(record), error=error)

    def reject(self, refused: Refused, error: ServiceError) -> Summary:
        """Record a job that could not start: its metadata says why, where the result would be."""
        error.job_id = refused.job_id
        source = SourceInfo(
            bucket=refused.source.bucket, key=refused.source.key, version_id=refused.source.version_id
        )
        return self.finish(refused, Ending(status="FAILED", source=source, error=error)).summary

    def finish(self, job: Job | Refused, ending: Ending, *, calls: int = 0, lease: float = 0.0) -> Outcome:
        """The one place a job ends: its metadata JSON, built once, is written (unless an
        earlier attempt wrote it), then the final record, then the on_finish hook. Metadata
        first: whoever reads a final record can rely on the metadata and image being there.
        A write that fails here is raised (the job's result is stored: a redelivery finishes
        it without a call); on the last attempt the metadata still says FAILED if it can.
        A final write the record refuses (the job was settled, or another attempt holds it)
        sends no event and counts nothing: the outcome is the record's. A refused job has no
        image: its record goes first, so a duplicate never rewrites its metadata."""
        now = self._clock()
        error = ending.error
        if ending.status == "FAILED" and error is None and ending.result is not None:
            # The model finished with ERROR: recorded as FAILED, answered as SDXL answers it.
            detail = ending.result.detail or "no reason given"
            model_error: ErrorInfo | None = ErrorInfo(
                code="model_error", message=f"the model finished with ERROR: {detail}"
            )
        else:
            model_error = ErrorInfo.of(error) if error else None
        metadata = ending.metadata_written or Metadata(
            job_id=job.job_id,
            status=ending.status,
            door=job.door,
            created_at=job.created_at,
            completed_at=iso(now),
            source=ending.source,
            preparation=ending.preparation,
            request=job.effective_request(),
            model=ending.model,
            result=ending.result,
            timings_ms=ending.timings_ms,
            error=model_error,
            output=OutputInfo(bucket=job.output.bucket, metadata_key=job.output.metadata_key),
            service=self._service,
        )
        record = JobRecord(
            job_id=job.job_id,
            status=metadata.status,
            door=job.door,
            created_at=job.created_at,
            updated_at=iso(now),
            model_id=metadata.model.id if metadata.model else job.model_id,
            request=metadata.request,
            source=SourceInfo(bucket=metadata.source.bucket, key=metadata.source.key),
            output=metadata.output,
            result=metadata.result,
            error=metadata.error,
            fallback_from=metadata.model.fallback_from if metadata.model else None,
            caller=job.caller,
        )
        retry = error is not None and error.retryable
        refused = isinstance(job, Refused)
        if refused:
            written = self._jobs.write(record, now=now, retry=retry, request_hash=job.request_hash)
        if ending.metadata_written is None and (not refused or written.applied):
            self._store.put(
                job.output.bucket, job.output.metadata_key, metadata.to_json_bytes(), "application/json"
            )
        if not refused:
            written = self._jobs.write(
                record, now=now, calls=calls, lease=lease, retry=retry, request_hash=job.request_hash
            )
        if not written.applied:
            return self._not_mine(job, written)
        summary = _summary(record)
        self._events.job_finished(JobFinished.of(metadata))
        self._on_finish(summary)
        log.info(
            "job %s %s",
            job.job_id,
            record.status,
            extra={
                "job_id": job.job_id,
                "door": job.door,
                "model_id": record.model_id,
                "timings_ms": metadata.timings_ms,
            },
        )
        return Outcome(summary, ending.image, error)

    def _not_mine(self, job: Job | Refused, written: Written) -> Outcome:
        """The record refused this attempt's final write: a duplicate of a job that ended, or
        an attempt whose lease lapsed and another took the job up. Nothing more is sent."""
        log.info("job %s was ended by another attempt", job.job_id, extra={"job_id": job.job_id})
        if written.record is not None and written.before is not None and written.before.settled:
            return Outcome(_summary(written.record))
        busy = InProgress("this job is being run by another request: ask again shortly")
        busy.job_id = job.job_id
        raise busy

    # --- the steps ----------------------------------------------------------------------------

    def _claim(self, job: Job, now: float, lease: float) -> Written:
        """RUNNING, counting the attempt; not applied when the job is settled (answered from
        its record). Another attempt's live lease is InProgress, another body under the same
        Idempotency-Key a conflict."""
        claim = self._jobs.write(
            job.record("RUNNING", iso(now)), now=now, lease=lease, request_hash=job.request_hash
        )
        before = claim.before
        if not claim.applied and before is not None:
            if job.request_hash is not None and before.request_hash not in (None, job.request_hash):
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request body"
                )
            if not before.settled:
                raise InProgress("this job is being run by another request: ask again shortly")
        return claim

    def _read(self, job: Job) -> tuple[bytes, SourceInfo]:
        info = SourceInfo(
            bucket=job.source.bucket,
            key=job.source.key,
            etag=job.source.etag,
            version_id=job.source.version_id,
        )
        if job.source_data is not None:
            data = job.source_data
            if job.store_source:
                self._store.put(job.source.bucket, job.source.key, data, "application/octet-stream")
        else:
            stored = self._store.get(
                job.source.bucket,
                job.source.key,
                max_bytes=self._limits.max_bytes,
                version_id=job.source.version_id,
            )
            data = stored.data
            info.etag, info.version_id = stored.etag, stored.version_id
        info.sha256, info.size = hashlib.sha256(data).hexdigest(), len(data)
        return data, info

    def _found(self, job: Job, claim: Written) -> StoredObject | None:
        """The result an earlier attempt stored, if one may have: the record says an attempt
        before this one claimed the job, or there is no record and the job is old enough for
        its record to have expired. Else nothing is looked up (no request on a job's first
        attempt). The result image; for a job that ended without one, its metadata JSON."""
        before = claim.before
        age = self._clock() - datetime.fromisoformat(job.created_at.replace("Z", "+00:00")).timestamp()
        if not (before.calls if before else age > RECHECK_AFTER_SECONDS):
            return None
        for key in (
            job.output.image_key(FILE_EXTENSIONS[job.request.output_format]),
            job.output.metadata_key,
        ):
            found = self._store.find(job.output.bucket, key)
            if found is not None and _owner(found, key == job.output.metadata_key) == job.job_id:
                log.info("job %s finishes from its stored result", job.job_id, extra={"job_id": job.job_id})
                return found
        return None

    def _budget(self, attempt: Attempt) -> float | None:
        if attempt.time_left is None:
            return None
        seconds = attempt.time_left() - self._reserve
        if seconds < 1:
            # Not worth starting (and billing) a call that could not be answered in time.
            raise ModelTimeout(
                "no time is left for the model in this invocation (the request's or the worker's)"
            )
        return seconds

    def _call(self, job: Job, prepared: PreparedImage, attempt: Attempt) -> Answer:
        """One call to the job's model; if Bedrock says that model is gone (end of life, not
        found, access denied: answers that are never billed), one call to each fallback in
        turn. A caller's bad input, a content filter or a throttle never falls back."""
        gone: list[FallbackFrom] = []
        chain = model_chain(job.model_id, self._fallbacks)
        for index, model_id in enumerate(chain):
            engine = self._engines(model_id)
            call = engine.build_body(job.request, prepared)
            model = ModelInfo(
                id=model_id, region=self._invoker.region, engine=engine.family, notes=list(call.notes)
            )
            model.fallback_from = list(gone) or None
            try:
                reply = self._invoker.invoke(model_id, call.body, timeout=self._budget(attempt))
            except ModelUnavailable as error:
                gone.append(FallbackFrom(model_id=model_id, code=error.code, reason=error.message))
                if index == len(chain) - 1:
                    model.fallback_from = gone
                    return Answer(model, error=error)
                log.warning(
                    "model %s is unavailable, falling back to %s",
                    model_id,
                    chain[index + 1],
                    extra={"job_id": job.job_id, "reason": error.message},
                )
                continue
            except ServiceError as error:
                return Answer(model, error=error)
            model.emulated, model.attempts = reply.emulated, reply.attempts
            return Answer(model, engine.parse_response(reply.payload, call))
        raise AssertionError("unreachable: the chain always holds the job's own model")

    def _stored_answer(self, job: Job, found: StoredObject, prepared: PreparedImage) -> Answer:
        said = json.loads(found.metadata[ANSWER_METADATA])
        engine = self._engines(said["model_id"])
        call = engine.build_body(job.request, prepared)  # deterministic: the body that was sent
        model = ModelInfo(
            id=said["model_id"],
            region=self._invoker.region,
            engine=engine.family,
            notes=list(call.notes),
            emulated=said.get("emulated"),
            attempts=said.get("attempts"),
            replayed=True,
            fallback_from=[FallbackFrom.model_validate(f) for f in said.get("fallback_from") or []] or None,
        )
        return Answer(model, Artifact(seed=said["seed"], image=b"", finish_reason=said["finish_reason"]))

    def _store_result(
        self, job: Job, model: ModelInfo, artifact: Artifact, found: StoredObject | None
    ) -> tuple[ResultInfo, bytes | None]:
        """The result image, written once with what the model said in its object metadata: it
        is the stored answer a later attempt finishes from. A finish without an image (the live
        models answer a filtered call with none) keeps the seed and why in the metadata JSON."""
        fmt = job.request.output_format
        if found is None and not (artifact.finish_reason != "ERROR" and artifact.image):
            return ResultInfo(
                seed=artifact.seed, finish_reason=artifact.finish_reason, detail=artifact.detail
            ), None
        key = job.output.image_key(FILE_EXTENSIONS[fmt])
        if found is not None:
            image = found.data
        else:
            image = encode_result(artifact.image, fmt)
            said = {
                "job_id": job.job_id,
                "seed": artifact.seed,
                "finish_reason": artifact.finish_reason,
                "model_id": model.id,
                "emulated": model.emulated,
                "attempts": model.attempts,
                "fallback_from": [f.to_json_dict() for f in model.fallback_from or []],
            }
            self._store.put(
                job.output.bucket, key, image, MIME_TYPES[fmt], {ANSWER_METADATA: json.dumps(said)}
            )
        result = ResultInfo(
            bucket=job.output.bucket,
            key=key,
            seed=artifact.seed,
            finish_reason=artifact.finish_reason,
            format=fmt,
            bytes=len(image),
            sha256=hashlib.sha256(image).hexdigest(),
        )
        return result, image

    def _release(self, job: Job, calls: int, lease: float, billed: ServiceError | None) -> None:
        """An attempt that ended before its model could bill gives its count back; one whose
        call may have billed keeps it and records why it failed."""
        if not calls:
            return
        try:
            now = self._clock()
            record = job.record("QUEUED", iso(now))
            record.error = ErrorInfo.of(billed) if billed else None
            self._jobs.write(record, now=now, calls=calls, lease=lease, billed=billed is not None)
        except StorageError:
            log.warning("job %s: could not give its attempt back", job.job_id, extra={"job_id": job.job_id})
