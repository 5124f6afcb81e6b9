"""`make local` as a person runs it (python -m img2img_local in its own process): the screen
gets the banner and one line per job; the functions' JSON logs go to the log file; Ctrl-C
stops it."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import imagegen

pytestmark = [pytest.mark.local, pytest.mark.timeout(120)]


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text() if path.exists() else "", re.M)
        if found:
            return found
        assert proc.poll() is None, path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {path.read_text()}")


def test_one_line_per_job_logs_in_the_file_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    screen, log = tmp_path / "screen.txt", tmp_path / "local.log"
    env = {**os.environ, "IMG2IMG_API_PORT": "0", "IMG2IMG_AWS_PORT": "0", "IMG2IMG_BEDROCK_PORT": "0"}
    with screen.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "img2img_local", "--log-file", str(log)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        api = _wait_for(screen, r"^  API +(http://\S+)", proc).group(1)
        _wait_for(screen, "one line per job", proc)
        body = {
            "text_prompts": [{"text": "a house"}],
            "init_image": base64.b64encode(imagegen.png()).decode(),
        }
        job_id = requests.post(f"{api}/v1/image-to-image", json=body, timeout=60).json()["job_id"]
        _wait_for(screen, rf"^\d\d:\d\d:\d\d  api  {job_id}  SUCCEEDED +\d+\.\d s$", proc)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    shown = screen.read_text()
    assert "stopping local mode..." in shown and '"level"' not in shown  # no JSON log on the screen
    assert f'"job_id":"{job_id}"' in log.read_text().replace(" ", "")
