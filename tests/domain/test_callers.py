"""Callers see only their own, at the domain: a second caller gets JobNotFound or
InvalidRequest for everything of the first's (jobs, idempotency keys, uploads), a refusal costs
no model call and reveals nothing (a key of someone else's answers the same whether it exists or
not). How the handler names callers from API Gateway's authorizers is tested in
tests/handlers/test_caller_identity.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from img2img.domain import errors
from img2img.domain.caller import Caller
from img2img.domain.records import QueuedJob
from img2img.domain.request import ImageToImageRequest, parse_request
from img2img.domain.s3_door import output_keys
from tests.fakes import INPUT, OUTPUT, House, png_bytes
from tests.handlers.sqs_events import DROPPER_ID, DROPPER_UPLOADS, s3_notification

pytestmark = pytest.mark.unit

ALICE = Caller("iam", "AIDACKCEVSQ6C2EXAMPLE")
BOB = Caller("iam", "AIDAJQABLZS4A3QDU576Q")
KEYED = Caller("api_key", "k1a2b3c4d5")
OTHERS = [BOB, KEYED, Caller("user", "7d8ca528-4931-4254-9273-ea5ee853f271")]
IMAGE = png_bytes()


def request(**overrides: Any) -> ImageToImageRequest:
    body = {"text_prompts": [{"text": "a lighthouse"}], "init_image": base64.b64encode(IMAGE).decode()}
    return parse_request({**body, **overrides})


def by_key(key: str) -> ImageToImageRequest:
    return parse_request({"text_prompts": [{"text": "a lighthouse"}], "init_image_s3_key": key})


@pytest.mark.parametrize("other", OTHERS, ids=lambda c: c.kind)
def test_another_caller_cannot_read_a_job(house: House, other: Caller) -> None:
    sync = house.api.run_now(request(), ALICE, None)
    queued = house.api.submit(request(), ALICE, None)
    for job_id in (sync.job_id, queued.job_id):
        assert house.api.job(job_id, ALICE).job_id == job_id  # its owner
        with pytest.raises(errors.JobNotFound) as caught:
            house.api.job(job_id, other)
        with pytest.raises(errors.JobNotFound) as missing:
            house.api.job("0" * 32, other)
        # Word for word what a job that does not exist answers.
        assert caught.value.to_dict() == {**missing.value.to_dict(), "message": f"no job {job_id}"}


def test_a_job_record_names_its_caller(house: House) -> None:
    queued = house.api.submit(request(), ALICE, None)
    assert house.api.job(queued.job_id, ALICE).caller == ALICE
    assert QueuedJob.model_validate(house.queue.messages[0]).caller == ALICE


def test_idempotency_keys_are_per_caller(house: House) -> None:
    """The same key from two callers is two requests: neither replays nor conflicts with the
    other's, and each is billed once."""
    first = house.api.run_now(request(), ALICE, "order-42")
    # Another body under the same key would be a conflict for the first caller; not for another one.
    second = house.api.run_now(request(seed=9), BOB, "order-42")
    assert second.job_id != first.job_id
    again = house.api.run_now(request(seed=9), BOB, "order-42")
    assert again.job_id == second.job_id and len(house.model.calls) == 2
    with pytest.raises(errors.IdempotencyConflict):
        house.api.run_now(request(seed=9), ALICE, "order-42")
    queued = house.api.submit(request(), KEYED, "order-42")
    assert queued.job_id not in (first.job_id, second.job_id)


def test_an_upload_ticket_is_under_its_callers_own_prefix(house: House) -> None:
    mine = house.api.upload("image/png", ALICE)
    theirs = house.api.upload("image/png", BOB)
    assert mine.init_image_s3_key.startswith(ALICE.upload_prefix)
    assert theirs.init_image_s3_key.startswith(BOB.upload_prefix)
    assert not theirs.init_image_s3_key.startswith(ALICE.upload_prefix)


@pytest.mark.parametrize("door", ["run_now", "submit"])
def test_another_callers_upload_is_refused_alike_whether_it_exists_or_not(house: House, door: str) -> None:
    mine = f"{ALICE.upload_prefix}cat.png"
    house.store.add(INPUT, mine, IMAGE)
    writes = list(house.store.writes)
    run = getattr(house.api, door)
    answers = []
    for key in (mine, f"{ALICE.upload_prefix}missing.png", "inbox/dropped.png", f"api/{'0' * 32}/source.png"):
        with pytest.raises(errors.InvalidRequest) as caught:
            run(by_key(key), BOB, None)
        assert [d.field for d in caught.value.details] == ["init_image_s3_key"]
        answers.append(caught.value.to_dict())
    assert all(answer == answers[0] for answer in answers)  # nothing tells which keys exist
    assert house.model.calls == [] and house.queue.messages == [] and house.store.writes == writes
    assert house.jobs.saved == []
    run(by_key(mine), ALICE, None)  # its owner runs it


