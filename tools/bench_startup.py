"""`make bench` (start-up part): what a cold start costs before the first line of a handler.

1. Time to first answer, as the cold-start target counts it: in a fresh interpreter, import a
   handler and call it with a real event (the api answering GET /v1/health, the worker taking
   an s3:TestEvent batch), with the environment the stack gives the function and tracing
   enabled as deployed (Lambda's variables set, POWERTOOLS_TRACE_DISABLED unset; segments go
   to a UDP address nobody listens on), next to `import boto3; boto3.client("s3")`.
   No network: the health route and a test event make no AWS calls, clients only get created.
2. Cold import time of each handler module, next to a bare `import boto3`: each import runs
   in a fresh interpreter (no bytecode written, none reused from an earlier run of the same
   module in that process), several times; the table shows the median and the fastest.
   This machine's Python and CPU, not Lambda's arm64 Python 3.14: compare the rows, not the
   numbers with AWS.
3. The size of the function asset that `make asset` builds into .build/lambda/ (both
   functions share it): unzipped against Lambda's 250 MiB limit, zipped as CDK uploads it,
   and the biggest packages in it.

    python -m tools.bench_startup [--runs 7]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSET_DIR = ROOT / ".build" / "lambda"
ASSET_STAMP = ROOT / ".build" / "lambda.sha256"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

MODULES = (
    ("import boto3 (bare)", "boto3"),
    ("img2img.handlers.api", "img2img.handlers.api"),
    ("img2img.handlers.worker", "img2img.handlers.worker"),
    ("both handlers", "img2img.handlers.api, img2img.handlers.worker"),
)

_PROBE = "import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"


def import_seconds(modules: str, runs: int) -> list[float]:
    """Seconds to import `modules` in `runs` fresh interpreters (bytecode compiled beforehand,
    as it is in a deployed asset, by one warm-up run)."""
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
    times = []
    for n in range(runs + 1):
        out = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", _PROBE.format(modules=modules)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        if n:  # the first run may compile bytecode
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


EVENTS = ROOT / "tests" / "events"
FIRST_ANSWERS = (
    ("import boto3; client('s3')", None, None),
    ("api: GET /v1/health", "img2img.handlers.api", "apigw_get_health.json"),
    ("worker: s3:TestEvent", "img2img.handlers.worker", "sqs_s3_test_event.json"),
)
# SnapStart (cdk.json `snapstart: true`): the snapshot holds the imported handler module and what
# wiring.prime built; a restored environment pays Lambda's restore (its REPORT line's Restore
# Duration, not measurable here) plus what these rows time.
PRIMED = " (SnapStart, primed)"
# The clock starts after the event is read and the context built (the runtime's work, not the
# function's) and stops when the handler returns its answer.
_BASELINE = (
    "import time; t = time.perf_counter(); import boto3; boto3.client('s3'); print(time.perf_counter() - t)"
)
_FIRST_ANSWER = """
import json, sys, time, types
event = json.load(open({event!r}))
context = types.SimpleNamespace(
    function_name={name!r}, memory_limit_in_mb="1024", function_version="$LATEST",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:" + {name!r},
    aws_request_id="8f5e4c1a-0b7d-4e2a-9c3f-1d2e3f4a5b6c",
    get_remaining_time_in_millis=lambda: 29000,
)
if {primed!r}:  # what a SnapStart snapshot holds: the module imported, wiring.prime run
    from {module} import handler
    from img2img.handlers.wiring import prime
    prime()
