"""Issue #23 at the domain level, over the in-memory ports: every job that ends, from either
door and in every final status, sends one "Image Job Finished" event once its metadata JSON
exists, whose detail meets the published schema and agrees with that metadata; a refused event
changes nothing about the job and costs no model call."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from img2img.domain.caller import Caller
from img2img.domain.job_events import JobFinished, job_finished_schema
from img2img.domain.request import parse_request
from tests.fakes import OUTPUT, House, MemoryJobEvents, MemoryObjectStore, png_bytes
from tests.handlers.sqs_events import s3_notification

pytestmark = pytest.mark.unit

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "job-finished.schema.json"
ALICE = Caller("iam", "AIDACKCEVSQ6C2EXAMPLE")
IMAGE = png_bytes()


class Witness(MemoryJobEvents):
    """Notes, as each event is sent, whether the metadata JSON it points to is already there."""

    def __init__(self, store: MemoryObjectStore) -> None:
        super().__init__()
        self.store = store
        self.metadata_there: list[bool] = []

    def job_finished(self, event: JobFinished) -> None:
        bucket, key = event.metadata_s3_uri.removeprefix("s3://").split("/", 1)
        self.metadata_there.append(self.store.find(bucket, key) is not None)
        super().job_finished(event)


@pytest.fixture
def witnessed(house: House) -> House:
    house.events = Witness(house.store)
    return house


def sync(house: House, **body: Any) -> str:
    request = parse_request(
        {"text_prompts": [{"text": "a ship"}], "init_image": base64.b64encode(IMAGE).decode(), **body}
    )
    return house.api.run_now(request, ALICE, None).job_id


def queued(house: House, **body: Any) -> str:
    request = parse_request(
        {"text_prompts": [{"text": "a ship"}], "init_image": base64.b64encode(IMAGE).decode(), **body}
    )
    job_id = house.api.submit(request, ALICE, None).job_id
    house.deliver(house.queue.messages[-1], final_attempt=True)
    return job_id


def dropped(house: House, data: bytes = IMAGE, **metadata: str) -> str:
    put = house.store.add("in-bucket", "inbox/cat.png", data, metadata=metadata)
    [summary] = house.deliver(
        s3_notification("in-bucket", "inbox/cat.png", version_id=put.version_id, etag=put.etag),
        final_attempt=True,
    )
    return summary.job_id


def finish(reason: str) -> Callable[[House], None]:
    def arrange(house: House) -> None:
        house.model.finish_reason = reason

    return arrange


CASES: dict[str, tuple[Callable[[House], str], Callable[[House], None], str, str | None]] = {
    # name: (run a job, arrange the world first, final status, error code)
    "api sync succeeded": (sync, lambda h: None, "SUCCEEDED", None),
    "api sync filtered": (sync, finish("CONTENT_FILTERED"), "CONTENT_FILTERED", None),
    "api sync model error": (sync, finish("ERROR"), "FAILED", "model_error"),
    "api queued succeeded": (queued, lambda h: None, "SUCCEEDED", None),
    "api queued filtered": (queued, finish("CONTENT_FILTERED"), "CONTENT_FILTERED", None),
    "s3 succeeded": (lambda h: dropped(h, prompt="a cat"), lambda h: None, "SUCCEEDED", None),
    "s3 filtered": (
        lambda h: dropped(h, prompt="a cat"),
        finish("CONTENT_FILTERED"),
        "CONTENT_FILTERED",
        None,
    ),
    "s3 not an image": (
        lambda h: dropped(h, b"GIF89a", prompt="x"),
        lambda h: None,
        "FAILED",
        "unsupported_image",
    ),
    "s3 no prompt (refused before the job)": (dropped, lambda h: None, "FAILED", "missing_parameters"),
}


@pytest.mark.parametrize("case", CASES)
def test_every_job_that_ends_sends_one_event_after_its_metadata(witnessed: House, case: str) -> None:
    run, arrange, status, code = CASES[case]
    arrange(witnessed)
    job_id = run(witnessed)
    [detail] = witnessed.events.details()
    Draft202012Validator(job_finished_schema()).validate(detail)
    assert witnessed.events.metadata_there == [True]  # type: ignore[attr-defined]
    meta = witnessed.store.json(OUTPUT, detail["metadata_s3_uri"].removeprefix(f"s3://{OUTPUT}/"))
    assert (detail["job_id"], detail["status"], detail["door"]) == (job_id, status, meta["door"])
    assert detail["door"] == ("s3" if case.startswith("s3") else "api")
    assert detail.get("error_code") == code
    result = meta.get("result") or {}
    if "key" in result:
        assert detail["result_s3_uri"] == f"s3://{OUTPUT}/{result['key']}"
        assert witnessed.store.find(OUTPUT, result["key"]) is not None
    else:
        assert "result_s3_uri" not in detail
    assert detail.get("model_id") == (meta.get("model") or {}).get("id")


def test_a_fallback_is_in_the_event(house: House) -> None:
    house.fallbacks = ("stability.stable-image-ultra-v1:1",)
    house.model.gone.add("stability.sd3-5-large-v1:0")
    sync(house)
    [detail] = house.events.details()
    assert detail["model_id"] == "stability.stable-image-ultra-v1:1"
    assert [f["model_id"] for f in detail["fallback_from"]] == ["stability.sd3-5-large-v1:0"]


def test_a_duplicate_delivery_of_a_finished_job_sends_nothing_again(house: House) -> None:
    put = house.store.add("in-bucket", "inbox/dup.png", IMAGE, metadata={"prompt": "twice"})
    event = s3_notification("in-bucket", "inbox/dup.png", version_id=put.version_id, etag=put.etag)
    house.deliver(event, final_attempt=False)
    house.deliver(event, final_attempt=False)
    assert len(house.events.entries) == 1 and len(house.model.calls) == 1


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_a_refused_event_changes_nothing_about_the_job_and_costs_no_call(code: str) -> None:
    calm, refused = (
        House(clock=lambda: 1_796_637_600.0),  # 2026-12-07T10:00:00Z, epoch seconds
        House(clock=lambda: 1_796_637_600.0),
    )
    refused.events.refuse(code, times=3)
    request = parse_request({"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(IMAGE).decode()})
    answers = [house.api.run_now(request, ALICE, "k1") for house in (calm, refused)]
    assert answers[0].status == answers[1].status == "SUCCEEDED"
    assert len(calm.model.calls) == len(refused.model.calls) == 1
    job_id = answers[0].job_id
    assert answers[1].job_id == job_id  # a keyed job: the same id in both worlds
    for house in (calm, refused):
        assert house.jobs.get(job_id).status == "SUCCEEDED"
    metas = [
        json.loads(house.store.read(OUTPUT, f"jobs/{job_id}/metadata.json")) for house in (calm, refused)
    ]
    for meta in metas:
        del meta["timings_ms"], meta["created_at"]  # measured / the door's own clock
    assert metas[0] == metas[1]
    assert refused.events.entries == [] and refused.events.undelivered == [code]
    assert len(calm.events.entries) == 1 and calm.events.undelivered == []


def test_the_published_schema_is_the_one_the_code_sends() -> None:
    assert json.loads(PUBLISHED.read_text()) == job_finished_schema(), "run `make schema` and commit it"
