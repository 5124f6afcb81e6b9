"""Handler-level fixtures (tests/handlers/world.py): moto in-process, no sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

from tests.handlers.world import aws, aws_env, world  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Handler tests open no sockets: AWS is moto in-process, Bedrock a fake client."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
