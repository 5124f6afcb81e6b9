"""The API door's use cases: run a request now, queue it as a job, look a job up, hand out
an upload. Inline sources are stored in the input bucket under api/ first, so every job,
sync or async, has its source in S3 and its metadata can point to it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from img2img.domain.caller import API_SOURCE_PREFIX, Caller, not_yours
from img2img.domain.door_settings import DoorSettings
from img2img.domain.errors import FieldError, InvalidRequest, JobNotFound, PayloadTooLarge, ServiceError
from img2img.domain.imaging import detect_format
from img2img.domain.job import Job, JobView, SourceRef, api_output_keys, stable_id
from img2img.domain.models import resolve_model_id
from img2img.domain.pipeline import Outcome, Pipeline, utc_now
from img2img.domain.ports import JobQueuePort, JobStorePort, ObjectStorePort, PresignedPost
from img2img.domain.request import ImageToImageRequest

Once = Callable[[str, str, str, Callable[[], dict[str, Any]]], dict[str, Any]]
UPLOAD_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class SyncResult:
    summary: dict[str, Any]
    image: bytes | None  # None when replayed: read it back from the output bucket


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
    ) -> SyncResult:
        model_id = resolve_model_id(request, self._s.allowed_model_ids, self._s.default_model_id)
        self._check_source(request, caller)
        produced: list[Outcome] = []

        def compute() -> dict[str, Any]:
            job = self._new_job(request, model_id, caller, idempotency_key)
            # A keyed retry after a failure is the same job (same id): it finishes from the
            # model answer the failed attempt stored instead of calling the model again.
            outcome = self._pipeline.run(
                job, final_attempt=True, first_attempt=idempotency_key is None, time_left=time_left
            )
            if outcome.error is not None:
                # Recorded as FAILED in the metadata and job record; the caller gets the
                # error's status code and the job id to look it up.
                outcome.error.job_id = job.job_id
                raise outcome.error
            produced.append(outcome)
            return outcome.summary()

        if idempotency_key is None:
            summary = compute()
        else:
            summary = self._once(_scope("api-sync", caller), idempotency_key, fingerprint(request), compute)
        return SyncResult(summary, produced[0].image if produced else None)

    def submit(
        self, request: ImageToImageRequest, caller: Caller, idempotency_key: str | None
    ) -> dict[str, Any]:
        model_id = resolve_model_id(request, self._s.allowed_model_ids, self._s.default_model_id)
        self._check_source(request, caller)

        def compute() -> dict[str, Any]:
            job = self._new_job(request, model_id, caller, idempotency_key)
            view = JobView.of(job, "QUEUED", utc_now())
            self._jobs.save(view)
            try:
                self._queue.send(queued_job_message(job))
            except ServiceError as error:
                # Not queued: say so in the record instead of leaving it QUEUED for ever.
                view.status, view.error = "FAILED", error.to_dict()
                self._jobs.save(view)
                raise
            return view.to_dict()

        if idempotency_key is None:
            return compute()
        return self._once(_scope("api-async", caller), idempotency_key, fingerprint(request), compute)

    def job(self, job_id: str, caller: Caller) -> JobView:
        """The caller's own job. Someone else's answers exactly as a missing one does."""
        view = self._jobs.get(job_id)
        if not view.belongs_to(caller):
            raise JobNotFound(f"no job {job_id}")
        return view

    def upload(self, content_type: str, caller: Caller) -> tuple[str, PresignedPost]:
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
        return key, post

    def presign(self, bucket: str, key: str) -> str:
        return self._store.presign_get(bucket, key, self._s.presign_expiry_seconds)

    def read_result(self, bucket: str, key: str) -> bytes:
        return self._store.get_bytes(bucket, key)

    @staticmethod
    def _check_source(request: ImageToImageRequest, caller: Caller) -> None:
        """Before anything reads the input bucket: a caller runs only their own uploads, so a
        key of someone else's (or a probe for one) is a 400 whether or not it exists."""
        key = request.init_image_s3_key
        if key is not None and not key.startswith(caller.upload_prefix):
            raise not_yours("init_image_s3_key")

    def _new_job(
        self, request: ImageToImageRequest, model_id: str, caller: Caller, idempotency_key: str | None
    ) -> Job:
        job_id = (
            self._new_id()
            if idempotency_key is None
            else stable_id("api", caller.tag, idempotency_key, fingerprint(request))
        )
        data: bytes | None = None
        if request.init_image is not None:
            data = decode_inline_image(request.init_image, self._s.max_image_bytes)
            source = SourceRef(
                self._s.input_bucket, f"{API_SOURCE_PREFIX}{job_id}/source.{detect_format(data) or 'bin'}"
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


def decode_inline_image(value: str, max_bytes: int) -> bytes:
    if len(value) > (max_bytes * 4) // 3 + 4:
        raise PayloadTooLarge(
            f"init_image is larger than {max_bytes} bytes: upload it with POST /v1/uploads and "
            "send init_image_s3_key instead",
            [FieldError("init_image", "too large for an inline request")],
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(
            "init_image is not valid base64", [FieldError("init_image", "not valid base64")]
        ) from exc


def fingerprint(request: ImageToImageRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def queued_job_message(job: Job) -> dict[str, Any]:
    """The queue message of an async API job: the request without image bytes (the source is
    already in S3), small enough for SQS."""
    request = job.request.model_dump(exclude_none=True, exclude={"init_image"})
    request["init_image_s3_key"] = job.source.key
    return {
        "kind": "api_job",
        "job_id": job.job_id,
        "model_id": job.model_id,
        "created_at": job.created_at,
        "request": json.loads(json.dumps(request)),
        "caller": job.caller.to_dict() if job.caller else None,
        "output": {
            "bucket": job.output.bucket,
            "stem": job.output.stem,
            "metadata_key": job.output.metadata_key,
        },
    }
