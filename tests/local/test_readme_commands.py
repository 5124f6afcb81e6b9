"""README's command blocks marked `<!-- doc-test: local -->` run as written against local mode
(with the stack's ports for 3000 and 4566), from a folder holding the shipped docs/sample.png,
with the real curl, AWS CLI and python3: none can drift from the service. `make local` lines are
the stack this test starts.

Blocks written for a deployed stack and marked `<!-- doc-test: as deployed -->` run the same way
with the stack's names filled in where README leaves them to the reader (`<InputBucketName>`,
`$INPUT`, `$OUTPUT`) and the AWS CLI pointed at local mode by `AWS_ENDPOINT_URL`; every job they
start must then end SUCCEEDED. What only AWS can answer (CloudFormation outputs, SigV4 checks)
is not run here: `make e2e` covers the deployed stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from img2img_local import resources as r
from img2img_local.runner import LocalStack, start_local
from tests.local.conftest import wait_until

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- doc-test: local[^>]*-->\n```bash\n(.*?)```", re.S)
AS_DEPLOYED = re.compile(r"<!-- doc-test: as deployed -->\n```bash\n(.*?)```", re.S)


def marked_blocks() -> list[str]:
    return MARKED.findall((REPO / "README.md").read_text())


def as_deployed_blocks() -> list[str]:
    return AS_DEPLOYED.findall((REPO / "README.md").read_text())


SHIPPED = ("docs", "a.png", "b.png", "photo.png")  # what run_block puts in the folder first


def run_block(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (cwd / "docs").mkdir(exist_ok=True)
    shutil.copy(REPO / "docs" / "sample.png", cwd / "docs" / "sample.png")
    for name in SHIPPED[1:]:  # the images README's examples name in the cwd
        shutil.copy(REPO / "docs" / "sample.png", cwd / name)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",  # as README says the CLI needs
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


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
    done = run_block(script, tmp_path)
    assert done.returncode == 0, (script, done.stdout[-2000:], done.stderr[-2000:])
    assert '"error"' not in done.stdout, done.stdout[-2000:]
    # What a person reads: a few lines, no base64; every file it writes goes to local-output/.
    assert len(done.stdout) < 3000 and not re.search(r"[A-Za-z0-9+/]{200}", done.stdout), done.stdout[:500]
    assert {p.name for p in tmp_path.iterdir()} <= {*SHIPPED, "local-output"}


def test_readme_marks_its_deploy_examples() -> None:
    assert len(as_deployed_blocks()) >= 3


def _metadata(stack: LocalStack) -> dict[str, Any]:
    s3 = stack.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=r.OUTPUT_BUCKET)
    keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    return {
        key: json.loads(s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=key)["Body"].read())
        for key in keys
        if key.startswith(("results/", "manifest-results/"))
    }


@pytest.mark.parametrize("index", range(len(as_deployed_blocks())))
def test_a_deploy_readme_block_runs_against_local_mode(stack: LocalStack, tmp_path: Path, index: int) -> None:
    block = as_deployed_blocks()[index]
    script = block.replace("<InputBucketName>", r.INPUT_BUCKET)
    before = set(_metadata(stack))
    done = run_block(
        script, tmp_path, INPUT=r.INPUT_BUCKET, OUTPUT=r.OUTPUT_BUCKET, AWS_ENDPOINT_URL=stack.aws_url
    )
    assert done.returncode == 0, (script, done.stdout[-2000:], done.stderr[-2000:])
    drops = len(re.findall(r"s3 cp \S+ \S*/inbox/\S*", script))
    if not drops:
        return
    new = wait_until(
        lambda: (
            {
                k: m
                for k, m in _metadata(stack).items()
                if k not in before and m["status"] not in ("RUNNING", "QUEUED")  # QUEUED: a manifest's list
            }
            or None
        ),
        timeout=60,
    )
    assert {m["status"] for m in new.values()} == {"SUCCEEDED"}, new
