"""Faults in local mode, with the real handlers and the Bedrock emulator's fault switches:
throttling, model timeouts, end of life and denied access, S3 writes that fail, a worker that
dies in the middle of a job, one S3 event delivered ten times to concurrent workers, and a
burst of images with faults mixed in. Each test proves where the job ends (result or FAILED
metadata), how many model calls it cost (the emulator counts them), and what is left in the
queue and its dead-letter queue.

Two stacks, one per class (one local stack per process at a time): one whose queue gives a
record back only after 60 s (so anything that completes did so within its first receive),
and one whose queue gives it back after 4 s (to watch redelivery and the dead-letter queue).

How faults that the emulator cannot make are made:
- S3 writes fail through a botocore `before-send` hook registered on the worker's own S3
  client (`wiring.get_service(sync=False).clients.s3`, the composition root's public
  clients): the hook answers the first N PutObject calls to the output bucket with S3's own
  503 SlowDown response, which botocore then handles exactly as a real one.
- "The worker is killed mid-job": local mode runs the worker in-process, so a kill is
  simulated: the same hook raises a BaseException at the first write of the result, i.e.
  after the model call and before anything is written. Nothing in the service can catch it
  (it catches Exception); the handler wrapper turns it into the invocation error a crashed
  Lambda runtime reports, so the batch is not deleted and SQS redelivers it once its
  visibility timeout passes. The invocation's context gives the function a timeout shorter
  than the visibility timeout (the stack: 120 s against 720 s; here 2.5 s against 5 s, long
  enough for any job here), so the dead run's lease on the job record has passed when the
  message comes back, as on AWS.

Storage faults at every step of every door are tested at the domain level
(tests/domain/test_fault_matrix.py); the few here prove the wiring."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from botocore.awsrequest import AWSResponse, HeadersDict

from img2img_local import resources as r
from img2img_local.lambda_context import new_context
from img2img_local.resources import QueueSettings
from img2img_local.runner import LocalStack, start_local
from img2img_local.workers import worker_processes
from tests import imagegen
from tests.corpus.doors import Doors, WorkerSpy
from tests.local.conftest import load_event, wait_until

pytestmark = [pytest.mark.local, pytest.mark.timeout(240)]

SDXL = r.DEFAULT_MODEL_ID  # the deployed default (SD3.5 Large); the name is historical
CHAIN = (r.DEFAULT_MODEL_ID, *r.FALLBACK_MODEL_IDS)  # every model a job may run on
PROMPT = {"prompt": "a lighthouse at dusk"}
SLOW_VISIBILITY = 60
FAST_VISIBILITY = 5
FAST_FUNCTION_TIMEOUT = FAST_VISIBILITY / 2
MAX_RECEIVES = 3


class WorkerKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the service catches it."""


class KillableWorker(WorkerSpy):
    """The real worker handler, recorded, with a context whose timeout is `function_timeout`
    (as the stack sets it beside the queue's visibility timeout); a WorkerKilled escaping the
    handler becomes the invocation error a dead runtime reports."""

    def __init__(self, function_timeout: float) -> None:
        super().__init__()
        self.function_timeout = function_timeout
        self.kills = 0

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        context = new_context(
            r.WORKER_FUNCTION_NAME, timeout_seconds=self.function_timeout, memory_mb=r.WORKER_MEMORY_MB
        )
        try:
            return super().__call__(event, context)
        except WorkerKilled as exc:
            self.kills += 1
            raise RuntimeError("Runtime exited without providing a reason (the worker was killed)") from exc


