"""Domain-level fixtures: the real Pipeline, ApiDoor and QueueWorker over the in-memory ports
of tests/fakes.py. Nothing here touches boto3, moto or a socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

from tests.fakes import House


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture
def house() -> House:
    return House(clock=lambda: 1795600801.0)  # 2026-11-25T10:00:01Z
