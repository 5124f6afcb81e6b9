"""What one SQS message asks of the worker, read from the shapes AWS documents: S3's event
notification (Powertools' S3Event data class), S3's test event, a queued API job or one image
of a manifest (domain/records.py QueuedJob, ManifestImage). The domain gets typed messages, never raw dicts.

Powertools' data classes, not its pydantic parser models: they read the same documented fields
lazily, and importing the parser models costs the worker's cold start about 27 ms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes.s3_event import S3Event, S3EventRecord
from pydantic import ValidationError

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.domain.records import ManifestImage, QueuedJob
from img2img.domain.s3_door import Dropped, SourceObject

Queued = TypeVar("Queued", QueuedJob, ManifestImage)


class UnreadableMessage(ValueError):
    """A message no producer of this queue writes: not JSON, or neither shape. Nothing in it
    can be answered, so it is logged and dropped."""


@dataclass(frozen=True)
class Skipped:
    """A message that starts no job by design, such as S3's test event."""

    reason: str


def read_message(body: str) -> QueuedJob | ManifestImage | Dropped | Skipped:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise UnreadableMessage("not JSON") from exc
    if not isinstance(message, dict):
        raise UnreadableMessage("not a JSON object")
    if message.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return Skipped("s3:TestEvent")
    if message.get("kind") == "api_job":
        return queued_job(message, QueuedJob)
    if message.get("kind") == "manifest_image":
        return queued_job(message, ManifestImage)
    if isinstance(message.get("Records"), list):
        return dropped(S3Event(message))
    raise UnreadableMessage("neither an S3 event notification nor a queued job")


def queued_job(message: dict[str, Any], kind: type[Queued]) -> Queued:
    """A message the service queued, checked field by field: whoever may send to the queue could
    have written it, so a malformed one is refused (and, after its receives, dead-lettered)."""
    try:
        return kind.model_validate(message)
    except ValidationError as exc:
        details = [FieldError(".".join(map(str, e["loc"])) or "message", e["msg"]) for e in exc.errors()]
        raise InvalidRequest("not a valid queued job", details) from exc


def dropped(event: S3Event) -> Dropped:
    """The objects an S3 event notification says were created. Other events (removals,
    restores) start nothing."""
    try:
        return Dropped(
            tuple(
                _source_object(record)
                for record in event.records
                if record.event_source == "aws:s3" and record.event_name.startswith("ObjectCreated")
            )
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise UnreadableMessage(f"an S3 event notification without {exc}") from exc


def _source_object(record: S3EventRecord) -> SourceObject:
    obj = record.s3.get_object
    return SourceObject(
        bucket=record.s3.bucket.name,
        key=unquote_plus(obj.key),  # URL-encoded in events, '+' for a space
        version_id=obj.version_id,
        etag=obj.etag.strip('"'),  # quoted in S3's API, bare in events
        principal=(record.get("userIdentity") or {}).get("principalId"),
        event_time=record.event_time,
    )