t = time.perf_counter()
from {module} import handler
answer = handler(event, context)
elapsed = time.perf_counter() - t
assert answer.get("statusCode", 200) == 200 and not answer.get("batchItemFailures"), answer
print(elapsed)
"""


def deployed_environment(function: str) -> dict[str, str]:
    """What the stack sets for `function` (infra/functions.py, with local mode's names and
    values) and what Lambda sets for a function with active tracing, minus endpoints: nothing
    is called. POWERTOOLS_TRACE_DISABLED is unset, as deployed."""
    from img2img_local.runner import function_environment

    env = {
        key: value
        for key, value in {**os.environ, **function_environment(function, 4566, 4567)}.items()
        # The asset ships bytecode: let the warm-up run write ours (`make` forbids it).
        if not key.startswith("AWS_ENDPOINT_URL")
        and key not in ("POWERTOOLS_TRACE_DISABLED", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"img2img-dev-{function}",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
            "_X_AMZN_TRACE_ID": "Root=1-6743a1f0-0d3a5c7e9b1f2a4c6e8d0b2a;Parent=53995c3f42cd8ad8;Sampled=1",
            # Active tracing: Lambda's X-Ray daemon address; here a port nobody listens on (UDP).
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
    )
    return env


def first_answer_seconds(
    module: str | None, event: str | None, runs: int, *, warm_up: bool = True, primed: bool = False
) -> list[float]:
    """Seconds from a fresh interpreter's first import to `module`'s handler answering `event`
    (or to a bare boto3 S3 client), in `runs` fresh interpreters (after one warm-up run)."""
    function = "worker" if module and module.endswith("worker") else "api"
    env = deployed_environment(function)
    if module is None:
        code = _BASELINE
    else:
        code = _FIRST_ANSWER.format(
            event=str(EVENTS / str(event)), name=env["AWS_LAMBDA_FUNCTION_NAME"], module=module, primed=primed
        )
    times = []
    for n in range(runs + warm_up):
        out = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env
        )
        if out.returncode:
            raise RuntimeError(f"{module or 'boto3'} did not answer:\n{out.stderr[-3000:]}")
        if n or not warm_up:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def first_answer_report(runs: int) -> list[str]:
    """Interleaved rounds (one run of each row per round) so that load from other processes
    falls on every row alike; medians, min-max and the ratio to the boto3 baseline. The primed
    rows are what a SnapStart restore resumes: the import and wiring.prime done before the clock."""
    rows = [(label, module, event, False) for label, module, event in FIRST_ANSWERS]
    rows += [(label + PRIMED, module, event, True) for label, module, event in FIRST_ANSWERS[1:]]
    samples: dict[str, list[float]] = {row[0]: [] for row in rows}
    for _label, module, event, primed in rows:  # warm-up: bytecode, disk cache
        first_answer_seconds(module, event, 1, primed=primed)
    for _ in range(runs):
        for label, module, event, primed in rows:
            samples[label] += first_answer_seconds(module, event, 1, warm_up=False, primed=primed)
    lines = [
        f"time to first answer, {runs} fresh interpreters each, tracing on as deployed",
        f"{'':40} {'median ms':>10} {'min-max ms':>14} {'vs boto3':>10}",
    ]
    baseline = statistics.median(samples[FIRST_ANSWERS[0][0]])
    for label, times in samples.items():
        median = statistics.median(times)
        spread = f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f}"
        lines.append(f"{label:40} {median * 1000:10.0f} {spread:>14} {median / baseline:9.3f}x")
    return lines


def asset_report(asset_dir: Path = ASSET_DIR) -> list[str]:
    if not asset_dir.is_dir():
        return ["function asset: not built; run make asset"]
    files = [p for p in asset_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            archive.write(path, path.relative_to(asset_dir).as_posix())
    by_package: Counter[str] = Counter()
    for path in files:
        top = path.relative_to(asset_dir).parts[0]
        by_package[top.split("-")[0] if top.endswith(".dist-info") else top] += path.stat().st_size
    stale = ""
    try:
        from infra.asset import asset_hash

        if ASSET_STAMP.is_file() and ASSET_STAMP.read_text().strip() != asset_hash():
            stale = " (stale: sources changed since it was built; make asset rebuilds it)"
    except ImportError:
        pass
    lines = [
        f"function asset {asset_dir.relative_to(ROOT)}{stale}",
        f"  unzipped   {unzipped / 2**20:8.1f} MiB in {len(files)} files "
        f"({unzipped / LAMBDA_UNZIPPED_LIMIT:.0%} of Lambda's 250 MiB)",
        f"  zipped     {len(buffer.getvalue()) / 2**20:8.1f} MiB (deflate, as CDK uploads it)",
        "  largest    " + ", ".join(f"{name} {size / 2**20:.1f}" for name, size in by_package.most_common(6)),
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per module")
    parser.add_argument(
        "--first-answer-only", action="store_true", help="skip the import table and the asset"
    )
    args = parser.parse_args(argv)
    for line in first_answer_report(args.runs):
        print(line, flush=True)
    if args.first_answer_only:
        return
    print(f"cold import, {args.runs} fresh interpreters each (Python {sys.version.split()[0]} here)")
    print(f"{'module':28} {'median ms':>10} {'min ms':>10} {'vs boto3':>10}")
    baseline = 0.0
    for label, modules in MODULES:
        times = import_seconds(modules, args.runs)
        median = statistics.median(times) * 1000
        baseline = baseline or median
        print(f"{label:28} {median:10.0f} {min(times) * 1000:10.0f} {median / baseline:9.1f}x", flush=True)
    for line in asset_report():
        print(line)


if __name__ == "__main__":
    main()