@contextmanager
def failing_writes(
    fail: Callable[[str], bool | BaseException], *, sync: bool = False, status: int = 503
) -> Iterator[list[str]]:
    """While active, every PutObject of the worker's (or, `sync`, the api function's) S3 client
    to the output bucket asks `fail(key)`: True answers S3's 503 SlowDown (or, `status` 403,
    an AccessDenied, which botocore does not retry) instead of sending; a BaseException is
    raised. Yields the keys of the writes it failed."""
    from img2img.handlers import wiring

    client = wiring.get_service(sync=sync).clients.s3
    failed: list[str] = []
    lock = threading.Lock()

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        if f"/{r.OUTPUT_BUCKET}/" not in request.url:
            return None
        key = request.url.split(f"/{r.OUTPUT_BUCKET}/", 1)[1]
        verdict = fail(key)
        if isinstance(verdict, BaseException):
            raise verdict
        if not verdict:
            return None
        with lock:
            failed.append(key)
        body = (
            b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            if status == 403
            else b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        )
        headers = HeadersDict({"Content-Type": "application/xml", "Content-Length": str(len(body))})
        return AWSResponse(request.url, status, headers, _Raw(body))

    client.meta.events.register("before-send.s3.PutObject", before_send, unique_id="img2img-fault")
    try:
        yield failed
    finally:
        client.meta.events.unregister("before-send.s3.PutObject", unique_id="img2img-fault")


class _Raw:
    """What AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def model_attempts(*, sync: bool) -> int:
    """InvokeModel attempts per call for answers that say the model did not run (the adapter's
    retries; botocore makes one attempt)."""
    from img2img.handlers import wiring

    return wiring.model_attempts(sync=sync)


def timeout_retries() -> int:
    from img2img.config import get_settings

    return get_settings().model_timeout_retries


def _drop(doors: Doors, name: str, data: bytes | None = None, metadata: dict[str, str] | None = None) -> str:
    key = f"inbox/faults/{name}.png"
    doors.s3.put_object(
        Bucket=doors.input, Key=key, Body=data or imagegen.png(64, 64), Metadata=metadata or PROMPT
    )
    return key


def _metadata(doors: Doors, name: str) -> dict[str, Any]:
    return doors.wait_metadata(f"results/faults/{name}.png.json", timeout=90)


def _receives(spy: WorkerSpy, key: str, count: int) -> list[int]:
    """The receive counts of the worker calls for `key`, once `count` calls have returned (the
    metadata is written before the handler returns, so it can be seen before the call ends)."""
    calls = wait_until(lambda: (found := spy.calls_for_key(key)) and len(found) >= count and found)
    return [c.receive_counts[0] for c in calls]


def _started(spy: WorkerSpy) -> None:
    # The worker's service is built on its first invocation (the S3 test event at start-up).
    wait_until(lambda: spy.snapshot(), timeout=30)


def _clean(doors: Doors) -> None:
    """Faults off, counters at zero, the dead-letter queue empty (PurgeQueue is once a minute)."""
    doors.reset_emulator()
    url = doors.stack.resources.dlq_url
    for _ in range(100):
        got = doors.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return
        for message in got:
            doors.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# =====================================================================================================
# Faults the first receive absorbs


def _stack(function_timeout: float, visibility: int) -> Iterator[tuple[Doors, KillableWorker]]:
    """A local stack whose worker can be killed, with the queue's visibility timeout given."""
    spy = KillableWorker(function_timeout=function_timeout)
    with start_local(
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        worker_handler=spy,
        queue_settings=QueueSettings(visibility_timeout_seconds=visibility, max_receive_count=MAX_RECEIVES),
        model_reserve_seconds=0.5,  # the fast worker's 2.5 s keep 0.5 s back for the writes, not 3
    ) as stack:
        stack.wait_healthy(timeout=30)
        _started(spy)
        yield Doors(stack, spy), spy


@pytest.fixture(scope="class")
def slow_stack() -> Iterator[tuple[Doors, KillableWorker]]:
    yield from _stack(SLOW_VISIBILITY / 6, SLOW_VISIBILITY)


@pytest.fixture
def slow(slow_stack: tuple[Doors, KillableWorker]) -> Iterator[tuple[Doors, KillableWorker]]:
    doors, _ = slow_stack
    _clean(doors)
    yield slow_stack
    _clean(doors)


