"""The in-memory fakes against their ports' contracts (tests/contracts.py); the adapters meet
the same assertions in tests/handlers/test_adapter_contracts.py (over moto) and
tests/unit/test_bedrock_adapter.py (Bedrock)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.contracts import (
    JobEventsContract,
    JobQueueContract,
    JobStoreContract,
    ModelInvokerContract,
    ObjectStoreContract,
)
from tests.fakes import (
    INPUT,
    OUTPUT,
    FakeModel,
    MemoryJobEvents,
    MemoryJobStore,
    MemoryObjectStore,
    MemoryQueue,
    bedrock_error,
)

pytestmark = pytest.mark.unit


@dataclass
class MemoryStoreRig:
    store: MemoryObjectStore = field(default_factory=lambda: MemoryObjectStore({INPUT: True, OUTPUT: False}))

    def add(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> Any:
        return self.store.add(bucket, key, data, metadata=metadata)


class TestMemoryObjectStore(ObjectStoreContract):
    @pytest.fixture
    def rig(self) -> MemoryStoreRig:
        return MemoryStoreRig()


@dataclass
class MemoryJobsRig:
    jobs: MemoryJobStore = field(default_factory=MemoryJobStore)
    broken: MemoryJobStore = field(default_factory=MemoryJobStore)

    def __post_init__(self) -> None:
        self.broken.fail("write")
        self.broken.fail("get")


class TestMemoryJobStore(JobStoreContract):
    @pytest.fixture
    def rig(self) -> MemoryJobsRig:
        return MemoryJobsRig()


@dataclass
class MemoryQueueRig:
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    broken: MemoryQueue = field(default_factory=MemoryQueue)

    def __post_init__(self) -> None:
        self.broken.fail()

    def received(self) -> list[dict[str, Any]]:
        return self.queue.messages


class TestMemoryQueue(JobQueueContract):
    @pytest.fixture
    def rig(self) -> MemoryQueueRig:
        return MemoryQueueRig()


@dataclass
class FakeModelRig:
    invoker: FakeModel = field(default_factory=FakeModel)

    def gone(self, model_id: str) -> None:
        self.invoker.gone.add(model_id)

    def fail_next(self, code: str) -> None:
        self.invoker.errors.append(bedrock_error(code))

    def finish(self, reason: str) -> None:
        self.invoker.finish_reason = reason

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(call.model_id, call.body) for call in self.invoker.calls]


class TestFakeModel(ModelInvokerContract):
    @pytest.fixture
    def rig(self) -> FakeModelRig:
        return FakeModelRig()


@dataclass
class MemoryEventsRig:
    events: MemoryJobEvents = field(default_factory=MemoryJobEvents)

    @property
    def undelivered(self) -> list[str]:
        return self.events.undelivered

    def refuse(self, code: str, *, times: int = 1) -> None:
        self.events.refuse(code, times=times)

    def delivered(self) -> list[dict[str, Any]]:
        return [
            {"source": e["Source"], "detail-type": e["DetailType"], "detail": json.loads(e["Detail"])}
            for e in self.events.entries
        ]

    def requests(self) -> list[list[dict[str, Any]]]:
        return self.events.requests


class TestMemoryJobEvents(JobEventsContract):
    @pytest.fixture
    def rig(self) -> MemoryEventsRig:
        return MemoryEventsRig()
