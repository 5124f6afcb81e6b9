"""The API door's use cases: run a request now, queue it as a job, look a job up, hand out
an upload, each answering its typed body (domain/answers.py). Inline sources are stored in the
input bucket under api/ first, so every job, sync or async, has its source in S3 and its
metadata can point to it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable

from img2img.domain.admission import admit, decode_inline_image
from img2img.domain.answers import (
    JobAccepted,
    JobAnswer,
    JobLinks,
    Location,
    Locations,
    SdxlArtifact,
    SyncAnswer,
    UploadForm,
    UploadTicket,
)
from img2img.domain.caller import Caller, not_yours
from img2img.domain.door_settings import DoorSettings
from img2img.domain.errors import (
    FieldError,
    IdempotencyConflict,
    InvalidRequest,
    JobNotFound,
    ServiceError,
    StorageError,
    error_of,
)
from img2img.domain.imaging import ACCEPTED_FORMATS, FILE_EXTENSIONS, MIME_TYPES, detect_format
from img2img.domain.job import Job, SourceRef, api_output_keys, stable_id
from img2img.domain.models import resolve_model_id
from img2img.domain.pipeline import Attempt, Pipeline, iso
from img2img.domain.ports import EngineLookup, JobQueuePort, JobStorePort, ObjectStorePort
from img2img.domain.records import (
    ErrorInfo,
    Metadata,
    OutputInfo,
    QueuedJob,
    QueuedOutput,
    ResultInfo,
    Summary,
)
from img2img.domain.request import ImageToImageRequest
from img2img.vocabulary import API_RESULTS, API_SOURCES, job_path

# What an upload ticket accepts: each accepted format's MIME type -> the key's extension.
UPLOAD_TYPES = {MIME_TYPES[f]: FILE_EXTENSIONS[f].lstrip(".") for f in ACCEPTED_FORMATS}


class ApiDoor:
    def __init__(
        self,
        *,
        settings: DoorSettings,
        pipeline: Pipeline,
        store: ObjectStorePort,
        jobs: JobStorePort,
        queue: JobQueuePort,
        engines: EngineLookup,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._pipeline = pipeline
        self._store = store
        self._jobs = jobs
        self._queue = queue
        self._engines = engines
        self._new_id = new_id
        self._clock = clock

    def run_now(
        self,
        request: ImageToImageRequest,
        caller: Caller,
        idempotency_key: str | None,
        time_left: Callable[[], float] | None = None,
        *,
        want_url: bool = False,
    ) -> SyncAnswer:
        """Bedrock's SDXL answer: the image inline as base64, or (`want_url`) only where it is.
        A keyed retry of a job that ended answers its record (the image read back from the
        result); one that failed on a fault a retry may cure runs again, billed at most once
        more (domain/job_states.py)."""
        model_id = self._check(request, caller)
        job = self._new_job(request, model_id, caller, idempotency_key, "api-sync")
        outcome = self._pipeline.run(job, Attempt(final=True, time_left=time_left))
        summary, image = outcome.summary, outcome.image
        error = outcome.error or recorded_error(summary)
        if error is not None:
            # Recorded as FAILED in the metadata and job record; the caller gets the error's
            # status code and the job id to look it up.
            error.job_id = job.job_id
            raise error
        result = summary.result or ResultInfo(seed=0, finish_reason="ERROR")
        artifact = SdxlArtifact(seed=result.seed, finishReason=result.finish_reason)
        if not want_url:
            if image is None and result.key and result.bucket:  # a keyed retry's: read it back
                try:
                    found = self._store.find(result.bucket, result.key)
                    if found is None:
                        raise StorageError(f"could not read {result.key}", internal="the result is gone")
                except StorageError as unread:
                    unread.job_id = job.job_id
                    raise
                image = found.data
            artifact.base64 = base64.b64encode(image).decode() if image else ""
        return SyncAnswer(
            artifacts=[artifact],
            job_id=summary.job_id,
            status=summary.status,
            error=summary.error,
            **self._locations(result, summary.output).model_dump(exclude_none=True),
        )

    def submit(
        self, request: ImageToImageRequest, caller: Caller, idempotency_key: str | None
    ) -> JobAccepted:
        """QUEUED, then the message. A keyed retry answers the job as it stands, or queues it
        again after a failed send (the same job: its record allows it)."""
        model_id = self._check(request, caller)
        job = self._new_job(request, model_id, caller, idempotency_key, "api-async")
        now = self._clock()
        record = job.record("QUEUED", iso(now))
        written = self._jobs.write(record, now=now, request_hash=job.request_hash)
        status = record.status
        if not written.applied:
            assert written.before is not None
            if written.before.request_hash != job.request_hash:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request body"
                )
            status = written.before.status
        else:
            try:
                if job.store_source and job.source_data is not None:  # once the job is this request's own
                    self._store.put(
                        job.source.bucket, job.source.key, job.source_data, "application/octet-stream"
                    )
                self._queue.send(queued_job_message(job).to_json_dict())
            except ServiceError as error:
                # Not queued: say so in the record instead of leaving it QUEUED for ever (retry
                # set: a keyed retry queues it again). No metadata JSON: a job GET would answer
                # from it over the record once the job is queued again.
                error.job_id = job.job_id
                record.status, record.error = "FAILED", ErrorInfo.of(error)
                # If that write fails too, the record stays QUEUED; the error names the job.
                with contextlib.suppress(StorageError):
                    self._jobs.write(record, now=self._clock(), retry=True)
                raise error
        return JobAccepted(
            job_id=job.job_id, status=status, links=JobLinks.model_validate({"self": job_path(job.job_id)})
        )

    def job(self, job_id: str, caller: Caller) -> JobAnswer:
        """The caller's own job, with where its results are once it has ended. Someone else's
        answers exactly as a missing one does."""
        record = self._jobs.get(job_id)
        if not record.belongs_to(caller):
            raise JobNotFound(f"no job {job_id}")
        if not record.final and record.output is not None:
            # The metadata JSON is written before the final record: a job whose last attempt
            # could not write its record (the table failing) has ended all the same.
            found = self._store.find(record.output.bucket, record.output.metadata_key)
            ended = Metadata.model_validate_json(found.data) if found else None
            if ended is not None and ended.job_id == job_id:
                update = {"status": ended.status, "result": ended.result, "error": ended.error}
                record = record.model_copy(update=update)
        locations = self._locations(record.result, record.output if record.final else None)
        return JobAnswer(**record.model_dump(), **locations.model_dump(exclude_none=True))

    def upload(self, content_type: str, caller: Caller) -> UploadTicket:
        extension = UPLOAD_TYPES.get(content_type)
        if extension is None:
            raise InvalidRequest(
                f"uploads take {', '.join(UPLOAD_TYPES)}",
                [FieldError("content_type", f"must be one of: {', '.join(UPLOAD_TYPES)}")],
            )
        key = f"{caller.upload_prefix}{self._new_id()}.{extension}"
        post = self._store.presign_post(
            self._s.input_bucket,
            key,
            content_type=content_type,
            max_bytes=self._s.upload_max_bytes,
            expires_in=self._s.presign_expiry_seconds,
        )
        return UploadTicket(
            init_image_s3_key=key,
            upload=UploadForm(url=post.url, fields=post.fields),
            max_bytes=self._s.upload_max_bytes,
            expires_in=self._s.presign_expiry_seconds,
        )

    def _locations(self, result: ResultInfo | None, output: OutputInfo | None) -> Locations:
        """Where a job's image and metadata are. Presigned URLs only under jobs/: the api
        function's role reads nothing else in the output bucket, so it could sign no other."""
        found = Locations()
        if result is not None and result.bucket and result.key:
            found.image = self._location(result.bucket, result.key)
        if output is not None:
            found.metadata = self._location(output.bucket, output.metadata_key)
        return found

    def _location(self, bucket: str, key: str) -> Location:
        url = None
        if key.startswith(API_RESULTS):
            url = self._store.presign_get(bucket, key, self._s.presign_expiry_seconds)
        return Location(s3_uri=f"s3://{bucket}/{key}", url=url)

    def _check(self, request: ImageToImageRequest, caller: Caller) -> str:
        """Everything refusable before the job is looked up or its source read: the model
        (enabled here, live), its rules on the request (its prompt limits), and the source's
        owner: a caller runs only their own uploads, so a key of someone else's (or a probe for
        one) is a 400 whether or not it exists. Answers the model id to run."""
        model_id = resolve_model_id(request, self._s.allowed_model_ids, self._s.default_model_id)
        self._engines(model_id).check_request(request)
        key = request.init_image_s3_key
        if key is not None and not key.startswith(caller.upload_prefix):
            raise not_yours("init_image_s3_key")
        return model_id

    def _new_job(
        self,
        request: ImageToImageRequest,
        model_id: str,
        caller: Caller,
        idempotency_key: str | None,
        route: str,
    ) -> Job:
        """The job a request names, its source admitted (domain/admission.py) before anything is
        stored: read or decoded once, its bytes handed to the pipeline. A keyed request whose
        job is recorded is not admitted again: its record answers (a replay, even after the
        upload expired), or a retry reads its source as any run does."""
        # A keyed job's id derives from its route, caller and key (the record keeps the body's
        # hash: another body is a conflict): the same key sent to the sync route and then to
        # POST /v1/jobs (as a 504 advises) names two jobs, not one.
        keyed = idempotency_key is not None
        job_id = stable_id(route, caller.tag, idempotency_key) if keyed else self._new_id()
        recorded = keyed and self._recorded(job_id)
        data: bytes | None = None
        if request.init_image is not None:
            data = decode_inline_image(request.init_image, self._s.max_image_bytes)
            source = SourceRef(
                self._s.input_bucket, f"{API_SOURCES}{job_id}/source.{detect_format(data) or 'bin'}"
            )
        else:
            assert request.init_image_s3_key is not None  # the request schema guarantees one of them
            source = SourceRef(self._s.input_bucket, request.init_image_s3_key)
            if not recorded:  # the caller's own upload: a missing one is source_not_found
                stored = self._store.get(source.bucket, source.key, max_bytes=self._s.max_image_bytes)
                data = stored.data
                source = SourceRef(source.bucket, source.key, stored.version_id, stored.etag)
        if not recorded:
            assert data is not None
            admit(data, self._s.image_limits)
        return Job(
            job_id=job_id,
            door="api",
            request=request,
            model_id=model_id,
            source=source,
            output=api_output_keys(self._s.output_bucket, job_id),
            created_at=iso(self._clock()),
            source_data=data,
            caller=caller,
            request_hash=fingerprint(request) if keyed else None,
            store_source=request.init_image is not None,
        )

    def _recorded(self, job_id: str) -> bool:
        try:
            self._jobs.get(job_id)
        except JobNotFound:
            return False
        return True


def recorded_error(summary: Summary) -> ServiceError | None:
    """The error a settled FAILED job ended with, to answer again (a keyed retry). A model that
    finished with ERROR is an answer (200, finishReason ERROR), not an error."""
    if summary.status != "FAILED" or summary.error is None or summary.error.code == "model_error":
        return None
    return error_of(
        summary.error.code,
        summary.error.message,
        [FieldError(d.field, d.message) for d in summary.error.details],
    )


def fingerprint(request: ImageToImageRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def queued_job_message(job: Job) -> QueuedJob:
    # Only what the caller set: a default written here would read as set by the caller, and
    # every job would note "cfg_scale 7.0 dropped".
    request = job.request.model_dump(
        mode="json", exclude_unset=True, exclude_none=True, exclude={"init_image"}
    )
    request["init_image_s3_key"] = job.source.key
    return QueuedJob(
        job_id=job.job_id,
        model_id=job.model_id,
        created_at=job.created_at,
        request=request,
        output=QueuedOutput(
            bucket=job.output.bucket, stem=job.output.stem, metadata_key=job.output.metadata_key
        ),
        caller=job.caller,
    )