def _post_sync(stack: LocalStack, model_id: str = SDXL) -> requests.Response:
    import base64

    body: dict[str, Any] = {
        "text_prompts": [{"text": "a lighthouse at dusk"}],
        "init_image": base64.b64encode(imagegen.png(64, 64)).decode(),
        "model_id": model_id,
    }
    return requests.post(f"{stack.api_url}/v1/image-to-image", json=body, timeout=120)


class TestWithinOneReceive:
    def test_an_s3_door_job_makes_at_most_six_aws_requests_on_the_wire(
        self, slow: tuple[Doors, KillableWorker]
    ) -> None:
        """Counted on the wire: botocore's before-send event on the worker's own S3 and DynamoDB
        clients sees each HTTP request sent (botocore's retries included), and the Bedrock
        emulator counts each InvokeModel it receives. The job: read the source, claim it
        (RUNNING), call the model, write the result, the metadata, the final record. The seed's
        bare path (read, call, write the result and the metadata) makes 4."""
        from img2img.handlers import wiring

        doors, _ = slow
        clients = wiring.get_service(sync=False).clients
        sent: list[str] = []  # each HTTP request, as it leaves
        operations: list[str] = []  # each API call, before botocore's retries

        def count(request: Any, **_: Any) -> None:
            sent.append(f"{request.method} {request.url}")

        def name(model: Any, **_: Any) -> None:
            operations.append(model.name)

        hooks = (("before-send", count, "img2img-count"), ("before-call", name, "img2img-name"))
        for client in (clients.s3, clients.dynamodb):
            for event, hook, unique_id in hooks:
                client.meta.events.register(event, hook, unique_id=unique_id)
        try:
            _drop(doors, "counted")
            _metadata(doors, "counted")
            wait_until(lambda: doors.queue_depth() == 0)
        finally:
            for client in (clients.s3, clients.dynamodb):
                for event, _, unique_id in hooks:
                    client.meta.events.unregister(event, unique_id=unique_id)
        assert operations == ["GetObject", "UpdateItem", "PutObject", "PutObject", "UpdateItem"]
        stats = doors.stats()
        assert len(sent) + stats["invocations"] + stats["refused"] == 6, sent

    def test_throttling_within_the_clients_budget_costs_one_invocation(
        self, slow: tuple[Doors, KillableWorker]
    ) -> None:
        doors, spy = slow
        refusals = model_attempts(sync=False) - 1  # the last attempt of the budget gets through
        assert refusals >= 1
        doors.set_faults(throttle_first=refusals)
        key = _drop(doors, "throttled")
        meta = _metadata(doors, "throttled")
        assert meta["status"] == "SUCCEEDED"
        stats = doors.stats()
        assert (stats["refused"], stats["invocations"]) == (refusals, 1)
        assert _receives(spy, key, 1) == [1]
        assert spy.calls_for_key(key)[0].failed == []

    def test_the_sync_route_answers_a_throttle_at_once_with_429(
        self, slow: tuple[Doors, KillableWorker]
    ) -> None:
        """Inside API Gateway's 29 s the sync route cannot wait out a throttle: it tries its
        budget (one attempt), then answers 429 with Retry-After; POST /v1/jobs is the way."""
        doors, _ = slow
        attempts = model_attempts(sync=True)
        doors.set_faults(throttle_first=attempts)
        reply = _post_sync(doors.stack)
        assert reply.status_code == 429 and int(reply.headers["Retry-After"]) > 0
        assert reply.json()["error"]["code"] == "model_throttled"
        assert (doors.stats()["refused"], doors.stats()["invocations"]) == (attempts, 0)
        assert _post_sync(doors.stack).status_code == 200  # the throttle is spent: it works again

    @pytest.mark.parametrize(
        ("fault", "words"),
        [
            ({"retired_models": list(CHAIN)}, ("end of life", "cdk.json")),
            ({"denied_models": list(CHAIN)}, ("denied", "make enable-models")),
        ],
        ids=["end_of_life", "access_denied"],
    )
    def test_a_model_that_cannot_answer_fails_at_once_with_what_to_do(
        self, slow: tuple[Doors, KillableWorker], fault: dict[str, Any], words: tuple[str, ...]
    ) -> None:
        doors, spy = slow
        doors.set_faults(**fault)
        name = next(iter(fault))
        key = _drop(doors, name)
        meta = _metadata(doors, name)
        assert meta["status"] == "FAILED"
        assert meta["error"]["code"] == "model_unavailable"
        assert all(w in meta["error"]["message"] for w in words), meta["error"]["message"]
        # One attempt per model in the chain (the default, then each fallback), never a retry.
        assert doors.stats()["attempts"] == len(CHAIN) and doors.stats()["invocations"] == 0
        assert [g["model_id"] for g in meta["model"]["fallback_from"]] == list(CHAIN)
        assert _receives(spy, key, 1) == [1]
        assert spy.calls_for_key(key)[0].failed == []  # not handed back to the queue
        wait_until(lambda: doors.queue_depth() == 0)
        assert doors.dead_letters() == 0
        # The API door says the same, with the same status everywhere: 503, no Retry-After.
        reply = _post_sync(doors.stack)
        assert reply.status_code == 503 and "Retry-After" not in reply.headers
        assert reply.json()["error"]["code"] == "model_unavailable"
        assert doors.stats()["attempts"] == 2 * len(CHAIN)

    def test_when_the_default_reaches_end_of_life_jobs_run_on_the_fallback_once_each(
        self, slow: tuple[Doors, KillableWorker], capfd: pytest.CaptureFixture[str]
    ) -> None:
        """The next end of life, rehearsed: the emulator retires the default; both doors carry
        on with the first fallback, one billed call per job, and say so."""
        doors, spy = slow
        doors.set_faults(retired_models=[SDXL])
        key = _drop(doors, "fallback")
        meta = _metadata(doors, "fallback")
        assert meta["status"] == "SUCCEEDED"
        assert meta["model"]["id"] == r.FALLBACK_MODEL_IDS[0]
        assert meta["model"]["fallback_from"][0]["model_id"] == SDXL
        assert "end of its life" in meta["model"]["fallback_from"][0]["reason"]
        assert _receives(spy, key, 1) == [1]
        reply = _post_sync(doors.stack)
        assert reply.status_code == 200 and reply.json()["status"] == "SUCCEEDED"
        job = requests.get(f"{doors.stack.api_url}/v1/jobs/{reply.json()['job_id']}", timeout=10).json()
        assert job["model_id"] == r.FALLBACK_MODEL_IDS[0] and job["fallback_from"][0]["model_id"] == SDXL
        stats = doors.stats()
        assert stats["invocations"] == 2 and stats["by_model"] == {r.FALLBACK_MODEL_IDS[0]: 2}
        assert stats["rejected"] == 2  # the retired default's two answers: not billed
        # The alarm's metric, as Powertools writes it (CloudWatch embedded metric format).
        emitted = capfd.readouterr().out
        assert '"ModelFallbacks"' in emitted

    def test_a_keyed_sync_retry_after_a_storage_failure_is_billed_once(
        self, slow: tuple[Doors, KillableWorker]
    ) -> None:
        """The sync route: S3 refuses the metadata write after the result (the stored answer) was
        written, so the caller gets a 500 naming the job. Retrying with the same Idempotency-Key
        is the same job: it finishes from the result the failed attempt stored, with no second
        call. (The refusal is an AccessDenied, which botocore does not back off from, so the
        failed request stays inside the gateway's 29 s.)"""
        import base64

        doors, _ = slow
        refused = [0]

        def refuse_the_result(key: str) -> bool:
            if key.startswith("jobs/") and key.endswith("/metadata.json") and refused[0] < 1:
                refused[0] += 1
                return True
            return False

        body = {
            "text_prompts": [{"text": "a lighthouse at dusk"}],
            "init_image": base64.b64encode(imagegen.png(64, 64)).decode(),
        }
        url, headers = f"{doors.stack.api_url}/v1/image-to-image", {"Idempotency-Key": "retry-me"}
        from img2img.handlers import wiring

        wiring.get_service(sync=True)  # built before the hook is set on its client
        with failing_writes(refuse_the_result, sync=True, status=403):
            failed = requests.post(url, json=body, headers=headers, timeout=120)
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "storage_error"
        job_id = failed.json()["job_id"]
        again = requests.post(url, json=body, headers=headers, timeout=120)
        assert again.status_code == 200, again.text
        assert again.json()["job_id"] == job_id and again.json()["status"] == "SUCCEEDED"
        assert base64.b64decode(again.json()["artifacts"][0]["base64"]).startswith(b"\x89PNG")
        assert doors.stats()["invocations"] == 1

    def test_sync_model_timeout_is_not_retried_inside_the_gateways_budget(
        self, slow: tuple[Doors, KillableWorker]
    ) -> None:
        doors, _ = slow
        doors.set_faults(timeout_first=1)
        reply = _post_sync(doors.stack)
        assert reply.status_code == 504
        error = reply.json()["error"]
        assert error["code"] == "model_timeout" and "/v1/jobs" in error["message"]
        assert doors.stats()["invocations"] == 1


