"""The bad-input corpus (tests/corpus) against both doors of local mode, with the real handlers
and the Bedrock emulator. For every case: the API answers the documented status with the
error shape and names the field; the S3 door writes one FAILED metadata JSON with the code
where the result would have been; a rejected input costs no model call (the emulator's
attempt counter is unchanged) and an accepted one costs exactly one. At the end: nothing was
retried, nothing is left in the queue or its dead-letter queue, the service still answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from img2img_local.resources import QueueSettings
from img2img_local.runner import LocalStack, start_local
from tests.corpus import RESULTS_PREFIX, Case, by_name, cases_for
from tests.corpus.doors import Doors, WorkerSpy
from tests.local.conftest import wait_until

pytestmark = [pytest.mark.local, pytest.mark.timeout(180)]

ERROR_KEYS = {"code", "message", "details"}


class ErrorRecords(logging.Handler):
    """Every ERROR record of the service's loggers and of local mode's (a handler that raised,
    a function error behind a 502)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def spy() -> WorkerSpy:
    return WorkerSpy()


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    loggers = [logging.getLogger(name) for name in ("img2img", "img2img_local")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def stack(spy: WorkerSpy, errors: ErrorRecords) -> Iterator[LocalStack]:
    # A visibility timeout long enough for the slowest case on a slow machine: a record that
    # came back would be a retry, and the spy would see it twice.
    with start_local(
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        worker_handler=spy,
        queue_settings=QueueSettings(visibility_timeout_seconds=60),
    ) as running:
        running.wait_healthy(timeout=30)
        yield running


@pytest.fixture(scope="module")
def doors(stack: LocalStack, spy: WorkerSpy) -> Doors:
    return Doors(stack, spy)


def _ids(case: Case) -> str:
    return case.name


def _detail_fields(error: dict[str, object]) -> list[str]:
    details = error["details"]
    assert isinstance(details, list)
    return [str(d["field"]) for d in details]


# --- the API door ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_for("api"), ids=_ids)
def test_api_door(doors: Doors, case: Case) -> None:
    expect = case.expected("api")
    before = doors.stats()["attempts"]
    reply = doors.send_api(case)
    body = reply.json()
    assert reply.status_code == expect.status, body
    assert doors.stats()["attempts"] - before == expect.model_calls, "model calls"
    if expect.accepted:
        assert body["status"] == "SUCCEEDED" and body["artifacts"][0]["finishReason"] == "SUCCESS"
        return
    # "job_id" too when the failure came after the job was recorded (GET /v1/jobs/{id} shows it).
    assert set(body) - {"job_id", "request_id"} == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert body["error"]["code"] == expect.code
    assert body["error"]["message"]
    if expect.field is not None:
        assert expect.field in _detail_fields(body["error"]), body


IMAGE_CASES = [c for c in cases_for("api") if c.kind == "image"]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=_ids)
def test_api_jobs_route(doors: Doors, case: Case) -> None:
    """POST /v1/jobs refuses at once what the synchronous route refuses before decoding, with
    the same status and code; what only decoding finds, the worker fails with the same code;
    the rest runs. Never a second model call."""
    expect = case.expected("api")
    before = doors.stats()["attempts"]
    data, content_type = doors.api_request(case)
    reply = doors.post("/v1/jobs", data, content_type)
    if not expect.accepted and not case.found_by_decoding:
        assert (reply.status_code, reply.json()["error"]["code"]) == (expect.status, expect.code)
        assert doors.stats()["attempts"] == before and "job_id" not in reply.json()
        return
    assert reply.status_code == 202, reply.text
    view = doors.wait_job(reply.json()["job_id"])
    assert doors.stats()["attempts"] - before == expect.model_calls, "model calls"
    if expect.accepted:
        assert view["status"] == "SUCCEEDED", view
        return
    assert view["status"] == "FAILED", view
    assert view["error"]["code"] == expect.code
    if expect.field is not None:
        assert expect.field in _detail_fields(view["error"])


