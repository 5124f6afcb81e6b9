"""README's command blocks marked `<!-- doc-test: local -->` run as written against local mode
(with the stack's ports for 3000 and 4566), from a folder holding the shipped docs/sample.png,
with the real curl, AWS CLI and python3: none can drift from the service. `make local` lines are
the stack this test starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from img2img_local.runner import LocalStack, start_local

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- doc-test: local[^>]*-->\n```bash\n(.*?)```", re.S)


def marked_blocks() -> list[str]:
    return MARKED.findall((REPO / "README.md").read_text())


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with start_local(api_port=0, aws_port=0, bedrock_port=0) as running:
        running.wait_healthy(timeout=30)
        yield running


def test_readme_marks_its_local_examples() -> None:
    assert len(marked_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(marked_blocks())))
def test_a_marked_readme_block_runs_as_written(stack: LocalStack, tmp_path: Path, index: int) -> None:
    block = marked_blocks()[index]
    script = "\n".join(line for line in block.splitlines() if line.strip() != "make local")
    script = script.replace("http://127.0.0.1:3000", stack.api_url).replace(
        "http://127.0.0.1:4566", stack.aws_url
    )
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "sample.png", tmp_path / "docs" / "sample.png")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",  # as README says the CLI needs
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, (script, done.stdout[-2000:], done.stderr[-2000:])
    assert '"error"' not in done.stdout, done.stdout[-2000:]
