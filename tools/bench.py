"""`make bench`: what the service adds per job over the bare path of the seed's sample code.

Both paths run side by side in one process against the same local S3 (moto's server over
loopback HTTP) and the same zero-latency model stand-in (an in-process bedrock-runtime
client double that answers a fixed 1024x1024 PNG at once), so what differs is only the
service's own work: validation, image preparation, engine translation, metadata, job
records. Peak memory per job is measured in a fresh subprocess per case.

The bare path is the seed document's sample: read the file, base64 it, invoke, decode the
artifact, write the result. It cannot resize, so for the 4000x3000 JPEG it sends the JPEG as
is (a real SDXL would reject it); that is the fair floor for the time a job must take."""

from __future__ import annotations

import argparse
import base64
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from img2img.adapters.bedrock import BedrockInvoker
from img2img.adapters.jobs import JobStore
from img2img.adapters.s3 import ObjectStore
from img2img.domain.imaging import ImageLimits
from img2img.domain.job import Job, OutputKeys, SourceRef
from img2img.domain.pipeline import Pipeline
from img2img.domain.request import parse_request
from img2img_local import resources as r

MODEL = r.DEFAULT_MODEL_ID  # SD3.5 Large: what production runs
REPO = Path(__file__).resolve().parents[1]  # where `python -m tools.bench` finds `tools`


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def _jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


CASES: dict[str, Callable[[], bytes]] = {
    "png-1024x1024 (no resize)": lambda: _png((1024, 1024)),
    "jpeg-4000x3000 (resize)": lambda: _jpeg((4000, 3000)),
}


class InstantModel:
    """A bedrock-runtime client double with zero latency: always the same SD3.5 Large answer."""

    def __init__(self) -> None:
        image = base64.b64encode(_png((1024, 1024))).decode()
        self._answer = json.dumps({"seeds": [1], "finish_reasons": [None], "images": [image]}).encode()
        self.meta = SimpleNamespace(region_name=r.REGION)

    def invoke_model(self, **_: Any) -> dict[str, Any]:
        return {"body": io.BytesIO(self._answer), "ResponseMetadata": {"HTTPHeaders": {}}}


def bare_path(s3: Any, model: InstantModel, key: str, n: int) -> None:
    """The seed's sample code, with S3 in place of local files, written for SD3.5 Large."""
    data = s3.get_object(Bucket=r.INPUT_BUCKET, Key=key)["Body"].read()
    body = json.dumps(
        {
            "prompt": "A space ship., isometric style",
            "mode": "image-to-image",
            "image": base64.b64encode(data).decode("utf8"),
            "strength": 0.65,
        }
    )
    response = model.invoke_model(
        body=body, modelId=MODEL, accept="application/json", contentType="application/json"
    )
    image = base64.b64decode(json.loads(response["body"].read())["images"][0])
    s3.put_object(Bucket=r.OUTPUT_BUCKET, Key=f"bare/{n}.png", Body=image)


def service_path(pipeline: Pipeline, key: str, n: int) -> None:
    request = parse_request(
        {"text_prompts": [{"text": "A space ship."}], "init_image_s3_key": key, "style_preset": "isometric"}
    )
    job = Job(
        job_id=f"bench-{n}",
        door="api",
        request=request,
        model_id=MODEL,
        source=SourceRef(r.INPUT_BUCKET, key),
        output=OutputKeys(r.OUTPUT_BUCKET, f"bench/{n}/result", f"bench/{n}/metadata.json"),
        created_at="2026-01-01T00:00:00.000Z",
    )
    outcome = pipeline.run(job)
    if outcome.status != "SUCCEEDED":
        raise RuntimeError(f"benchmark job failed: {outcome.metadata.error}")


def _median_ms(fn: Callable[[int], None], runs: int) -> float:
    times = []
    for n in range(runs):
        start = time.perf_counter()
        fn(n)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _client(service: str, url: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=r.REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def timing(runs: int) -> list[dict[str, Any]]:
    from img2img_local.aws import create_resources, start_moto  # moto stays out of the RSS child

    server = start_moto(port=0)
    try:
        create_resources(server.url)
        s3 = _client("s3", server.url)
        model = InstantModel()
        pipeline = Pipeline(
            store=ObjectStore(s3),
            invoker=BedrockInvoker(model),
            jobs=JobStore(_client("dynamodb", server.url), r.JOBS_TABLE, 1),
            limits=ImageLimits(),
            environment="bench",
        )
        rows = []
        for name, make in CASES.items():
            key = _source_key(name)
            s3.put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=make())
            bare_path(s3, model, key, -1)  # warm both paths (imports, connections)
            service_path(pipeline, key, -1)
            bare, service = [], []
            for _ in range(3):  # interleave rounds so drift on a noisy machine hits both alike
                bare.append(_median_ms(partial(bare_path, s3, model, key), runs))
                service.append(_median_ms(partial(service_path, pipeline, key), runs))
            b, s = statistics.median(bare), statistics.median(service)
            peak, added = peak_rss_mb(name, server.url)  # the child reads the source stored above
            rows.append(
                {
                    "case": name,
                    "bare_ms": b,
                    "service_ms": s,
                    "added_ms": s - b,
                    "ratio": s / b,
                    "peak_rss_mb": peak,
                    "job_rss_mb": added,
                }
            )
        return rows
    finally:
        server.stop()


def peak_rss_mb(case: str, aws_url: str) -> tuple[float, float]:
    """Peak RSS of a fresh process (no moto server in it: it uses this one's) that runs one
    job of the case through pipeline.run, and how much the job added over the peak before."""
    out = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "tools.bench", "--rss-child", case, "--aws-url", aws_url],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    before, after = out.stdout.strip().splitlines()[-1].split()
    return float(after), float(after) - float(before)


def _high_water_mb() -> float:
    """The process's peak RSS. Not getrusage: on Linux its ru_maxrss survives exec, so a
    child started from a big parent reports the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _source_key(case: str) -> str:
    return f"uploads/bench/{case.split()[0]}"


def _rss_child(case: str, aws_url: str) -> None:
    pipeline = Pipeline(
        store=ObjectStore(_client("s3", aws_url)),
        invoker=BedrockInvoker(InstantModel()),
        jobs=JobStore(_client("dynamodb", aws_url), r.JOBS_TABLE, 1),
        limits=ImageLimits(),
        environment="bench",
    )
    before = _high_water_mb()
    service_path(pipeline, _source_key(case), 0)
    after = _high_water_mb()
    print(f"{before:.1f} {after:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="jobs per path per round (3 rounds)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--aws-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.aws_url)
        return
    print(f"pipeline.run vs the seed's bare path; median of 3 interleaved rounds x {args.runs} jobs")
    columns = ("bare ms", "service ms", "added ms", "ratio", "peak RSS MB", "job adds MB")
    print(f"{'case':28} " + " ".join(f"{c:>11}" for c in columns))
    for row in timing(args.runs):
        peak, added = row["peak_rss_mb"], row["job_rss_mb"]
        print(
            f"{row['case']:28} {row['bare_ms']:11.1f} {row['service_ms']:11.1f} {row['added_ms']:11.1f} "
            f"{row['ratio']:11.2f} {peak:11.0f} {added:11.0f}"
        )
    print("targets: added <= 50 ms for the no-resize case; peak RSS < 250 MB for the 4000x3000 JPEG")


if __name__ == "__main__":
    main()