# --- the S3 door -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_for("s3"), ids=_ids)
def test_s3_door(doors: Doors, spy: WorkerSpy, case: Case) -> None:
    expect = case.expected("s3")
    before = doors.stats()["attempts"]
    key = doors.drop(case)
    # The worker is done with the record once the spy has its answer: then the metadata is
    # written and the emulator's counts are final for this case.
    [call] = wait_until(lambda: spy.calls_for_key(key), timeout=60)
    assert (call.error, call.failed) == (None, []), "the worker handed the record back for a retry"
    found = {key: doors.read_json(key) for key in case.metadata_keys}
    listing_key = case.metadata_keys[0]
    listing = found[listing_key] if (found[listing_key] or {}).get("status") == "QUEUED" else None
    if listing is not None:  # a manifest that fanned out: its one image's job says how it ended
        [job] = listing["jobs"]
        assert job["metadata_key"] == case.metadata_keys[1]  # the README's key scheme
        [call] = wait_until(lambda: spy.calls_for_manifest_image(key), timeout=60)
        assert (call.error, call.failed) == (None, []), "the worker handed the image back for a retry"
        found = {job["metadata_key"]: doors.read_json(job["metadata_key"])}
    [(metadata_key, meta)] = [(key, m) for key, m in found.items() if m is not None]  # exactly one
    assert doors.stats()["attempts"] - before == expect.model_calls, "model calls"
    assert meta["door"] == "s3"
    written = [
        k
        for stem in case.result_stems
        for k in doors.output_keys(f"{stem}.")
        if listing is None or k != listing_key
    ]
    if expect.accepted:
        assert meta["status"] == "SUCCEEDED", meta.get("error")
        assert meta["result"]["key"] in written and meta["model"]["attempts"] == 1
        assert sorted(written) == sorted([metadata_key, meta["result"]["key"]])
        return
    assert meta["status"] == "FAILED"
    assert set(meta["error"]) == ERROR_KEYS and meta["error"]["message"]
    assert meta["error"]["code"] == expect.code, meta["error"]
    if expect.field is not None:
        assert expect.field in _detail_fields(meta["error"]), meta["error"]
    assert written == [metadata_key]  # no result image, one metadata JSON
    assert "attempts" not in meta.get("model", {})  # the model adapter was never reached


def test_key_cases_keep_their_names(doors: Doors) -> None:
    """Spaces, unicode and '+' reach results/ exactly as they were dropped ('+' is no space)."""
    for name in ("key_with_spaces", "key_with_unicode", "key_with_plus"):
        case = by_name(name)
        [metadata_key] = case.metadata_keys
        meta = doors.read_json(metadata_key)
        if meta is None:  # run alone: drop it now
            doors.drop(case)
            meta = doors.wait_metadata(metadata_key)
        assert meta["source"]["key"] == f"inbox/corpus/{case.key}"
        assert meta["result"]["key"] == f"{RESULTS_PREFIX}{case.key}.png"


def test_a_rejected_input_is_not_counted_as_a_model_failure(
    doors: Doors, spy: WorkerSpy, capsys: pytest.CaptureFixture[str]
) -> None:
    """ModelFailures feeds the model-failure alarm ("check the model"); a stranger's GIF is
    not a model failure. The job still counts as failed (JobsFailed)."""
    key = doors.drop(replace(by_name("gif"), name="gif_for_metrics"))  # a key of its own
    wait_until(lambda: spy.calls_for_key(key), timeout=30)
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    published = {name for m in metrics for d in m["_aws"]["CloudWatchMetrics"] for name in _names(d)}
    assert "JobsFailed" in published  # the worker's metrics were captured
    assert "ModelFailures" not in published


def _names(directive: dict[str, object]) -> set[str]:
    metrics = directive["Metrics"]
    assert isinstance(metrics, list)
    return {str(m["Name"]) for m in metrics}


# --- after the corpus --------------------------------------------------------------------------


def test_nothing_retried_lost_or_dead_lettered(doors: Doors, spy: WorkerSpy, errors: ErrorRecords) -> None:
    calls = spy.snapshot()
    assert calls, "the worker saw nothing"
    assert [(c.s3_keys(), c.error) for c in calls if c.error or c.failed] == [], "records handed back"
    wait_until(lambda: doors.queue_depth() == 0, timeout=60)
    assert doors.dead_letters() == 0
    receives = spy.receives()
    assert {m: n for m, n in receives.items() if n > 1} == {}, "a message came back"
    assert max(n for c in calls for n in c.receive_counts) == 1
    assert requests.get(f"{doors.stack.api_url}/v1/health", timeout=10).status_code == 200
    assert doors.stack.poller.running
    assert [r.getMessage() for r in errors.records] == []
