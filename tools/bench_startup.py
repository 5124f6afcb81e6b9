"""`make bench` (start-up part): what a cold start costs before the first line of a handler,
measured on what ships.

1. Time to first answer, as the cold-start target counts it, on the asset as deployed: its twin
   for this machine's architecture (infra/asset.py build_twin: same requirements, pins, pruning
   and bytecode), copied read-only, imported by the runtime's Python in a fresh interpreter with
   only the asset on its path and only the bytecode the asset ships (-S -P -B, PYTHONPATH; the
   twin test checks nothing is compiled at import). Rows: `import boto3; boto3.client("s3")`
   from the same asset (the yardstick: boto3 with its bytecode), the api answering GET
   /v1/health and the worker taking an s3:TestEvent batch, with the environment the stack gives
   the function and tracing enabled as deployed (Lambda's variables set,
   POWERTOOLS_TRACE_DISABLED unset; segments go to a UDP address nobody listens on); and the
   same primed, as a SnapStart snapshot holds them; and each function's floor: the modules it
   loaded that are not ours, and the clients it built, without our code. With --instructions,
   each row's instructions too (callgrind: steady on a busy machine). No network: the health
   route and a test event make no AWS calls, clients only get created. This machine's CPU, not
   Lambda's arm64: compare the rows, not the numbers with AWS.
2. With --profile, `-X importtime` of each function's first answer: the imports that cost most.
3. The size of the function asset that `make asset` builds into .build/lambda/ (all functions
   share it): unzipped against the 40 MiB target and Lambda's 250 MiB limit, zipped as CDK
   uploads it, and the biggest packages in it.

    python -m tools.bench_startup [--runs 7] [--profile] [--instructions]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from infra import asset as builder

ROOT = Path(__file__).resolve().parents[1]
ASSET_TARGET = 40 * 1024 * 1024  # issue #21
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
# The same function's packages and boto3 clients without our code (_FLOOR): what the target
# leaves for img2img's own modules is the row above less this one.
FLOOR = ": its packages and clients alone"
# The clock starts after the event is read and the context built (the runtime's work, not the
# function's) and stops when the handler returns its answer.
# Each probe prints wall and CPU seconds: on a loaded machine the CPU time is the steadier figure.
_BASELINE = (
    "import time; t, c = time.perf_counter(), time.process_time(); import boto3; boto3.client('s3'); "
    "print(time.perf_counter() - t, time.process_time() - c)"
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
t, c = time.perf_counter(), time.process_time()
from {module} import handler
answer = handler(event, context)
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
assert answer.get("statusCode", 200) == 200 and not answer.get("batchItemFailures"), answer
print(elapsed, cpu)
if {inventory!r}:  # what the floor row loads: every module but ours, and the clients built
    from img2img.handlers.wiring import get_service
    clients = vars(get_service(sync={module!r}.endswith("api")).clients).values()
    with open({inventory!r}, "w") as out:
        json.dump({{
            "modules": [name for name in sys.modules if name.split(".")[0] != "img2img"],
            "clients": [client.meta.service_model.service_name for client in clients],
        }}, out)
"""
# The floor: the same function's packages (every module it loaded but ours, in the order it
# loaded them: Powertools, pydantic, botocore, Pillow, the standard library) and the same boto3
# clients, without a line of img2img. What the chosen packages cost before our code starts.
_FLOOR = """
import importlib, json, sys, time
inventory = json.load(open({inventory!r}))
t, c = time.perf_counter(), time.process_time()
for name in inventory["modules"]:
    try:
        importlib.import_module(name)
    except Exception:  # a module that only its package may import first (genericpath before os)
        pass
missing = [name for name in inventory["modules"] if name not in sys.modules]
assert not missing, f"the floor could not load {{missing[:10]}}"
import boto3
session = boto3.session.Session()
for service in inventory["clients"]:
    session.client(service)
print(time.perf_counter() - t, time.process_time() - c)
"""


