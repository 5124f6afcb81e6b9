"""`make bench` (start-up part): what a cold start costs before the first line of a handler.

1. Cold import time of each handler module, next to a bare `import boto3`: each import runs
   in a fresh interpreter (no bytecode written, none reused from an earlier run of the same
   module in that process), several times; the table shows the median and the fastest.
   This machine's Python and CPU, not Lambda's arm64 Python 3.14: compare the rows, not the
   numbers with AWS.
2. The size of the function asset that `make asset` builds into .build/lambda/ (both
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
    args = parser.parse_args(argv)
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
