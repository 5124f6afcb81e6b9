"""The function asset as shipped, run as Lambda runs it: its twin for this machine's
architecture (infra/asset.py build_twin: same requirements, pins, pruning and bytecode; only the
wheels' platform tag differs), copied read-only, imported by the runtime's Python (3.13) in one
fresh interpreter per function with only the asset on its path. Each interpreter plays Lambda's
runtime for one function: it imports the handler once (the init) and answers the events local
mode sends it over a pipe. Through local mode's front, queue and Bedrock emulator, one job runs
per door (sync API, queued API job, S3 drop) and the lifecycle watch runs once: every client
the functions create is built from the trimmed botocore data, and nothing is compiled from
source at import (the import system's compile step is watched)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import requests

from img2img.handlers import lifecycle
from img2img_local import resources as r
from img2img_local.lambda_context import new_context
from img2img_local.runner import API_HANDLER, WORKER_HANDLER, LocalStack, function_environment, start_local
from infra import asset as builder
from tests import imagegen
from tests.local.conftest import load_event, wait_until

pytestmark = pytest.mark.local

LIFECYCLE_HANDLER = f"{lifecycle.__name__}.handler"  # infra/lifecycle.py's (no CDK import here)

# The runtime's side: import the handler (Lambda's init), then one JSON event per line in, one
# answer per line out on the original stdout (fd 1 becomes stderr, where the logs go). Before
# anything of the asset is imported, the import system's compile-from-source step is wrapped, so
# each answer lists every asset module compiled instead of loaded from its shipped .pyc.
RUNTIME = r"""
import importlib, importlib._bootstrap_external as external, json, os, sys, time, traceback, types
root = os.environ["LAMBDA_TASK_ROOT"]
compiled = []
_source_to_code = external.SourceLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return _source_to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = source_to_code
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
def facts():
    modules = list(sys.modules.values())
    from_asset = [m for m in modules if (getattr(m, "__file__", None) or "").startswith(root)]
    return {
        "compiled": [p for p in compiled if p.startswith(root)],
        "without_bytecode": [m.__name__ for m in from_asset
                             if m.__file__.endswith(".py") and not os.path.isfile(m.__cached__ or "")],
        "from_asset": len(from_asset),
        "path": sys.path,
        "version": list(sys.version_info[:2]),
        "dont_write_bytecode": sys.dont_write_bytecode,
    }
module, _, name = sys.argv[1].rpartition(".")
handler = getattr(importlib.import_module(module), name)
for line in sys.stdin:
    request = json.loads(line)
    fields = request["context"]
    deadline = fields.pop("deadline_ms")
    context = types.SimpleNamespace(**fields)
    context.identity = types.SimpleNamespace(**(fields.get("identity") or {}))
    context.get_remaining_time_in_millis = lambda: max(deadline - int(time.time() * 1000), 0)
    try:
        reply = {"answer": handler(request["event"], context)}
    except Exception:
        reply = {"error": traceback.format_exc()}
    answers.write(json.dumps({**reply, **facts()}) + "\n")
    answers.flush()
