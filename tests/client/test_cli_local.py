"""The `img2img` command end to end against local mode: run (inline and through /v1/uploads),
drop with and without --wait (its job id and hint against the real worker), status, models,
doctor, --json, and the exit code of every kind of failure."""

from __future__ import annotations

import io
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from img2img_client import errors
from img2img_client.cli import INLINE_MAX_BYTES, main
from img2img_local import resources as r
from img2img_local.runner import LocalStack
from tests.client.conftest import FILTER_WORD, Ran
from tools.sample import sample_png

pytestmark = [pytest.mark.local, pytest.mark.timeout(180)]


def endpoint(stack: LocalStack) -> list[str]:
    return ["--endpoint", stack.api_url]


def one_line_reason(ran: Ran) -> str:
    """The command's own last line on stderr: `img2img: <reason>`."""
    lines = ran.err.strip().splitlines()
    assert lines, "no reason on stderr"
    assert lines[-1].startswith("img2img: "), lines[-1]
    return lines[-1]


def opens_as_image(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


# --- run -----------------------------------------------------------------------------------


def test_run_saves_the_image_and_metadata_and_says_where(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ran = img2img(
        "run", source, "--prompt", "a watercolor landscape", "--negative", "blurry", "--style", "digital-art",
        "--strength", "0.5", "--seed", "42", "--steps", "20", "--cfg-scale", "8", "--format", "jpeg",
        "--out", out, *endpoint(client_stack),
    )  # fmt: skip
    assert ran.code == errors.OK, ran.err
    images, metadata = sorted(out.glob("landscape-*.jpg")), sorted(out.glob("landscape-*.json"))
    assert len(images) == 1 and len(metadata) == 1
    assert opens_as_image(images[0])[0] > 0
    meta = json.loads(metadata[0].read_text())
    assert meta["status"] == "SUCCEEDED" and meta["result"]["format"] == "jpeg"
    request = meta["request"]
    assert request["text_prompts"] == [
        {"text": "a watercolor landscape", "weight": 1.0},
        {"text": "blurry", "weight": -1.0},
    ]
    assert request["style_preset"] == "digital-art" and request["image_strength"] == 0.5
    assert request["seed"] == 42 and request["steps"] == 20 and request["cfg_scale"] == 8.0
    assert request["init_image_s3_key"].startswith("api/")  # small sources go inline
    # Says where the files are, and what made them.
    assert f"SUCCEEDED  job {meta['job_id']}" in ran.out
    assert str(images[0]) in ran.out and str(metadata[0]) in ran.out
    assert "emulated" in ran.out


def test_run_json_through_an_upload(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    ran = img2img(
        "run", source, "--prompt", "an oil painting", "--upload", "--json", "--out", tmp_path,
        *endpoint(client_stack),
    )  # fmt: skip
    assert ran.code == errors.OK, ran.err
    result = ran.json()
    assert result["status"] == "SUCCEEDED" and result["exit_code"] == 0
    assert result["model_id"] == r.DEFAULT_MODEL_ID and isinstance(result["seed"], int)
    assert opens_as_image(Path(result["image"]))
    meta = json.loads(Path(result["metadata"]).read_text())
    assert meta["job_id"] == result["job_id"]
    assert meta["request"]["init_image_s3_key"].startswith("uploads/")


def test_a_large_source_goes_through_an_upload_by_itself(
    client_stack: LocalStack, img2img: Any, tmp_path: Path
) -> None:
    big = tmp_path / "noise.png"
    Image.frombytes("RGB", (1200, 1200), os.urandom(1200 * 1200 * 3)).save(big, compress_level=1)
    assert big.stat().st_size > INLINE_MAX_BYTES
    ran = img2img("run", big, "--prompt", "static", "--json", "--out", tmp_path, *endpoint(client_stack))
    assert ran.code == errors.OK, ran.err
    meta = json.loads(Path(ran.json()["metadata"]).read_text())
    assert meta["request"]["init_image_s3_key"].startswith("uploads/")
    assert meta["source"]["width"] == 1200


def test_content_filtered_has_an_exit_code_of_its_own(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    ran = img2img(
        "run", source, "--prompt", f"a {FILTER_WORD} scene", "--out", tmp_path, *endpoint(client_stack)
    )
    assert ran.code == errors.CONTENT_FILTERED
    assert "CONTENT_FILTERED" in one_line_reason(ran)
    as_json = img2img(
        "run",
        source,
        "--prompt",
        f"a {FILTER_WORD} scene",
        "--json",
        "--out",
        tmp_path,
        *endpoint(client_stack),
    )
    assert as_json.code == errors.CONTENT_FILTERED
    assert (
        as_json.json()["status"] == "CONTENT_FILTERED"
        and as_json.json()["exit_code"] == errors.CONTENT_FILTERED
    )


def test_a_failed_job_exits_1_with_its_reason(
    client_stack: LocalStack, emulator: Any, img2img: Any, source: Path, tmp_path: Path
) -> None:
    emulator.set_faults(model_error_first=1)
    ran = img2img("run", source, "--prompt", "anything", "--json", "--out", tmp_path, *endpoint(client_stack))
    assert ran.code == errors.JOB_FAILED
    result = ran.json()
    assert result["status"] == "FAILED" and result["error"]["code"] == "model_error"
    assert "FAILED: model_error" in one_line_reason(ran)
    assert result["metadata"] and Path(result["metadata"]).is_file()  # the failure's metadata is saved


def test_a_request_the_service_refuses_exits_4(client_stack: LocalStack, img2img: Any, source: Path) -> None:
    ran = img2img("run", source, "--prompt", "x", "--model", "acme.not-a-model-v1", *endpoint(client_stack))
    assert ran.code == errors.REJECTED
    reason = one_line_reason(ran)
    assert "400 invalid_request" in reason and "model_id" in reason
    as_json = img2img(
        "run", source, "--prompt", "x", "--model", "acme.nope", "--json", *endpoint(client_stack)
    )
    assert as_json.json() == {
        "error": {"code": "invalid_request", "message": as_json.json()["error"]["message"], "problem": None},
        "exit_code": errors.REJECTED,
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.png", "--prompt", "x"], "no such file"),
        (["{not_image}", "--prompt", "x"], "not a PNG, JPEG or WebP image"),
        (["{source}", "--prompt", "   "], "--prompt is empty"),
        (["{source}", "--prompt", "x", "--strength", "1.5"], "--strength"),
        (["{source}", "--prompt", "x", "--steps", "5"], "--steps"),
        (["{source}", "--prompt", "x", "--seed", "-1"], "--seed"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_sent(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    argv = [a.format(source=source, not_image=not_image) for a in args]
    ran = img2img("run", *argv, *endpoint(client_stack))
    assert ran.code == errors.USAGE
    assert needle in one_line_reason(ran)


def test_no_target_and_an_unreachable_service(
    img2img: Any, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMG2IMG_ENDPOINT", raising=False)
    ran = img2img("run", source, "--prompt", "x")
    assert ran.code == errors.USAGE and "--env NAME, --endpoint URL or --local" in one_line_reason(ran)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ran = img2img("models", "--endpoint", f"http://127.0.0.1:{port}", "--json")
    assert ran.code == errors.UNREACHABLE
    assert ran.json()["error"]["code"] == "unreachable"
    assert "is local mode running?" in one_line_reason(ran)


# --- status and models -------------------------------------------------------------------


def test_no_wait_then_status(client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path) -> None:
    queued = img2img("run", source, "--prompt", "a sketch", "--no-wait", "--json", *endpoint(client_stack))
    assert queued.code == errors.OK, queued.err
    job_id = queued.json()["job_id"]

    done = img2img("status", job_id, "--wait", "--out", tmp_path, "--json", *endpoint(client_stack))
    assert done.code == errors.OK, done.err
    result = done.json()
    assert result["job_id"] == job_id and result["status"] == "SUCCEEDED"
    assert Path(result["image"]).name == f"job-{job_id[:8]}.png" and opens_as_image(Path(result["image"]))

    shown = img2img("status", job_id, *endpoint(client_stack))
    assert shown.code == errors.OK
    assert f"SUCCEEDED  job {job_id}" in shown.out and "http" in shown.out  # the presigned image URL

    unknown = img2img("status", "no-such-job", *endpoint(client_stack))
    assert unknown.code == errors.REJECTED and "job_not_found" in one_line_reason(unknown)


def test_models(client_stack: LocalStack, img2img: Any) -> None:
    listing = img2img("models", "--json", *endpoint(client_stack))
    assert listing.code == errors.OK
    data = listing.json()
    assert data["default"] == r.DEFAULT_MODEL_ID
    assert [m["id"] for m in data["models"]] == list(r.ALLOWED_MODEL_IDS)
    human = img2img("models", *endpoint(client_stack))
    assert f"{r.DEFAULT_MODEL_ID}" in human.out and "(default)" in human.out
    assert len(human.out.strip().splitlines()) == len(r.ALLOWED_MODEL_IDS)


# --- drop (the S3 door) -----------------------------------------------------------------


def test_drop_with_wait_through_local_defaults(
    local_ports: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    ran = img2img(
        "drop", source, "--prompt", "a pencil drawing", "--style", "line-art", "--seed", "7",
        "--key", "inbox/cli/drop-one.png", "--local", "--wait", "--out", tmp_path,
    )  # fmt: skip
    assert ran.code == errors.OK, ran.err
    (metadata,) = tmp_path.glob("drop-one-*.json")
    meta = json.loads(metadata.read_text())
    image = tmp_path / f"drop-one-{meta['job_id'][:8]}.png"
    assert opens_as_image(image)
    assert meta["door"] == "s3" and meta["status"] == "SUCCEEDED"
    assert meta["source"]["key"] == "inbox/cli/drop-one.png"
    assert meta["result"]["key"] == "results/cli/drop-one.png.png"
    assert meta["request"]["style_preset"] == "line-art" and meta["request"]["seed"] == 7
    assert str(image) in ran.out


def test_drop_again_with_other_parameters_waits_for_the_new_result(
    local_ports: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    """Same name and bytes, a new prompt: the earlier result is not taken for this one."""
    common = ["--key", "inbox/cli/again.png", "--local", "--wait", "--json", "--out", tmp_path]
    first = img2img("drop", source, "--prompt", "first", *common)
    second = img2img("drop", source, "--prompt", "second", *common)
    assert first.code == second.code == errors.OK, second.err
    assert first.json()["job_id"] != second.json()["job_id"]
    meta = json.loads(Path(second.json()["metadata"]).read_text())
    assert meta["request"]["text_prompts"][0]["text"] == "second"


def test_drop_with_explicit_s3_options_and_a_non_ascii_prompt(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    prompt = "ein Stück Kuchen, café au lait — 水彩"
    ran = img2img(
        "drop", source, "--prompt", prompt, "--negative", "unschärfe", "--key", "inbox/cli/unicode.png",
        "--endpoint", client_stack.api_url, "--s3-endpoint", client_stack.aws_url,
        "--input-bucket", r.INPUT_BUCKET, "--output-bucket", r.OUTPUT_BUCKET,
        "--wait", "--json", "--out", tmp_path,
    )  # fmt: skip
    assert ran.code == errors.OK, ran.err
    meta = json.loads(Path(ran.json()["metadata"]).read_text())
    assert meta["request"]["text_prompts"] == [
        {"text": prompt, "weight": 1.0},
        {"text": "unschärfe", "weight": -1.0},
    ]


def test_drop_without_wait_prints_the_job_id_and_its_hint_fetches_the_result(
    local_ports: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    """The id `drop` prints is the one the worker gives the job, and the printed hint, run as
    printed, waits for it and downloads its result from the output bucket."""
    ran = img2img(
        "drop", source, "--prompt", "later", "--key", "inbox/cli/later.png", "--local", "--out", tmp_path
    )
    assert ran.code == errors.OK, ran.err
    job_id = ran.out.strip()
    assert ran.out == f"{job_id}\n"
    hint = next(line for line in ran.err.splitlines() if ": img2img " in line).split(": ", 1)[1]
    assert hint == f"img2img status {job_id} --local --wait --out {tmp_path}"
    done = img2img(*shlex.split(hint)[1:], "--json")
    assert done.code == errors.OK, done.err
    result = done.json()
    assert result["job_id"] == job_id and result["status"] == "SUCCEEDED"
    assert result["image_s3_uri"] == f"s3://{r.OUTPUT_BUCKET}/results/cli/later.png.png"
    meta = json.loads(Path(result["metadata"]).read_text())
    assert meta["job_id"] == job_id and meta["door"] == "s3"
    assert opens_as_image(Path(result["image"]))

    as_json = img2img(
        "drop", source, "--prompt", "later", "--key", "inbox/cli/later2.png", "--local", "--json"
    )
    assert as_json.code == errors.OK, as_json.err
    assert as_json.json()["source"] == f"s3://{r.INPUT_BUCKET}/inbox/cli/later2.png"
    assert as_json.json()["metadata"] == f"s3://{r.OUTPUT_BUCKET}/results/cli/later2.png.json"
    assert (
        as_json.json()["wait_command"] == f"img2img status {as_json.json()['job_id']} --local --wait --out ."
    )


def test_drop_content_filtered_and_a_key_outside_the_inbox(
    local_ports: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    ran = img2img(
        "drop", source, "--prompt", f"{FILTER_WORD} things", "--key", "inbox/cli/filtered.png", "--local",
        "--wait", "--out", tmp_path,
    )  # fmt: skip
    assert ran.code == errors.CONTENT_FILTERED
    assert "CONTENT_FILTERED" in one_line_reason(ran)
    outside = img2img("drop", source, "--prompt", "x", "--key", "elsewhere/a.png", "--local")
    assert outside.code == errors.REJECTED and "under inbox/" in one_line_reason(outside)


# --- doctor, and the installed command --------------------------------------------------


def test_doctor_against_local_mode(local_ports: LocalStack, img2img: Any) -> None:
    ran = img2img("doctor", "--local", "--json")
    assert ran.code == errors.OK, ran.out
    checks = {c["name"]: c["verdict"] for c in ran.json()["checks"]}
    assert checks == {"api": "ok", "models": "ok", "bedrock": "skip"}
    human = img2img("doctor", "--local")
    assert "all checks passed" in human.out


def test_doctor_says_what_to_fix_when_local_mode_is_down(
    img2img: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(r.API_PORT_ENV, str(sock.getsockname()[1]))
    ran = img2img("doctor", "--local")
    assert ran.code == errors.CONFIGURATION
    assert "[FAIL] api" in ran.out and "fix: start local mode: img2img local" in ran.out


def _installed_command() -> list[str]:
    script = Path(sys.executable).with_name("img2img")
    if not script.exists():
        pytest.fail(f"{script} is missing: install the package (make install, or pip install -e .)")
    return [str(script)]


def test_the_installed_command_is_quiet_when_not_a_terminal(
    client_stack: LocalStack, source: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*_installed_command(), "run", str(source), "--prompt", "a mosaic", "--out", str(tmp_path),
         *endpoint(client_stack)],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress line on a pipe
    assert "SUCCEEDED" in done.stdout and "image" in done.stdout
    helped = subprocess.run(
        [*_installed_command(), "run", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0 and "exit codes:" in helped.stdout and "CONTENT_FILTERED" in helped.stdout


def test_progress_shows_on_a_terminal(
    client_stack: LocalStack, img2img: Any, source: Path, tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    code = main(
        ["run", str(source), "--prompt", "x", "--out", str(tmp_path), *endpoint(client_stack)],
        stdout=io.StringIO(),
        stderr=terminal,
    )
    assert code == errors.OK
    shown = terminal.getvalue()
    assert "submitting the job" in shown and "\r" in shown
    assert shown.endswith("\r\x1b[2K")  # the line is cleared before the result is printed


def test_ctrl_c_while_waiting_says_the_job_goes_on(
    client_stack: LocalStack, img2img: Any, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr("img2img_client.cli.wait_for_job", interrupted)
    ran = img2img("run", source, "--prompt", "x", "--json", *endpoint(client_stack))
    assert ran.code == errors.INTERRUPTED
    reason = one_line_reason(ran)
    assert "interrupted; job " in reason and "img2img status" in reason and "--wait" in reason
    assert ran.json()["error"]["code"] == "interrupted"


def test_the_local_command_serves_local_mode(img2img: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def serve(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr("img2img_local.__main__.main", serve)
    assert img2img("local").code == 0 and img2img("local", "--verbose").code == 0
    assert calls == [[], ["--verbose"]]


def test_doctor_and_run_for_an_env_without_a_stack(
    client_stack: LocalStack, img2img: Any, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--env against local mode's AWS emulation, where no stack was ever deployed."""
    for name, value in {
        "AWS_ENDPOINT_URL": client_stack.aws_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": r.REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ran = img2img("doctor", "--env", "nowhere", "--json")
    assert ran.code == errors.CONFIGURATION
    checks = {c["name"]: c for c in ran.json()["checks"]}
    assert checks["credentials"]["verdict"] == "ok"
    assert checks["stack"]["verdict"] == "fail" and "Img2Img-nowhere" in checks["stack"]["detail"]
    assert "make deploy ENV=nowhere" in checks["stack"]["fix"]
    ran = img2img("run", source, "--prompt", "x", "--env", "nowhere")
    assert ran.code == errors.CONFIGURATION
    assert "no stack Img2Img-nowhere in us-east-1" in one_line_reason(ran)


def test_results_never_overwrite_the_source(local_ports: LocalStack, img2img: Any, tmp_path: Path) -> None:
    source = tmp_path / "cat.png"
    original = sample_png((320, 320))
    source.write_bytes(original)
    for command in ("run", "drop"):
        extra = ["--wait"] if command == "drop" else []
        ran = img2img(command, source, "--prompt", "x", "--local", *extra, "--out", tmp_path)
        assert ran.code == errors.OK, ran.err
    assert source.read_bytes() == original
    assert len(list(tmp_path.glob("cat-*.png"))) == 2
