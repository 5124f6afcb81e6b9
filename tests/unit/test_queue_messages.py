"""How the worker reads one SQS message's body (handlers/queue_messages.py): S3's documented
notification and test event (the recorded fixtures in tests/events, validated against
Powertools' parser models in tests/local/test_local_runtime.py), moto's variant, and queued API
jobs, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from img2img.domain.caller import Caller
from img2img.domain.errors import InvalidRequest
from img2img.domain.records import QueuedJob, QueuedOutput
from img2img.domain.s3_door import Dropped, SourceObject
from img2img.handlers.queue_messages import Skipped, UnreadableMessage, read_message
from tests.handlers.sqs_events import s3_notification

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parents[1] / "events"


def objects_of(event: dict[str, Any]) -> tuple[SourceObject, ...]:
    read = read_message(json.dumps(event))
    assert isinstance(read, Dropped)
    return read.objects


def bodies(fixture: str) -> list[str]:
    return [record["body"] for record in json.loads((EVENTS / fixture).read_text())["Records"]]


def test_s3s_documented_notification_names_the_object_and_its_dropper() -> None:
    [body] = bodies("sqs_s3_object_created.json")
    [obj] = objects_of(json.loads(body))
    assert obj == SourceObject(
        bucket="img2img-dev-input",
        key="inbox/my cat été+1.png",
        version_id=None,
        etag="0e7ac4d1f9a3e4b2c1d0e9f8a7b6c5d4",
        principal="AWS:AROAEXAMPLEROLEID:alice",
        event_time="2024-11-24T12:20:00.456Z",  # the job's created_at
    )


def test_every_creation_event_starts_jobs_copies_and_multipart_uploads_too() -> None:
    names = [o.key for body in bodies("sqs_s3_batch.json") for o in objects_of(json.loads(body))]
    assert len(names) == 3 and all(name.startswith("inbox/") for name in names)
    [body] = bodies("sqs_s3_multipart_upload.json")
    assert len(objects_of(json.loads(body))) == 1


def test_motos_encoding_of_the_key_reads_the_same() -> None:
    [body] = bodies("sqs_s3_object_created_moto.json")  # moto encodes '/' as %2F, S3 does not
    [obj] = objects_of(json.loads(body))
    assert obj.key == "inbox/my cat été+1.png" and obj.principal == "AWS:AIDAJLOCALEXAMPLE"


def test_versions_and_quoted_etags() -> None:
    [obj] = objects_of(s3_notification("in", "inbox/a.png", version_id="v1", etag='"e1"'))
    assert (obj.version_id, obj.etag) == ("v1", "e1")


def test_other_s3_events_start_nothing() -> None:
    event = s3_notification("in", "inbox/a.png")
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert objects_of(event) == ()


def test_s3s_test_event_is_skipped() -> None:
    [body] = bodies("sqs_s3_test_event.json")
    assert read_message(body) == Skipped("s3:TestEvent")


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", '{"hello": "world"}', '{"Records": [{"eventSource": "aws:s3"}]}'],
    ids=["not_json", "not_an_object", "neither_shape", "notification_without_fields"],
)
def test_what_no_producer_writes_is_unreadable(body: str) -> None:
    with pytest.raises(UnreadableMessage):
        read_message(body)


def _queued(**fields: Any) -> dict[str, Any]:
    message = QueuedJob(
        job_id="a" * 32,
        model_id="stability.sd3-5-large-v1:0",
        created_at="2026-12-02T00:00:00Z",
        request={"text_prompts": [{"text": "x"}], "init_image_s3_key": "uploads/x/a.png"},
        output=QueuedOutput(bucket="out", stem="jobs/" + "a" * 32 + "/result", metadata_key="m.json"),
        caller=Caller("api_key", "k1"),
    ).to_json_dict()
    return {k: v for k, v in {**message, **fields}.items() if v is not None}


def test_a_queued_job_reads_back_as_written() -> None:
    read = read_message(json.dumps(_queued()))
    assert isinstance(read, QueuedJob) and read.caller == Caller("api_key", "k1")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_id": "../results/x"}, "job_id"),
        ({"caller": None}, "caller"),
        ({"created_at": None}, "created_at"),
    ],
    ids=["job_id_not_an_id", "no_caller", "no_created_at"],
)
def test_a_malformed_queued_job_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_message(json.dumps(_queued(**fields)))
    assert [d.field for d in caught.value.details] == [field] and not caught.value.retryable
