"""Fixtures for local-mode tests: free ports, a stack with programmable fake handlers, and a
stack with the real handlers and the Bedrock emulator. Stacks are module-scoped (moto's state
is per process, so one stack runs at a time) and restore the environment when they stop."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from img2img_local.resources import QueueSettings
from img2img_local.runner import LocalStack, start_local

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
Behaviour = Callable[[dict[str, Any], Any], Any]


def free_port() -> int:
    """A port free right now (for a server that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return data


def wait_until(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; fail the test past the timeout (a bound, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def _ok_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"ok": True}),
    }


def _ok_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"batchItemFailures": []}


@dataclass
class FakeHandlers:
    """Stand-ins for the two Lambda handlers: they record every call (event and context) and
    answer with a behaviour each test sets."""

    api_behaviour: Behaviour = _ok_api
    worker_behaviour: Behaviour = _ok_worker
    api_calls: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    worker_calls: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def api(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.api_calls.append((event, context))
        return self.api_behaviour(event, context)

    def worker(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.worker_calls.append((event, context))
        return self.worker_behaviour(event, context)

    def reset(self) -> None:
        self.api_behaviour, self.worker_behaviour = _ok_api, _ok_worker

    def worker_records(
        self, predicate: Callable[[dict[str, Any]], bool] = lambda rec: True
    ) -> list[dict[str, Any]]:
        with self._lock:
            calls = list(self.worker_calls)
        return [rec for event, _ in calls for rec in event["Records"] if predicate(rec)]


@pytest.fixture(scope="module")
def fake_handlers() -> FakeHandlers:
    return FakeHandlers()


@pytest.fixture(scope="module")
def fake_stack(fake_handlers: FakeHandlers) -> Iterator[LocalStack]:
    """Local mode on free ports with fake handlers and no Bedrock emulator. The queue's
    visibility timeout is 1 s so redelivery and the DLQ can be watched; batches of up to 10."""
    with start_local(
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        api_handler=fake_handlers.api,
        worker_handler=fake_handlers.worker,
        with_bedrock=False,
        queue_settings=QueueSettings(visibility_timeout_seconds=1),
        batch_size=10,
    ) as stack:
        yield stack


@pytest.fixture
def fakes(fake_stack: LocalStack, fake_handlers: FakeHandlers) -> Iterator[FakeHandlers]:
    """The fake handlers of the running fake stack, back to their default answers after each test."""
    fake_handlers.reset()
    yield fake_handlers
    fake_handlers.reset()


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """Local mode on free ports with the real handlers and the Bedrock emulator."""
    with start_local(api_port=0, aws_port=0, bedrock_port=0) as stack:
        stack.wait_healthy(timeout=30)
        yield stack
