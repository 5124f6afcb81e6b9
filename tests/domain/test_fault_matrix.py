"""The fault matrix, at the domain level over the in-memory fakes (milliseconds a case): a
storage fault (or the function killed) at each step of each door, on the first, every or last
receive, then a dead-letter redrive and a duplicate after the job record expired; then two
faults at once (a model error and a failed write of the failure on the last receive), and a
model that may have billed (timed out, cut off) on two receives. Each case checks the two
promises: the model is called once per job (twice only when a call that may have billed left
no stored answer, never more), and the job ends where its caller looks (the metadata JSON for
the S3 door, GET /v1/jobs/{id} for the API) with every 5xx naming the job.

Receives follow SQS: a message comes back after its visibility timeout (the simulated clock
moves past the last attempt's lease) until its last receive, then goes to the dead letters.
A kill is a BaseException raised inside a storage call, as SIGKILL would stop the function
there: nothing in the service catches it. tests/local/test_faults.py proves the same wiring
with the real handlers, moto and the Bedrock emulator, in a handful of cases."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from img2img.domain.caller import Caller
from img2img.domain.errors import ModelBusy, ModelThrottled, ModelTimeout, ServiceError
from img2img.domain.pipeline import Attempt
from img2img.domain.request import parse_request
from img2img.handlers.queue_messages import read_message
from img2img.vocabulary import FINAL_STATUSES
from tests.fakes import INPUT, OUTPUT, House, png_bytes
from tests.handlers.sqs_events import s3_notification

pytestmark = pytest.mark.unit

MAX_RECEIVES = 3
VISIBILITY = 720.0  # seconds: past any lease (the worker's 120 s invocation)
ALICE = Caller("iam", "AIDACKCEVSQ6C2EXAMPLE")
IMAGE = png_bytes(64, 64)
INLINE = base64.b64encode(IMAGE).decode()


class Killed(BaseException):
    """Stands for SIGKILL inside a storage call."""


class Clock:
    def __init__(self) -> None:
        self.now = 1795600800.0

    def __call__(self) -> float:
        return self.now


# Where each storage step is, per door kind: (fake, op, what selects the call).
RESULT = {"s3": ".png.png", "api": "/result."}
METADATA = {"s3": ".png.json", "api": "metadata.json"}


def inject(
    house: House, step: str, door: str, times: int | None, error: Callable[[], BaseException] | None
) -> bool:
    """Make `step` fail; False when the door has no such step."""
    kind = "s3" if door == "s3" else "api"
    kw: dict[str, Any] = {"times": times, **({"error": error} if error else {})}
    if step == "source read":
        if door == "s3" or door == "api-job":
            house.store.fail("get", bucket=INPUT, **kw)
        else:  # the sync route holds the bytes: its source step is storing them
            house.store.fail("put", bucket=INPUT, **kw)
    elif step == "result write":
        house.store.fail("put", bucket=OUTPUT, where=RESULT[kind], **kw)
    elif step == "metadata write":
        house.store.fail("put", bucket=OUTPUT, where=METADATA[kind], **kw)
    elif step == "result lookup":
        house.store.fail("find", bucket=OUTPUT, **kw)
    elif step == "RUNNING record":
        house.jobs.fail("write", when=lambda r: r.status == "RUNNING", **kw)
    elif step == "final record":
        house.jobs.fail("write", when=lambda r: r.status in FINAL_STATUSES, **kw)
    elif step == "QUEUED record":
        if door != "api-job":
            return False
        house.jobs.fail("write", when=lambda r: r.status == "QUEUED", **kw)
    elif step == "queue send":
        if door != "api-job" or error is not None:
            return False
        house.queue.fail(times=times)
    return True


STEPS = (
    "source read",
    "RUNNING record",
    "result lookup",
    "result write",
    "metadata write",
    "final record",
    "QUEUED record",
    "queue send",
)
DOORS = ("s3", "api-job", "sync", "sync-keyed")
RECEIVES = ("first", "every", "last")


@dataclass
class Case:
    house: House
    clock: Clock
    door: str
    errors: list[BaseException]
    job_id: str | None = None
    message: dict[str, Any] | None = None

    def deliver(self, receive: int) -> bool:
        """One receive of the message; True when it was deleted (the handler returned)."""
        assert self.message is not None
        self.clock.now += VISIBILITY
        attempt = Attempt(final=receive == MAX_RECEIVES, time_left=lambda: 120.0)
        try:
            read = read_message(json.dumps(self.message))
            assert not isinstance(read, str)
            [summary] = self.house.worker.handle(read, attempt)  # type: ignore[arg-type]
            self.job_id = summary.job_id
            return True
        except (ServiceError, Killed) as error:
            self.errors.append(error)
            if isinstance(error, ServiceError) and error.job_id:
                self.job_id = error.job_id
            return False

    def call_sync(self, key: str | None) -> None:
        self.clock.now += VISIBILITY
        request = parse_request(
            {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(IMAGE).decode()}
        )
        try:
            answer = self.house.api.run_now(request, ALICE, key, time_left=lambda: 25.0)
            self.job_id = answer.job_id
        except (ServiceError, Killed) as error:
            self.errors.append(error)
            if isinstance(error, ServiceError) and error.job_id:
                self.job_id = error.job_id

    def submit(self) -> bool:
        request = parse_request(
            {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(IMAGE).decode()}
        )
        try:
            accepted = self.house.api.submit(request, ALICE, "key-1")
        except (ServiceError, Killed) as error:
            self.errors.append(error)
            return False
        self.job_id = accepted.job_id
        self.message = self.house.queue.messages[-1] if self.house.queue.messages else None
        return self.message is not None


def start(door: str) -> Case:
    clock = Clock()
    house = House(clock=clock, ids=(f"{n:032x}" for n in itertools.count(1)).__next__)
    case = Case(house, clock, door, [])
    if door == "s3":
        put = house.store.add(INPUT, "inbox/faults/x.png", IMAGE, metadata={"prompt": "x"})
        case.message = s3_notification(INPUT, "inbox/faults/x.png", version_id=put.version_id, etag=put.etag)
    return case


def run_door(case: Case, mode: str) -> None:
    """Every receive (or caller retry) the door gets until it is done or dead-lettered."""
    receives = [MAX_RECEIVES] if mode == "last" else list(range(1, MAX_RECEIVES + 1))
    if case.door in ("sync", "sync-keyed"):
        for _ in receives if case.door == "sync-keyed" else [1]:
            case.errors.clear()
            case.call_sync("key-1" if case.door == "sync-keyed" else None)
            if not case.errors:
                return
        return
    if case.door == "api-job":
        for _ in range(MAX_RECEIVES):  # the caller retries POST /v1/jobs with its key
            if case.submit():
                break
        if case.message is None:
            return
    for receive in receives:
        if case.deliver(receive):
            return


def where_the_caller_looks(case: Case) -> str | None:
    """The status the caller sees: the metadata JSON (S3 door), GET /v1/jobs/{id} (API)."""
    house = case.house
    if case.door == "s3":
        if "results/faults/x.png.json" not in house.store.keys(OUTPUT):
            return None
        return str(house.meta("results/faults/x.png.json")["status"])
    assert case.job_id is not None
    return house.api.job(case.job_id, ALICE).status


def bound(step: str) -> int:
    """Calls a job may cost: one, or two when the answer itself was lost before it was stored."""
    return 2 if step == "result write" else 1


def _door_has(step: str, door: str, killed: bool) -> bool:
    return step not in ("QUEUED record", "queue send") or (
        door == "api-job" and not (killed and step == "queue send")
    )


@pytest.mark.parametrize(
    ("step", "door", "mode", "killed"),
    [
        pytest.param(step, door, mode, killed, id=f"{step}-{door}-{mode}-{'killed' if killed else 'fault'}")
        for step in STEPS
        for door in DOORS
        for mode in RECEIVES
        for killed in (False, True)
        if _door_has(step, door, killed)  # only the api-job door queues; a send is refused, not killed
    ],
)
def test_one_call_per_job_and_every_job_ends_where_its_caller_looks(
    step: str, door: str, mode: str, killed: bool
) -> None:
    case = start(door)
    times = None if mode == "every" and not killed else 1  # a function is killed once
    assert inject(case.house, step, door, times, Killed if killed else None)
    run_door(case, mode)
    house = case.house
    assert len(house.model.calls) <= bound(step)
    for error in case.errors:  # every 5xx names the recorded job
        answered = door != "s3" and (door.startswith("sync") or case.message is None)
        if answered and isinstance(error, ServiceError) and error.status >= 500 and case.job_id:
            recorded = any(job_id == case.job_id for job_id, _ in house.jobs.saved)
            assert error.job_id == case.job_id or not recorded, error
    if case.job_id is None and house.jobs.saved:  # killed: the caller never heard its id
        case.job_id = house.jobs.saved[0][0]
    if case.job_id is None:  # nothing was recorded: the caller was told so (a 5xx) and nothing ran
        assert case.errors and house.model.calls == []
        return
    seen = where_the_caller_looks(case)
    # Not covered (README: Reliability): a function killed on its last receive, or a killed sync
    # invocation, answers nothing and leaves its claim (a redrive or a keyed retry takes it up);
    # an S3-door job whose metadata can never be written has only its record to say it failed.
    exempt = killed and (door == "sync" or mode == "last")
    blind = door == "s3" and step == "metadata write" and mode == "every" and not killed
    if not exempt and not blind:
        assert seen in FINAL_STATUSES, (seen, case.errors)
    if blind:
        assert house.jobs.get(case.job_id).status == "FAILED"

    # A dead-letter redrive (or the caller's retry) once storage works again: the job ends,
    # and a job whose answer was stored costs nothing more.
    house.store.faults.clear()
    house.jobs.faults.clear()
    house.queue.faults.clear()
    calls = len(house.model.calls)
    if case.message is not None:
        assert case.deliver(1) or case.errors
    elif door == "sync-keyed":
        case.errors.clear()
        case.call_sync("key-1")
    if not (killed and door == "sync"):
        assert where_the_caller_looks(case) in FINAL_STATUSES
    assert len(house.model.calls) <= bound(step)
    if calls and bound(step) == 1:  # its answer was stored: the redrive finishes from it
        assert len(house.model.calls) == calls

    # A duplicate after the job record expired (TTL) finds the result: no call.
    if case.message is not None and house.jobs.get(case.job_id).status == "SUCCEEDED":
        house.jobs.expire(case.job_id)
        case.clock.now += 30 * 86400
        calls = len(house.model.calls)
        assert case.deliver(1)
        assert len(house.model.calls) == calls


def test_a_second_lost_answer_ends_the_job_failed_without_a_third_call() -> None:
    case = start("s3")
    case.house.store.fail("put", bucket=OUTPUT, where=RESULT["s3"])
    run_door(case, "every")
    run_door(case, "every")  # a redrive: still no call
    meta = case.house.meta("results/faults/x.png.json")
    assert len(case.house.model.calls) == 2
    assert meta["status"] == "FAILED" and meta["error"]["code"] == "storage_error"
    state = case.house.jobs.state(meta["job_id"])
    assert state is not None and state.settled and state.calls == 3


def test_a_duplicate_delivery_while_the_job_runs_is_refused_not_run() -> None:
    case = start("s3")
    case.house.jobs.fail("write", when=lambda r: r.status in FINAL_STATUSES, times=1, error=Killed)
    assert not case.deliver(1)  # killed after the result and metadata were stored
    case.clock.now -= VISIBILITY - 1  # a duplicate event one second later: the lease holds
    assert not case.deliver(MAX_RECEIVES) and type(case.errors[-1]).__name__ == "InProgress"
    assert "results/faults/x.png.json" in case.house.store.keys(OUTPUT)
    assert case.house.meta("results/faults/x.png.json")["status"] == "SUCCEEDED"  # left alone
    assert case.deliver(2) and len(case.house.model.calls) == 1


def _model_error(kind: str) -> ServiceError:
    if kind == "throttle":
        return ModelThrottled("Bedrock throttled")
    unheard = ModelTimeout("the model did not answer within the client's read timeout")
    unheard.may_have_billed = True
    return unheard


@pytest.mark.parametrize(
    ("model_error", "steps", "door"),
    [
        pytest.param(error, steps, door, id=f"{error}-{'+'.join(steps)}-{door}")
        for error in ("throttle", "timeout")
        for steps in (("metadata write",), ("final record",), ("metadata write", "final record"))
        for door in DOORS
    ],
)
def test_a_model_error_and_a_storage_fault_on_the_last_receive_still_end_failed(
    model_error: str, steps: tuple[str, ...], door: str
) -> None:
    """Two faults at once: the model fails, then so does a write of the failure. The job still
    ends FAILED where its caller looks (the record alone if the metadata cannot be written),
    saying the model's error, after one model call; every 5xx names the job."""
    case = start(door)
    case.house.model.errors = [_model_error(model_error)]
    for step in steps:
        assert inject(case.house, step, door, 1, None)
    run_door(case, "last")
    house = case.house
    assert len(house.model.calls) == 1
    assert case.job_id is not None and all(
        getattr(error, "job_id", None) == case.job_id for error in case.errors
    ), case.errors
    record = house.jobs.get(case.job_id)
    assert record.status == "FAILED" and record.error is not None
    assert record.error.code == _model_error(model_error).code
    if door != "s3" or steps == ("final record",):
        assert where_the_caller_looks(case) == "FAILED"
    state = house.jobs.state(case.job_id)
    assert state is not None and state.retry  # a redrive or a keyed retry may take it up again


