"""What the worker does with one queue message: an async API job, an S3 notification of
objects dropped under inbox/ (an image runs; a manifest fans out into one message per image it
names), or one such image. Each job runs at most once per object version and parameters; a
retryable failure raises, so the message comes back (and, once it has used its receives, goes
to the dead-letter queue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from img2img.domain.caller import Caller, not_yours, owns_source
from img2img.domain.door_settings import DoorSettings
from img2img.domain.errors import FieldError, ImageTooLarge, InvalidRequest, PayloadTooLarge, ServiceError
from img2img.domain.imaging import FILE_EXTENSIONS
from img2img.domain.job import Job, OutputKeys, SourceRef, api_output_keys, stable_id
from img2img.domain.models import resolve_model_id
from img2img.domain.pipeline import Attempt, Pipeline, Refused, utc_now
from img2img.domain.ports import JobQueuePort, ObjectStorePort, StoredObject
from img2img.domain.records import (
    ManifestImage,
    ManifestJob,
    ManifestJobs,
    Metadata,
    QueuedJob,
    SourceInfo,
    Summary,
)
from img2img.domain.request import parse_request
from img2img.domain.s3_door import (
    Dropped,
    SourceObject,
    is_manifest,
    job_id_for,
    manifest_job_id,
    manifest_requests,
    metadata_request,
    output_keys,
    refusal_keys,
    request_from_metadata,
    starts_jobs,
)
from img2img.vocabulary import INBOX, SOURCES


class QueueWorker:
    def __init__(
        self,
        *,
        settings: DoorSettings,
        pipeline: Pipeline,
        store: ObjectStorePort,
        queue: JobQueuePort,
        on_skip: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._s = settings
        self._pipeline = pipeline
        self._store = store
        self._queue = queue
        self._on_skip = on_skip

    def handle(self, message: QueuedJob | ManifestImage | Dropped, attempt: Attempt) -> list[Summary]:
        """Run every job a message carries; answers their summaries (none for a manifest: its
        jobs are queued). A job an earlier delivery already took to the model finishes from the
        result it stored."""
        if isinstance(message, QueuedJob):
            return [self._run_api_job(message, attempt)]
        if isinstance(message, ManifestImage):
            return [self._run_manifest_image(message, attempt)]
        summaries: list[Summary] = []
        for obj in message.objects:
            if obj.bucket != self._s.input_bucket or not starts_jobs(obj.key):
                self._on_skip(f"not an input under inbox/: s3://{obj.bucket}/{obj.key}")
                continue
            summaries.extend(self._run_object(obj, attempt))
        return summaries

    def _run_api_job(self, queued: QueuedJob, attempt: Attempt) -> Summary:
        """A queued API job. The message is not trusted beyond its request (its fields were
        checked as it was read): the keys are derived from the job id again, the source must be
        the caller's own, and the model is checked against this environment's list, as the API
        door did (whoever may send to the queue could have written it). A message no API door
        wrote (another caller's source, two models) is refused with nothing recorded; a job
        this environment no longer runs (its model disabled or retired since it was queued, a
        request a newer version refuses) ends FAILED, saying why, where its caller looks."""
        job_id, caller = queued.job_id, queued.caller
        key = str(queued.request.get("init_image_s3_key"))
        if not owns_source(caller, key, job_id):
            raise not_yours("init_image_s3_key")
        if queued.request.get("model_id") not in (None, queued.model_id):
            raise InvalidRequest("a queued job names two models", [FieldError("model_id", "does not match")])
        output = api_output_keys(self._s.output_bucket, job_id)
        try:
            request = parse_request(queued.request)
            model_id = resolve_model_id(
                request.model_copy(update={"model_id": queued.model_id or None}),
                self._s.allowed_model_ids,
                self._s.default_model_id,
            )
        except ServiceError as error:
            if error.retryable:
                raise
            source = SourceRef(self._s.input_bucket, key)
            return self._pipeline.reject(
                Refused(job_id, "api", queued.created_at, caller, source, output), error
            )
        job = Job(
            job_id=job_id,
            door="api",
            request=request,
            model_id=model_id,
            source=SourceRef(self._s.input_bucket, str(request.init_image_s3_key)),
            output=output,
            created_at=queued.created_at,
            caller=caller,
        )
        return self._run_once(job, attempt)

    def _run_object(self, obj: SourceObject, attempt: Attempt) -> list[Summary]:
        manifest = is_manifest(obj.key)
        try:
            stored = self._read(obj, manifest)
            if manifest:
                self._fan_out(obj, manifest_requests(stored.data, self._s.max_manifest_images))
                return []
            job = self._job(request_from_metadata(stored.metadata), obj, stored.data)
        except ServiceError as error:
            keys = refusal_keys(self._s.output_bucket, obj.key)
            if self._ended(keys, obj):
                # A duplicate event for a version that already has its outcome (the source
                # since expired or unreadable): its metadata, or its listing, stands.
                self._on_skip(f"s3://{obj.bucket}/{obj.key} has its outcome already ({error.code})")
                return []
            if error.retryable and not attempt.final:
                raise
            # Nothing runnable came out of this object: say why where its result would be.
            refused = Refused(
                stable_id(obj.bucket, obj.key, obj.version_id or obj.etag),
                "s3",
                obj.event_time or utc_now(),
                Caller.from_s3_principal(obj.principal),
                SourceRef(obj.bucket, obj.key, obj.version_id),
                keys,
            )
            summary = self._pipeline.reject(refused, error)
            if error.retryable:
                raise  # recorded; on to the dead-letter queue, where a redrive can retry it
            return [summary]
        return [self._run_once(job, attempt)]

    def _ended(self, keys: OutputKeys, obj: SourceObject) -> bool:
        """Whether the JSON at an object's result keys is this very version's outcome: its job's
        metadata, whatever it ended with, or a manifest's listing. An earlier version's is not:
        a new version refused says why over it."""
        found = self._store.find(keys.bucket, keys.metadata_key)
        if found is None:
            return False
        for model, field in ((Metadata, "source"), (ManifestJobs, "manifest")):
            try:
                source: SourceInfo = getattr(model.model_validate_json(found.data), field)
            except ValueError:  # pydantic's ValidationError is one
                continue
            version = (source.version_id, obj.version_id) if obj.version_id else (source.etag, obj.etag)
            return (source.bucket, source.key) == (obj.bucket, obj.key) and version[0] == version[1]
        return False

    def _fan_out(self, obj: SourceObject, bodies: list[dict[str, Any]]) -> None:
        """One queued message per image, each its own job with its own receives and time; then
        the manifest's own JSON lists them. Every job is built first, so a manifest with one bad
        image is refused as a whole before anything is sent. Once listed, a redelivered
        manifest sends nothing; before that, its messages may go twice, and a message sent
        twice finds its job's record (deterministic ids) and costs nothing."""
        jobs = [self._job(body, obj, None, index) for index, body in enumerate(bodies)]
        listing = refusal_keys(self._s.output_bucket, obj.key)
        source = SourceInfo(bucket=obj.bucket, key=obj.key, etag=obj.etag, version_id=obj.version_id)
        found = self._store.find(listing.bucket, listing.metadata_key)
        if found is not None and _lists(found.data, source):
            return
        self._queue.send_batch(
            [
                ManifestImage(
                    bucket=obj.bucket,
                    key=obj.key,
                    version_id=obj.version_id,
                    etag=obj.etag,
                    principal=obj.principal,
                    event_time=obj.event_time,
                    index=index,
                    request=body,
                ).to_json_dict()
                for index, body in enumerate(bodies)
            ]
        )
        listed = ManifestJobs(
            manifest=source,
            jobs=[
                ManifestJob(
                    job_id=job.job_id,
                    image=job.source.key,
                    result_key=job.output.image_key(FILE_EXTENSIONS[job.request.output_format]),
                    metadata_key=job.output.metadata_key,
                )
                for job in jobs
            ],
        )
        self._store.put(
            listing.bucket,
            listing.metadata_key,
            listed.model_dump_json(indent=2).encode(),
            "application/json",
        )

    def _run_manifest_image(self, message: ManifestImage, attempt: Attempt) -> Summary:
        """One image of a manifest, as _fan_out queued it. Checked again as the fan-out checked
        it (whoever may send to the queue could have written it); a job this environment no
        longer runs (its model disabled since) ends FAILED, saying why, where its caller looks."""
        obj = SourceObject(
            message.bucket,
            message.key,
            message.version_id,
            message.etag,
            message.principal,
            message.event_time,
        )
        if obj.bucket != self._s.input_bucket or not (starts_jobs(obj.key) and is_manifest(obj.key)):
            raise InvalidRequest(
                "not an image of a manifest under inbox/", [FieldError("key", "not a manifest")]
            )
        try:
            job = self._job(message.request, obj, None, message.index)
        except ServiceError as error:
            if error.retryable:
                raise
            image = str(message.request.get("init_image_s3_key"))
            refused = Refused(
                manifest_job_id(obj, message.index),
                "s3",
                obj.event_time or utc_now(),
                Caller.from_s3_principal(obj.principal),
                SourceRef(self._s.input_bucket, image),
                output_keys(self._s.output_bucket, image, obj.key),
            )
            return self._pipeline.reject(refused, error)
        return self._run_once(job, attempt)

    def _read(self, obj: SourceObject, manifest: bool) -> StoredObject:
        if not manifest:
            return self._store.get(
                obj.bucket, obj.key, max_bytes=self._s.max_image_bytes, version_id=obj.version_id
            )
        cap = self._s.max_manifest_bytes
        try:
            return self._store.get(obj.bucket, obj.key, max_bytes=cap, version_id=obj.version_id)
        except ImageTooLarge as exc:
            raise PayloadTooLarge(
                f"the manifest is larger than {cap} bytes: split it into several manifests",
                [FieldError("manifest", f"larger than {cap} bytes")],
            ) from exc

    def _job(self, body: dict[str, Any], obj: SourceObject, data: bytes | None, index: int = 0) -> Job:
        """A job for one body: the dropped image itself (data given), or the `index`th image a
        manifest names: one under inbox/ or sources/ or one of the dropper's own uploads, never
        another caller's."""
        caller = Caller.from_s3_principal(obj.principal)
        if data is not None:
            body = {**body, "init_image_s3_key": obj.key}
            source = obj
        else:
            key = body.get("init_image_s3_key")
            if not isinstance(key, str):
                raise InvalidRequest(
                    "the manifest names no image",
                    [FieldError("init_image_s3_key", "give init_image_s3_key or init_image_s3_keys")],
                )
            if not key.startswith((SOURCES, INBOX)) and not owns_source(caller, key, ""):
                raise InvalidRequest(
                    "a manifest names images under sources/ or inbox/, or uploads of the principal "
                    "that dropped it",
                    [FieldError("init_image_s3_key", "not under sources/ or inbox/, not an upload of yours")],
                )
            source = SourceObject(self._s.input_bucket, key, None, "")
        request = parse_request(body) if data is None else metadata_request(body)
        model_id = resolve_model_id(request, self._s.allowed_model_ids, self._s.default_model_id)
        # The manifest's own version is part of its jobs' identity: dropping it again after
        # replacing the images runs them again instead of answering the old results.
        job_id = (
            job_id_for(source, request.model_dump(exclude_none=True))
            if data is not None
            else manifest_job_id(obj, index)
        )
        return Job(
            job_id=job_id,
            door="s3",
            request=request,
            model_id=model_id,
            source=SourceRef(
                self._s.input_bucket, source.key, source.version_id, obj.etag if data is not None else None
            ),
            output=output_keys(self._s.output_bucket, source.key, None if data is not None else obj.key),
            created_at=obj.event_time or utc_now(),
            source_data=data,
            caller=caller,
        )

    def _run_once(self, job: Job, attempt: Attempt) -> Summary:
        outcome = self._pipeline.run(job, attempt)
        if outcome.error is not None and outcome.error.retryable:
            # Recorded as FAILED, but raised so the message goes on to the dead-letter queue,
            # where a redrive may take the job up again (its record allows it).
            raise outcome.error
        return outcome.summary


def _lists(document: bytes, manifest: SourceInfo) -> bool:
    """Whether the JSON at a manifest's key lists this version's jobs (not an earlier version's,
    nor the FAILED metadata of a version that was refused)."""
    try:
        return ManifestJobs.model_validate_json(document).manifest == manifest
    except ValueError:  # pydantic's ValidationError is one
        return False
