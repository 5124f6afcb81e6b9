"""Local mode's banner says "Try:" and prints commands: each one runs as printed, with the real
curl and AWS CLI, from a folder holding the shipped docs/sample.png, and does what it says
(an SDXL answer with an image, a dropped image's result in the output bucket)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from img2img_local.__main__ import banner
from img2img_local.runner import LocalStack, start_local
from tests.local.conftest import wait_until

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with start_local(api_port=0, aws_port=0, bedrock_port=0) as running:
        running.wait_healthy(timeout=30)
        yield running


def printed_commands(text: str) -> list[str]:
    """The commands under "Try", each with its continuation lines joined as a shell would."""
    block = text.split("Try", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    commands: list[str] = []
    for line in block:
        if commands and commands[-1].endswith("\\"):  # a continued line
            commands[-1] = commands[-1].removesuffix("\\") + " " + line.strip()
        elif commands and line.startswith("    "):  # the rest of a quoted argument
            commands[-1] += "\n" + line
        else:
            commands.append(line.strip())
    return commands


def test_every_command_the_banner_prints_runs_as_printed(stack: LocalStack, tmp_path: Path) -> None:
    for tool in ("curl", "aws"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the banner's examples need it")
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "sample.png", tmp_path / "docs" / "sample.png")
    commands = printed_commands(banner(stack))
    assert len(commands) == 6, commands
    outputs = []
    for command in commands[:5]:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout)
    assert json.loads(outputs[0])["status"] == "ok"
    answer = json.loads(outputs[3])  # ?return=url: where the image is, no base64 on the screen
    assert answer["result"] == "success" and answer["status"] == "SUCCEEDED"
    assert answer["image"]["url"] and not answer["artifacts"][0].get("base64")
    assert {p.name for p in tmp_path.iterdir()} == {"docs", "local-output"}
    s3 = stack.client("s3")
    key = "results/sample.png.json"

    def metadata() -> dict[str, object] | None:
        try:
            return json.loads(s3.get_object(Bucket=stack.resources.output_bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    meta = wait_until(metadata, timeout=60)
    assert meta["status"] == "SUCCEEDED"
    assert meta["request"]["text_prompts"][0]["text"] == "a watercolor landscape"  # the JSON --metadata form
    listing = subprocess.run(
        ["bash", "-c", commands[5]], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert key in listing.stdout  # the last command shows it
