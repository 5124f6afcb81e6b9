"""Unit-level fixtures: no sockets and no AWS emulation. The domain over in-memory ports is in
tests/domain; the handlers and adapters over moto in tests/handlers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

from tests.handlers.world import aws_env  # noqa: F401 - a fixture: the functions' environment variables


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Unit tests open no sockets: AWS is not reached at all, Bedrock is a stub or a fake client."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