@pytest.mark.parametrize("door", ["s3", "api-job"])
@pytest.mark.parametrize("model_error", ["timeout", "cut off"])
def test_a_model_that_may_have_billed_twice_is_not_called_again_and_says_why(
    door: str, model_error: str
) -> None:
    """Read timeouts (or calls cut off) on two receives: the third calls nothing, ends FAILED
    with that model error, and is raised so the message goes on to the dead letters."""
    case = start(door)
    errors = [_model_error("timeout"), _model_error("timeout")]
    if model_error == "cut off":
        errors = [ModelBusy("the call was cut off"), ModelBusy("the call was cut off")]
        for error in errors:
            error.may_have_billed = True
    code = errors[0].code
    case.house.model.errors = errors
    if door == "api-job":
        assert case.submit()
    assert not case.deliver(1) and not case.deliver(2)
    assert not case.deliver(MAX_RECEIVES)  # raised: on to the dead-letter queue
    assert [error.code for error in case.errors if isinstance(error, ServiceError)] == [code] * 3
    assert len(case.house.model.calls) == 2
    assert case.job_id is not None
    record = case.house.jobs.get(case.job_id)
    assert record.status == "FAILED" and record.error is not None and record.error.code == code
    assert where_the_caller_looks(case) == "FAILED"
    assert not case.deliver(1) and len(case.house.model.calls) == 2  # a redrive: still no call