"""


class TwinFunction:
    """One function of the twin in its own interpreter; called as local mode calls a handler."""

    def __init__(self, handler: str, env: dict[str, str], task_root: Path, log: Path) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._log_file: IO[str] = log.open("w")
        self.facts: dict[str, Any] = {}
        self._process = subprocess.Popen(
            [sys.executable, *builder.ISOLATED_FLAGS, "-c", RUNTIME, handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            cwd=task_root,  # Lambda's working directory is /var/task
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(task_root),
                "LAMBDA_TASK_ROOT": str(task_root),
                **env,
            },
        )

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        fields = dataclasses.asdict(context) if dataclasses.is_dataclass(context) else dict(vars(context))
        fields = {k: v for k, v in fields.items() if not callable(v)}
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps({"event": event, "context": fields}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the twin's runtime died:\n{self.log.read_text()[-4000:]}")
        reply: dict[str, Any] = json.loads(line)
        self.facts = reply
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["answer"]

    def stop(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)
        self._log_file.close()


@dataclasses.dataclass
class Twin:
    stack: LocalStack
    functions: dict[str, TwinFunction]
    task_root: Path


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    assert sys.version_info[:2] == tuple(int(n) for n in builder.PYTHON_VERSION.split(".")), (
        f"the tests run on Python {sys.version.split()[0]}, the functions on {builder.PYTHON_VERSION}: "
        "make install builds .venv with the runtime's Python"
    )
    built = builder.build_twin()
    task_root = builder.read_only_copy(built.path, tmp_path_factory.mktemp("twin") / "task")
    before = sorted(p.relative_to(task_root) for p in task_root.rglob("*"))
    proxies: dict[str, Any] = {}
    with start_local(
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        api_handler=lambda event, context: proxies["api"](event, context),
        worker_handler=lambda event, context: proxies["worker"](event, context),
    ) as stack:
        ports = int(urlsplit(stack.aws_url).port or 0), int(urlsplit(stack.bedrock_url or "").port or 0)
        logs = tmp_path_factory.mktemp("twin-logs")
        for kind, handler in (
            ("api", API_HANDLER),
            ("worker", WORKER_HANDLER),
            ("lifecycle", LIFECYCLE_HANDLER),
        ):
            env = function_environment("api" if kind == "lifecycle" else kind, *ports)  # type: ignore[arg-type]
            env["AWS_LAMBDA_FUNCTION_NAME"] = f"img2img-local-{kind}"
            proxies[kind] = TwinFunction(handler, env, task_root, logs / f"{kind}.log")
        try:
            stack.wait_healthy(timeout=60)
            yield Twin(stack, proxies, task_root)
        finally:
            for function in proxies.values():
                function.stop()
    assert sorted(p.relative_to(task_root) for p in task_root.rglob("*")) == before  # nothing written
    builder.make_writable(task_root)


def test_the_twin_answers_health_and_one_job_per_door_from_its_shipped_bytecode(twin: Twin) -> None:
    stack, functions = twin.stack, twin.functions
    api = stack.api_url
    health = load_event("apigw_get_health")
    assert functions["api"](health, stack_context("api"))["statusCode"] == 200

    image = base64.b64encode(imagegen.png(512, 512)).decode()
    body = {"text_prompts": [{"text": "A space ship."}], "init_image": image}
    sync = requests.post(f"{api}/v1/image-to-image", json=body, timeout=60)
    assert sync.status_code == 200 and sync.json()["artifacts"][0]["finishReason"] == "SUCCESS", sync.text

    queued = requests.post(f"{api}/v1/jobs", json=body, timeout=60)
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]

    stack.client("s3").put_object(
        Bucket=r.INPUT_BUCKET,
        Key="inbox/twin.png",
        Body=imagegen.png(320, 240),
        Metadata={"prompt": "a lighthouse"},
    )

    def done(job: str) -> dict[str, Any] | None:
        view: dict[str, Any] = requests.get(f"{api}/v1/jobs/{job}", timeout=10).json()
        return view if view.get("status") in ("SUCCEEDED", "FAILED", "CONTENT_FILTERED") else None

    assert wait_until(lambda: done(job_id), timeout=60)["status"] == "SUCCEEDED"
    s3 = stack.client("s3")

    def dropped() -> dict[str, Any] | None:
        try:
            return json.loads(
                s3.get_object(Bucket=r.OUTPUT_BUCKET, Key="results/twin.png.json")["Body"].read()
            )
        except s3.exceptions.NoSuchKey:
            return None

    assert wait_until(dropped, timeout=60)["status"] == "SUCCEEDED"
    calls = requests.get(f"{stack.bedrock_url}/_emulator/stats", timeout=5).json()
    assert sum(calls["by_model"].values()) == 3  # one model call per job

    # The lifecycle watch's own client (bedrock, GetFoundationModel) against the emulator.
    report = functions["lifecycle"](load_event("eventbridge_scheduled"), stack_context("lifecycle"))
    assert report and "error" not in functions["lifecycle"].facts, report

    for kind, function in functions.items():
        facts = function.facts
        assert facts["version"] == [int(n) for n in builder.PYTHON_VERSION.split(".")], kind
        assert facts["dont_write_bytecode"], kind
        assert not [p for p in facts["path"] if "site-packages" in p], (kind, facts["path"])
        assert facts["from_asset"] > 300, (kind, facts["from_asset"])  # the handler, boto3, pydantic, PIL...
        assert facts["compiled"] == [] and facts["without_bytecode"] == [], (kind, facts)


def stack_context(kind: str) -> Any:
    return new_context(f"img2img-local-{kind}", timeout_seconds=60, memory_mb=1024)