def deployed_environment(function: str, task_root: Path) -> dict[str, str]:
    """What the stack sets for `function` (infra/functions.py, with local mode's names and
    values) and what Lambda sets for a function with active tracing, minus endpoints: nothing
    is called. POWERTOOLS_TRACE_DISABLED is unset, as deployed; the asset is the only path."""
    from img2img_local.runner import function_environment

    env = {
        key: value
        for key, value in function_environment(function, 4566, 4567).items()
        if not key.startswith("AWS_ENDPOINT_URL") and key != "POWERTOOLS_TRACE_DISABLED"
    }
    env.update(
        {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(task_root),
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_FUNCTION_NAME": f"img2img-dev-{function}",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{builder.PYTHON_VERSION}",
            "_X_AMZN_TRACE_ID": "Root=1-6743a1f0-0d3a5c7e9b1f2a4c6e8d0b2a;Parent=53995c3f42cd8ad8;Sampled=1",
            # Active tracing: Lambda's X-Ray daemon address; here a port nobody listens on (UDP).
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
    )
    return env


def _run(
    task_root: Path,
    module: str | None,
    event: str | None,
    *,
    kind: str = "answer",
    inventory: str = "",
    flags: tuple[str, ...] = (),
    wrapper: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """One fresh interpreter, as Lambda's runtime starts: the read-only asset is its only path.
    `kind`: "answer" (writing the `inventory` of what it loaded, if one is named), "primed",
    "floor" (loading that inventory's packages and clients only) or "empty" (the interpreter)."""
    function = "worker" if module and module.endswith("worker") else "api"
    env = deployed_environment(function, task_root)
    if kind == "empty":
        code = "pass"
    elif module is None:
        code = _BASELINE
    elif kind == "floor":
        code = _FLOOR.format(inventory=inventory)
    else:
        code = _FIRST_ANSWER.format(
            event=str(EVENTS / str(event)),
            name=env["AWS_LAMBDA_FUNCTION_NAME"],
            module=module,
            primed=kind == "primed",
            inventory=inventory,
        )
    out = subprocess.run(  # noqa: S603 - the runtime's Python (.venv's 3.13), our own code
        [*wrapper, sys.executable, *builder.ISOLATED_FLAGS, *flags, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=task_root,
    )
    if out.returncode:
        raise RuntimeError(f"{module or 'boto3'} did not answer:\n{out.stderr[-3000:]}")
    return out


# Instructions executed, counted by valgrind's callgrind: the same count whatever else the machine
# runs, so the steadiest ratio here; it covers the whole process (the interpreter's own start,
# reading the event), and a primed row's process imports before its clock starts, so it has none.
_CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(out: subprocess.CompletedProcess[str]) -> int:
    found = _COLLECTED.search(out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind counted nothing:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def first_answer_report(task_root: Path, runs: int, *, instructions: bool = False) -> list[str]:
    """Interleaved rounds (one run of each row per round) so that load from other processes
    falls on every row alike; medians, min-max and the ratio to the boto3 yardstick. The primed
    rows are what a SnapStart restore resumes: the import and wiring.prime done before the clock.
    CPU time next to wall time: other processes on a shared machine stretch the wall clock only.
    `instructions`: each row but the primed ones once more under callgrind (about 30 s a row)."""
    rows = [(label, module, event, "answer") for label, module, event in FIRST_ANSWERS]
    rows += [(label + PRIMED, module, event, "primed") for label, module, event in FIRST_ANSWERS[1:]]
    rows += [
        (label.split(":")[0] + FLOOR, module, event, "floor") for label, module, event in FIRST_ANSWERS[1:]
    ]
    samples: dict[str, list[tuple[float, float]]] = {row[0]: [] for row in rows}
    with tempfile.TemporaryDirectory(prefix="img2img-inventory-") as inventories:
        for _label, module, event, kind in rows:  # warm-up: the disk cache (no bytecode is written)
            # The answer writes what it loaded (a primed run loads more: Pillow's every plugin).
            inventory = str(Path(inventories) / f"{module}.json") if module and kind != "primed" else ""
            _run(task_root, module, event, kind=kind, inventory=inventory)
        for _ in range(runs):
            for label, module, event, kind in rows:
                inventory = str(Path(inventories) / f"{module}.json") if kind == "floor" else ""
                out = _run(task_root, module, event, kind=kind, inventory=inventory)
                wall_s, cpu_s = out.stdout.strip().splitlines()[-1].split()
                samples[label].append((float(wall_s), float(cpu_s)))
        counted: dict[str, int] = {}
        interpreter = 0
        if instructions and shutil.which(_CALLGRIND[0]) is None:
            print("no valgrind on PATH: no instruction counts (Debian: apt-get install valgrind)", flush=True)
            instructions = False
        if instructions:  # the interpreter's own start, which the clocks above do not see
            interpreter = _instructions(_run(task_root, None, None, kind="empty", wrapper=_CALLGRIND))
        for label, module, event, kind in rows if instructions else ():
            if kind != "primed":
                inventory = str(Path(inventories) / f"{module}.json") if kind == "floor" else ""
                out = _run(task_root, module, event, kind=kind, inventory=inventory, wrapper=_CALLGRIND)
                counted[label] = _instructions(out) - interpreter
    lines = [
        f"time to first answer, {runs} fresh interpreters each, Python {sys.version.split()[0]}, "
        "the read-only twin of the asset, tracing on as deployed"
        + (f"; instructions less the interpreter's own start ({interpreter / 1e6:.0f} M)" if counted else ""),
        f"{'':44} {'median ms':>10} {'min-max ms':>14} {'vs boto3':>10} {'CPU ms':>8} {'vs boto3':>10}"
        + (f" {'M instr.':>9} {'vs boto3':>10}" if counted else ""),
    ]
    yardstick = samples[FIRST_ANSWERS[0][0]]
    wall_base = statistics.median(w for w, _ in yardstick)
    cpu_base = statistics.median(c for _, c in yardstick)
    instr_base = counted.get(FIRST_ANSWERS[0][0], 0)
    for label, times in samples.items():
        wall = [w for w, _ in times]
        cpu = statistics.median(c for _, c in times)
        spread = f"{min(wall) * 1000:.0f}-{max(wall) * 1000:.0f}"
        lines.append(
            f"{label:44} {statistics.median(wall) * 1000:10.0f} {spread:>14} "
            f"{statistics.median(wall) / wall_base:9.3f}x {cpu * 1000:8.0f} {cpu / cpu_base:9.3f}x"
            + (
                f" {counted[label] / 1e6:9.0f} {counted[label] / instr_base:9.3f}x"
                if label in counted
                else ""
            )
        )
    return lines


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def import_profile(task_root: Path, top: int = 10) -> list[str]:
    """`-X importtime` of each function's first answer: import time (each module's own, summed
    by top-level package) and the costliest single modules."""
    lines = []
    for label, module, event in FIRST_ANSWERS[1:]:
        out = _run(task_root, module, event, flags=("-X", "importtime"))
        own = {name: int(self_us) for self_us, name in _IMPORTTIME.findall(out.stderr)}
        packages: Counter[str] = Counter()
        for name, self_us in own.items():
            packages[name.split(".")[0]] += self_us
        lines.append(
            f"-X importtime, {label}: {sum(own.values()) / 1000:.0f} ms importing; own ms by package:"
        )
        lines.append("  " + ", ".join(f"{n} {us / 1000:.0f}" for n, us in packages.most_common(top)))
        costliest = sorted(own.items(), key=lambda item: -item[1])[:top]
        lines.append("  costliest modules: " + ", ".join(f"{n} {us / 1000:.0f}" for n, us in costliest))
    return lines


def asset_report() -> list[str]:
    asset_dir = builder.build_asset().path  # a no-op when nothing changed
    files = [p for p in asset_dir.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            archive.write(path, path.relative_to(asset_dir).as_posix())
    by_package: Counter[str] = Counter()
    for path in files:
        top = path.relative_to(asset_dir).parts[0]
        by_package[top.split("-")[0] if top.endswith(".dist-info") else top] += path.stat().st_size
    lines = [
        f"function asset {asset_dir.relative_to(ROOT)}, "
        f"python{builder.PYTHON_VERSION} {builder.ARCHITECTURE}",
        f"  unzipped   {unzipped / 2**20:8.1f} MiB in {len(files)} files, bytecode included "
        f"(target <= {ASSET_TARGET / 2**20:.0f} MiB; {unzipped / builder.LAMBDA_UNZIPPED_LIMIT_BYTES:.0%} "
        "of Lambda's 250 MiB)",
        f"  zipped     {len(buffer.getvalue()) / 2**20:8.1f} MiB (deflate, as CDK uploads it)",
        "  largest    " + ", ".join(f"{name} {size / 2**20:.1f}" for name, size in by_package.most_common(6)),
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per row")
    parser.add_argument("--profile", action="store_true", help="also -X importtime of each function")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each row's instructions (valgrind's callgrind)",
    )
    args = parser.parse_args(argv)
    twin = builder.build_twin()
    with tempfile.TemporaryDirectory(prefix="img2img-twin-") as scratch:
        task_root = builder.read_only_copy(twin.path, Path(scratch) / "task")
        try:
            for line in first_answer_report(task_root, args.runs, instructions=args.instructions):
                print(line, flush=True)
            if args.profile:
                for line in import_profile(task_root):
                    print(line, flush=True)
        finally:
            builder.make_writable(task_root)
    for line in asset_report():
        print(line)


if __name__ == "__main__":
    main()