def test_inbox_sources_are_not_runnable_through_the_api(house: House) -> None:
    """Images dropped under inbox/ belong to whoever dropped them; the api role cannot read
    there at all (tests/infra checks the policy)."""
    house.store.add(INPUT, "inbox/someone.png", IMAGE)
    with pytest.raises(errors.InvalidRequest):
        house.api.run_now(by_key("inbox/someone.png"), ALICE, None)
    assert house.model.calls == []


def drop(house: House, key: str, data: bytes, **metadata: str) -> dict[str, Any]:
    put = house.store.add(INPUT, key, data, metadata=metadata)
    return s3_notification(INPUT, key, version_id=put.version_id, etag=put.etag)


def test_an_s3_door_job_is_its_droppers_through_the_api(house: House) -> None:
    """S3 names the dropper as userIdentity.principalId = AWS:<id>; API Gateway names the same
    IAM principal as identity.user. The S3-door job is visible to that principal alone."""
    [summary] = house.deliver(drop(house, "inbox/d.png", IMAGE, prompt="x"), final_attempt=False)
    dropper = Caller("iam", DROPPER_ID)
    view = house.api.job(summary.job_id, dropper)
    assert view.caller == dropper and view.door == "s3"
    # The api role reads only jobs/ in the output bucket: S3-door results are named, not signed.
    assert view.image is not None and view.image.url is None
    assert view.image.s3_uri == f"s3://{OUTPUT}/results/d.png.png"
    assert view.metadata is not None and view.metadata.url is None
    with pytest.raises(errors.JobNotFound):
        house.api.job(summary.job_id, BOB)


def test_a_manifest_cannot_name_another_callers_upload(house: House) -> None:
    """A manifest runs inbox/ and sources/ images and its dropper's own uploads, nobody else's."""
    theirs = f"{BOB.upload_prefix}private.png"
    house.store.add(INPUT, theirs, IMAGE)
    manifest = json.dumps({"text_prompts": [{"text": "x"}], "init_image_s3_key": theirs}).encode()
    house.deliver(drop(house, "inbox/steal.json", manifest), final_attempt=False)
    meta = house.meta("results/steal.json.json")
    assert meta["status"] == "FAILED" and meta["error"]["details"][0]["field"] == "init_image_s3_key"
    assert house.model.calls == []


@pytest.mark.parametrize("named", ["sources/a.png", "inbox/a.png", "own_upload"])
def test_a_manifest_names_sources_inbox_or_its_droppers_own_uploads(house: House, named: str) -> None:
    key = f"{DROPPER_UPLOADS}a.png" if named == "own_upload" else named
    house.store.add(INPUT, key, IMAGE)
    manifest = json.dumps({"text_prompts": [{"text": "x"}], "init_image_s3_key": key}).encode()
    house.deliver(drop(house, "inbox/mine.json", manifest), final_attempt=False)
    house.deliver(house.queue.messages.pop(), final_attempt=False)  # the image it fanned out
    assert house.meta(output_keys(OUTPUT, key, "inbox/mine.json").metadata_key)["status"] == "SUCCEEDED"
    assert len(house.model.calls) == 1


def test_a_queued_message_naming_another_callers_source_is_refused(house: House) -> None:
    """Whoever may send to the queue could write a message; the worker checks the source is the
    named caller's own before reading it. A forged message is no user's job: nothing is recorded."""
    theirs = f"{BOB.upload_prefix}private.png"
    house.store.add(INPUT, theirs, IMAGE)
    house.api.submit(request(), ALICE, None)
    forged = house.queue.messages.pop()
    forged["request"]["init_image_s3_key"] = theirs
    forged["job_id"] = "f" * 32
    saved = list(house.jobs.saved)
    with pytest.raises(errors.InvalidRequest) as caught:
        house.deliver(forged, final_attempt=True)
    assert [d.field for d in caught.value.details] == ["init_image_s3_key"]
    assert house.model.calls == [] and house.jobs.saved == saved
    with pytest.raises(errors.JobNotFound):
        house.api.job("f" * 32, ALICE)
