"""`make bench` (load part): local-mode throughput for N images dropped at once under inbox/,
with the Bedrock emulator answering after 0 ms and after 2000 ms.

Local mode runs one SQS poller in its own process; Lambda runs one function instance per
concurrent batch, each a separate process. Extra workers are therefore extra processes
(img2img_local.workers), each polling the same queue with the real worker handler, as the
event source mapping's concurrency would. Time is counted from the first upload to the last
metadata JSON; every image must end SUCCEEDED with one model call.

    python -m tools.bench_load                     # the default table
    python -m tools.bench_load --images 100 --runs 0:1,0:8,2000:8   # latency_ms:workers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from img2img_local import resources as r
from img2img_local.workers import worker_processes

DEFAULT_RUNS = ((0, 1), (0, 8), (2000, 8))
PREFIX = "inbox/bench-load/"


# --- one measured run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    latency_ms: int
    workers: int
    images: int
    seconds: float
    succeeded: int
    model_calls: int

    @property
    def per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def _stats(bedrock_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{bedrock_url}/_emulator/stats", timeout=10) as reply:
        data: dict[str, Any] = json.loads(reply.read())
        return data


def _image(n: int) -> bytes:
    """A small distinct photo-like PNG (the service scales it to 1024x1024)."""
    import io

    from PIL import Image

    picture = Image.effect_mandelbrot((256, 192), (-2.0 + n / 1000, -1.2, 0.8, 1.2), 48).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def run_load(images: int, latency_ms: int, workers: int, *, timeout: float = 900) -> LoadResult:
    """Start local mode, drop `images` images at once, wait for every metadata JSON."""
    from img2img_local.runner import start_local

    with start_local(
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        bedrock_faults={"latency_ms": latency_ms},
        queue_settings=r.QueueSettings(visibility_timeout_seconds=300),
    ) as stack:
        stack.wait_healthy()
        s3 = stack.client("s3")
        bodies = [_image(n) for n in range(images)]
        with worker_processes(stack.env, workers - 1):
            time.sleep(3 if workers > 1 else 0)  # let the extra workers start polling
            before = _stats(str(stack.bedrock_url))["invocations"]
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda n: s3.put_object(
                            Bucket=r.INPUT_BUCKET,
                            Key=f"{PREFIX}{n:04d}.png",
                            Body=bodies[n],
                            Metadata={"prompt": "a watercolour of a harbour"},
                        ),
                        range(images),
                    )
                )
            statuses = _wait_for_metadata(s3, images, started + timeout)
            seconds = time.perf_counter() - started
            calls = _stats(str(stack.bedrock_url))["invocations"] - before
    return LoadResult(
        latency_ms=latency_ms,
        workers=workers,
        images=images,
        seconds=seconds,
        succeeded=sum(1 for s in statuses.values() if s == "SUCCEEDED"),
        model_calls=calls,
    )


def _wait_for_metadata(s3: Any, images: int, deadline: float) -> dict[str, str]:
    statuses: dict[str, str] = {}
    lock = threading.Lock()
    while True:
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=r.OUTPUT_BUCKET, Prefix="results/bench-load/"
            )
            for o in page.get("Contents", [])
            if o["Key"].endswith(".json") and o["Key"] not in statuses
        ]
        for key in keys:
            status = json.loads(s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=key)["Body"].read())["status"]
            with lock:
                statuses[key] = status
        if len(statuses) >= images:
            return statuses
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(statuses)} of {images} images finished before the deadline")
        time.sleep(0.2)


def _parse_runs(text: str) -> list[tuple[int, int]]:
    runs = []
    for part in text.split(","):
        latency, _, workers = part.partition(":")
        runs.append((int(latency), int(workers or 1)))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument(
        "--runs",
        type=_parse_runs,
        default=list(DEFAULT_RUNS),
        help="comma list of LATENCY_MS:WORKERS (default 0:1,0:8,2000:8)",
    )
    args = parser.parse_args(argv)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    print(f"local-mode throughput: {args.images} images dropped at once under inbox/ (2 cores here)")
    columns = ("latency ms", "workers", "images", "seconds", "images/s", "succeeded", "model calls")
    print(" ".join(f"{c:>11}" for c in columns))
    failed = False
    for latency, workers in args.runs:
        with _quiet():
            result = run_load(args.images, latency, workers)
        print(
            f"{result.latency_ms:11d} {result.workers:11d} {result.images:11d} {result.seconds:11.1f} "
            f"{result.per_second:11.2f} {result.succeeded:11d} {result.model_calls:11d}",
            flush=True,
        )
        failed |= result.succeeded != result.images or result.model_calls != result.images
    print("every image must end SUCCEEDED with exactly one model call")
    if failed:
        raise SystemExit("a run lost an image or made a duplicate model call")


@contextmanager
def _quiet() -> Iterator[None]:
    """The functions log one JSON line per job to stdout: keep the table readable."""
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


if __name__ == "__main__":
    main()
