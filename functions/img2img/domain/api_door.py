"""The API door's use cases: run a request now, queue it as a job, look a job up, hand out
an upload, each answering its typed body (domain/answers.py). Inline sources are stored in the
input bucket under api/ first, so every job, sync or async, has its source in S3 and its
metadata can point to it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

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
from img2img.domain.errors import FieldError, InvalidRequest, JobNotFound, ServiceError
from img2img.domain.imaging import ACCEPTED_FORMATS, FILE_EXTENSIONS, MIME_TYPES, detect_format
from img2img.domain.job import Job, SourceRef, api_output_keys, stable_id
from img2img.domain.models import resolve_model_id
from img2img.domain.pipeline import Pipeline, utc_now
from img2img.domain.ports import JobQueuePort, JobStorePort, ObjectStorePort
from img2img.domain.records import ErrorInfo, OutputInfo, QueuedJob, QueuedOutput, ResultInfo, Summary
from img2img.domain.request import ImageToImageRequest
from img2img.engines import engine_for
from img2img.vocabulary import API_RESULTS, API_SOURCES, job_path

# The idempotency port: once(scope, key, fingerprint, compute) -> compute()'s JSON, stored.
Once = Callable[[str, str, str, Callable[[], dict[str, Any]]], dict[str, Any]]
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
        once: Once,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._s = settings
        self._pipeline = pipeline
        self._store = store
        self._jobs = jobs
        self._queue = queue
        self._once = once
        self._new_id = new_id

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
        A replayed answer's image is read back from the output bucket."""
        model_id = self._check(request, caller)
        # The image this request produced; None when idempotency replayed an earlier answer
        # (whose image is then read back from the output bucket).
        image: bytes | None = None

        def compute() -> dict[str, Any]:
            nonlocal image
            job = self._new_job(request, model_id, caller, idempotency_key, "api-sync")
            # A keyed retry after a failure is the same job (same id): it finishes from the
            # model answer the failed attempt stored instead of calling the model again.
            outcome = self._pipeline.run(job, final_attempt=True, time_left=time_left)
            if outcome.error is not None:
                # Recorded as FAILED in the metadata and job record; the caller gets the
                # error's status code and the job id to look it up.
                outcome.error.job_id = job.job_id
                raise outcome.error
            image = outcome.image
            return outcome.summary().to_json_dict()

        if idempotency_key is None:
            summary = Summary.model_validate(compute())
        else:
            summary = Summary.model_validate(
                self._once(_scope("api-sync", caller), idempotency_key, fingerprint(request), compute)
            )
        result = summary.result or ResultInfo(seed=0, finish_reason="ERROR")
        artifact = SdxlArtifact(seed=result.seed, finishReason=result.finish_reason)
        if not want_url:
            if image is None and result.key and result.bucket:
                image = self._store.get_bytes(result.bucket, result.key)
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
        model_id = self._check(request, caller)

        def compute() -> dict[str, Any]:
            job = self._new_job(request, model_id, caller, idempotency_key, "api-async")
            record = job.record("QUEUED", utc_now())
            # A keyed retry after a failed send is the same job, queued again: its record
            # says QUEUED again instead of the FAILED the failed send left.
            self._jobs.save(record, over_failed=idempotency_key is not None)
            try:
                self._queue.send(queued_job_message(job).to_json_dict())
            except ServiceError as error:
                # Not queued: say so in the record instead of leaving it QUEUED for ever.
                record.status, record.error = "FAILED", ErrorInfo.of(error)
                self._jobs.save(record)
                raise
            return {"job_id": record.job_id, "status": record.status}

        if idempotency_key is None:
            queued = compute()
        else:
            queued = self._once(_scope("api-async", caller), idempotency_key, fingerprint(request), compute)
        job_id = str(queued["job_id"])
        return JobAccepted(
            job_id=job_id, status=queued["status"], links=JobLinks.model_validate({"self": job_path(job_id)})
        )

    def job(self, job_id: str, caller: Caller) -> JobAnswer:
        """The caller's own job, with where its results are once it has ended. Someone else's
        answers exactly as a missing one does."""
        record = self._jobs.get(job_id)
        if not record.belongs_to(caller):
            raise JobNotFound(f"no job {job_id}")
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
        """Everything refusable without the image, before anything is stored or queued: the
        model (enabled here, live), its rules on the request (its prompt limits), and the
        source's owner: a caller runs only their own uploads, so a key of someone else's (or a
        probe for one) is a 400 whether or not it exists. Answers the model id to run."""
        model_id = resolve_model_id(request, self._s.allowed_model_ids, self._s.default_model_id)
        engine_for(model_id).check_request(request)
        key = request.init_image_s3_key
        if key is not None and not key.startswith(caller.upload_prefix):
            raise not_yours("init_image_s3_key")
        admit(request, self._store, self._s)
        return model_id

    def _new_job(
        self,
        request: ImageToImageRequest,
        model_id: str,
        caller: Caller,
        idempotency_key: str | None,
        route: str,
    ) -> Job:
        # A keyed job's id derives from its route, caller, key and body: the same key sent to
        # the sync route and then to POST /v1/jobs (as a 504 advises) names two jobs, not one.
        job_id = (
            self._new_id()
            if idempotency_key is None
            else stable_id(route, caller.tag, idempotency_key, fingerprint(request))
        )
        data: bytes | None = None
        if request.init_image is not None:
            data = decode_inline_image(request.init_image, self._s.max_image_bytes)
            source = SourceRef(
                self._s.input_bucket, f"{API_SOURCES}{job_id}/source.{detect_format(data) or 'bin'}"
            )
            self._store.put(source.bucket, source.key, data, "application/octet-stream")
        else:
            assert request.init_image_s3_key is not None  # the request schema guarantees one of them
            source = SourceRef(self._s.input_bucket, request.init_image_s3_key)
        return Job(
            job_id=job_id,
            door="api",
            request=request,
            model_id=model_id,
            source=source,
            output=api_output_keys(self._s.output_bucket, job_id),
            created_at=utc_now(),
            source_data=data,
            caller=caller,
        )


def _scope(name: str, caller: Caller) -> str:
    """Idempotency keys are per caller: two callers' identical keys are different requests."""
    return f"{name}.{caller.tag}"


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
