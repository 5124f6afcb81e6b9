"""Fixtures for the client's tests: one local mode for the whole tests/client package (real
handlers, the Bedrock emulator filtering prompts that contain FILTER_WORD), and the ways the
`img2img` command is called against it."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from img2img_client.cli import main
from img2img_local import resources as r
from img2img_local.runner import LocalStack, start_local
from tools.sample import sample_png

FILTER_WORD = "forbidden"


@dataclass(frozen=True)
class Ran:
    """What one `img2img ...` call did."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out)
        return data


@pytest.fixture(scope="package")
def client_stack() -> Iterator[LocalStack]:
    """Local mode on free ports, for every test in tests/client that needs a service."""
    pytest.importorskip("img2img_local.bedrock_emulator")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per emulator request
    with start_local(
        api_port=0, aws_port=0, bedrock_port=0, bedrock_faults={"filter_word": FILTER_WORD}
    ) as stack:
        stack.wait_healthy(timeout=30)
        yield stack


@pytest.fixture
def local_ports(client_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """`--local` finds the test stack: its ports, as `make local` would read them."""
    monkeypatch.setenv(r.API_PORT_ENV, client_stack.api_url.rsplit(":", 1)[1])
    monkeypatch.setenv(r.AWS_PORT_ENV, client_stack.aws_url.rsplit(":", 1)[1])
    return client_stack


class Emulator:
    """The Bedrock emulator's documented controls (POST /_emulator/faults, /_emulator/reset)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def set_faults(self, **faults: Any) -> None:
        requests.post(f"{self.url}/_emulator/faults", json=faults, timeout=10).raise_for_status()

    def reset(self) -> None:
        requests.post(f"{self.url}/_emulator/reset", timeout=10).raise_for_status()


@pytest.fixture
def emulator(client_stack: LocalStack) -> Iterator[Emulator]:
    """The Bedrock emulator, its faults back to the package's after each test."""
    assert client_stack.bedrock_url
    controls = Emulator(client_stack.bedrock_url)
    yield controls
    controls.reset()
    controls.set_faults(filter_word=FILTER_WORD)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small PNG source image."""
    path = tmp_path / "landscape.png"
    path.write_bytes(sample_png((640, 480)))
    return path


@pytest.fixture
def img2img() -> Any:
    """Run the command in this process: `img2img("run", ...)` -> Ran. Only the command's own
    output is captured: local mode's threads print their logs and metrics to sys.stdout."""

    def run(*argv: str | os.PathLike[str]) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        code = main([str(a) for a in argv], stdout=out, stderr=err)
        return Ran(code, out.getvalue(), err.getvalue())

    return run