# =====================================================================================================
# Faults that need the queue to give the record back


@pytest.fixture(scope="class")
def fast_stack() -> Iterator[tuple[Doors, KillableWorker]]:
    yield from _stack(FAST_FUNCTION_TIMEOUT, FAST_VISIBILITY)


@pytest.fixture
def fast(fast_stack: tuple[Doors, KillableWorker]) -> Iterator[tuple[Doors, KillableWorker]]:
    doors, _ = fast_stack
    _clean(doors)
    yield fast_stack
    _clean(doors)


class TestRedelivery:
    def test_model_timeouts_are_retried_a_bounded_number_of_times_then_failed(
        self, fast: tuple[Doors, KillableWorker]
    ) -> None:
        doors, spy = fast
        doors.set_faults(timeout_first=1000)
        key = _drop(doors, "timeout-always")
        # Each receive tries twice (one application-level retry), the last receive records it.
        wait_until(lambda: doors.dead_letters() == 1, timeout=90)
        meta = _metadata(doors, "timeout-always")
        assert meta["status"] == "FAILED" and meta["error"]["code"] == "model_timeout"
        assert "timed out" in meta["error"]["message"]
        assert doors.stats()["invocations"] == MAX_RECEIVES * (1 + timeout_retries())
        assert _receives(spy, key, MAX_RECEIVES) == list(range(1, MAX_RECEIVES + 1))
        # The dead letter is the S3 event itself: redriving it runs the job again.
        [letter] = doors.dead_letter_bodies()
        assert letter["Records"][0]["s3"]["object"]["key"].endswith("timeout-always.png")
        assert doors.queue_depth() == 0

    def test_throttling_past_the_clients_budget_comes_back_and_completes(
        self, fast: tuple[Doors, KillableWorker]
    ) -> None:
        doors, spy = fast
        refusals = model_attempts(sync=False)  # the whole budget of the first receive
        doors.set_faults(throttle_first=refusals)
        key = _drop(doors, "throttled-long")
        meta = _metadata(doors, "throttled-long")
        assert meta["status"] == "SUCCEEDED"
        assert (doors.stats()["refused"], doors.stats()["invocations"]) == (refusals, 1)
        assert _receives(spy, key, 2) == [1, 2]
        wait_until(lambda: doors.queue_depth() == 0)
        assert doors.dead_letters() == 0

    def test_a_worker_killed_after_the_answer_was_stored_completes_without_a_second_call(
        self, fast: tuple[Doors, KillableWorker]
    ) -> None:
        """Killed at the metadata write, after the result (the stored answer) was written: the
        redelivery finds it and finishes from it, so the job is billed once."""
        doors, spy = fast
        step = ".json"
        kills_before = spy.kills
        armed = [True]
        name = f"killed{step.replace('.', '-')}"

        def kill_at_first_write(key: str) -> bool | BaseException:
            if armed[0] and key.startswith(f"results/faults/{name}.png{step}"):
                armed[0] = False
                return WorkerKilled()
            return False

        with failing_writes(kill_at_first_write):
            key = _drop(doors, name)
            meta = _metadata(doors, name)
        assert spy.kills == kills_before + 1
        assert meta["status"] == "SUCCEEDED" and meta["model"]["replayed"] is True
        assert doors.s3.head_object(Bucket=doors.output, Key=meta["result"]["key"])["ContentLength"] > 0
        assert doors.stats()["invocations"] == 1  # the dead run's call, and no other
        assert _receives(spy, key, 2) == [1, 2]
        wait_until(lambda: doors.queue_depth() == 0)
        assert doors.dead_letters() == 0

    def test_the_same_event_ten_times_to_three_workers_costs_one_call(
        self, fast: tuple[Doors, KillableWorker]
    ) -> None:
        """S3 delivers at least once: the upload's own notification and nine copies of it, all
        in the queue at once, consumed by three workers in parallel (two extra processes)."""
        doors, _ = fast
        source = "inbox/faults/ten-times.png"
        with worker_processes(doors.stack.env, 2, timeout_seconds=FAST_FUNCTION_TIMEOUT):
            doors.s3.put_object(Bucket=doors.input, Key=source, Body=imagegen.png(64, 64), Metadata=PROMPT)
            event = _notification(doors, source)
            for _ in range(9):
                doors.sqs.send_message(QueueUrl=doors.stack.resources.queue_url, MessageBody=event)
            meta = _metadata(doors, "ten-times")
            wait_until(lambda: doors.queue_depth() == 0, timeout=90)
        assert meta["status"] == "SUCCEEDED"
        assert doors.stats()["invocations"] == 1
        assert doors.dead_letters() == 0
        written = doors.output_keys("results/faults/ten-times")
        assert sorted(written) == ["results/faults/ten-times.png.json", "results/faults/ten-times.png.png"]
        assert doors.read_json("results/faults/ten-times.png.json") == meta  # never rewritten

    def test_a_burst_with_faults_mixed_in_loses_nothing(self, fast: tuple[Doors, KillableWorker]) -> None:
        """24 images at once, two of them bad, with the model throttling and timing out now
        and then: each ends with its metadata, the good ones with one model call each."""
        doors, _ = fast
        doors.set_faults(throttle_first=4, timeout_first=2)
        bad = {"burst-07": imagegen.gif(), "burst-13": imagegen.truncated(imagegen.jpeg(64, 64))}
        names = [f"burst-{n:02d}" for n in range(24)]
        with worker_processes(doors.stack.env, 1, timeout_seconds=FAST_FUNCTION_TIMEOUT):
            for name in names:
                _drop(doors, name, bad.get(name))
            metas = {name: _metadata(doors, name) for name in names}
            wait_until(lambda: doors.queue_depth() == 0, timeout=90)
        statuses = {name: meta["status"] for name, meta in metas.items()}
        assert {n for n, s in statuses.items() if s == "FAILED"} == set(bad)
        assert {metas[n]["error"]["code"] for n in bad} == {"unsupported_image"}
        assert all(s == "SUCCEEDED" for n, s in statuses.items() if n not in bad)
        good = len(names) - len(bad)
        stats = doors.stats()
        # Two timed-out invocations were retried by the service; nothing else was paid twice.
        assert stats["invocations"] == good + 2
        assert stats["outcomes"]["success"] == good
        assert doors.dead_letters() == 0


def _notification(doors: Doors, key: str) -> str:
    """The S3 notification of the object now at `key`, as local mode's S3 sends it."""
    head = doors.s3.head_object(Bucket=doors.input, Key=key)
    body = json.loads(load_event("sqs_s3_object_created_moto")["Records"][0]["body"])
    obj = body["Records"][0]["s3"]["object"]
    obj.update(key=quote_plus(key), size=head["ContentLength"], eTag=head["ETag"].strip('"'))
    if head.get("VersionId"):
        obj["versionId"] = head["VersionId"]
    return json.dumps(body)
