"""`make bench`: what the S3 door's worker adds per job over the bare path of the seed's sample.

Both paths run side by side, interleaved job by job, over loopback HTTP to the same moto server
(S3, SQS, DynamoDB) and the same instant InvokeModel stand-in (a tiny HTTP server that answers
SD3.5 Large's documented answer shape with a fixed 1024x1024 PNG at once). Those two servers
live in a child process of their own, so the figures hold the client side's work only.

- service: the real worker handler (img2img.handlers.worker.handler) end to end, in a function
  process of its own as on Lambda, imported from the asset's twin (what ships, with its pinned
  and pruned packages): an SQS event wrapping the S3 notification of an image
  dropped under inbox/ (received from the queue and wrapped as local mode's poller does), in;
  the result image and its metadata JSON in the output bucket, out. Each job is a new object
  version, so each is a new job, never a replay. The metadata is checked against the result.
- bare: the seed document's sample code over the same services: read the source, base64 it,
  InvokeModel, decode the artifact, write the result and a small metadata JSON. It cannot
  resize, so for the 4000x3000 JPEG it sends the JPEG as it is (a real model would refuse it):
  that is the floor for the time a job must take.
- pipeline.run: the domain alone (an API-door job, the model an in-process double): what the
  benchmark reported before it measured the handler.

`--compare DIR` times a second copy of the package (another revision) in a second function
process, job by job beside the first: on a noisy machine, the only fair before/after.
Peak memory is measured in a fresh function process per case running one job. `--profile`
runs the measured jobs' handler calls under cProfile and prints, per case, the top functions
by cumulative and by own time to stderr (the timings then include the profiler's overhead)."""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from img2img_local import resources as r
from infra.asset import build_twin

MODEL = r.DEFAULT_MODEL_ID  # SD3.5 Large: what production runs
REPO = Path(__file__).resolve().parents[1]  # where `python -m tools.bench` finds `tools`
PROMPT, STYLE = "A space ship.", "isometric"
SOURCES = "uploads/bench/"  # the bare path's sources: under no prefix that starts jobs


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def _jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _smooth(size: tuple[int, int], fmt: str, **options: Any) -> bytes:
    """A large picture that still fits the byte cap: gradients compress well."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = red.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(out, fmt, **options)
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    extension: str
    timed: bool = True  # False: peak memory only (the largest sources the caps admit)


CASES = (
    Case("png-1024x1024 (no resize)", lambda: _png((1024, 1024)), "png"),
    Case("jpeg-4000x3000 (fit)", lambda: _jpeg((4000, 3000)), "jpg"),
    # The caps: 50 megapixels (20 MB), WebP 25 megapixels (libwebp holds the whole canvas).
    Case("png-7071x7071 (pixel cap)", lambda: _smooth((7071, 7071), "PNG", compress_level=9), "png", False),
    Case("webp-5000x5000 (WebP cap)", lambda: _smooth((5000, 5000), "WEBP", quality=80), "webp", False),
)


# --- the servers: moto and the instant model, in a child process ------------------------------


def model_answer() -> bytes:
    """SD3.5 Large's answer (tests/fixtures/bedrock/sd3-5-large.json): one PNG, its seed, no
    finish reason on success."""
    image = base64.b64encode(_png((1024, 1024))).decode()
    return json.dumps({"seeds": [1], "finish_reasons": [None], "images": [image]}).encode()


class _InstantModel(BaseHTTPRequestHandler):
    """POST /model/<id>/invoke: reads the body, answers at once. HTTP/1.1 keeps the
    connection open, as Bedrock's does."""

    protocol_version = "HTTP/1.1"
    answer = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *_: Any) -> None:
        pass


def serve() -> None:
    """Start moto (with local mode's resources) and the instant model; print both URLs; serve
    until stdin closes."""
    from img2img_local.aws import create_resources, start_moto

    moto = start_moto(port=0)
    create_resources(moto.url)
    _InstantModel.answer = model_answer()
    model = ThreadingHTTPServer((r.DEFAULT_HOST, 0), _InstantModel)
    model.daemon_threads = True
    threading.Thread(target=model.serve_forever, daemon=True).start()
    print(moto.url, f"http://{r.DEFAULT_HOST}:{model.server_address[1]}", flush=True)
    sys.stdin.read()


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.bench", "--serve"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        aws_url, model_url = child.stdout.readline().split()
        yield aws_url, model_url
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)


def use_local_environment(aws_url: str, model_url: str) -> None:
    """What local mode gives the worker function: every setting the stack sets, the endpoints."""
    from img2img_local.runner import function_environment

    aws_port, model_port = int(aws_url.rsplit(":", 1)[1]), int(model_url.rsplit(":", 1)[1])
    os.environ.update(function_environment("worker", aws_port, model_port))


def client(service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service)  # endpoints and credentials from the environment


# --- the two paths ---------------------------------------------------------------------------


class Bare:
    """The seed's sample code, with S3 in place of local files, written for SD3.5 Large."""

    def __init__(self) -> None:
        self.s3, self.model = client("s3"), client("bedrock-runtime")

    def __call__(self, key: str, n: int) -> None:
        data = self.s3.get_object(Bucket=r.INPUT_BUCKET, Key=key)["Body"].read()
        body = json.dumps(
            {
                "prompt": f"{PROMPT}, {STYLE} style",
                "mode": "image-to-image",
                "image": base64.b64encode(data).decode("utf8"),
                "strength": 0.65,
            }
        )
        response = self.model.invoke_model(
            body=body, modelId=MODEL, accept="application/json", contentType="application/json"
        )
        answer = json.loads(response["body"].read())
        image = base64.b64decode(answer["images"][0])
        self.s3.put_object(Bucket=r.OUTPUT_BUCKET, Key=f"bare/{n}.png", Body=image)
        metadata = {"source": key, "seed": answer["seeds"][0], "bytes": len(image)}
        self.s3.put_object(Bucket=r.OUTPUT_BUCKET, Key=f"bare/{n}.json", Body=json.dumps(metadata).encode())


class Dropper:
    """Drops a source under inbox/ and answers the SQS event Lambda would deliver for it: the
    queue's own message (S3's notification, as moto sends it) wrapped as local mode's poller
    wraps it. Cleans up after each job so the servers' memory stays flat."""

    def __init__(self, data: bytes, extension: str) -> None:
        self.s3, self.sqs = client("s3"), client("sqs")
        self.queue_url = self.sqs.get_queue_url(QueueName=r.JOBS_QUEUE)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.data, self.extension = data, extension
        self._drain()

    def drop(self, n: int) -> tuple[dict[str, Any], str, str]:
        from img2img_local.poller import to_lambda_record

        key = f"inbox/bench/{n}.{self.extension}"
        put = self.s3.put_object(
            Bucket=r.INPUT_BUCKET, Key=key, Body=self.data, Metadata={"prompt": PROMPT, "style-preset": STYLE}
        )
        while True:
            for message in self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=5,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                if put["VersionId"] in message["Body"]:
                    return {"Records": [to_lambda_record(message, self.queue_arn)]}, key, put["VersionId"]

    def clean(self, key: str, version_id: str) -> None:
        self.s3.delete_object(Bucket=r.INPUT_BUCKET, Key=key, VersionId=version_id)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=r.OUTPUT_BUCKET):
            for obj in page.get("Contents", []):
                self.s3.delete_object(Bucket=r.OUTPUT_BUCKET, Key=obj["Key"])

    def _drain(self) -> None:
        while self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            pass  # s3:TestEvent and leftovers: received, then left to their visibility timeout


class FunctionProcess:
    """The worker function in a process of its own, as on Lambda: it builds the service once,
    then runs the real handler on each SQS event sent to it and answers how long the handler
    took, the AWS calls it made and its peak RSS before and after. The function and its
    packages come from the asset as it ships (its twin for this machine: the same pins, pruning
    and bytecode; infra/asset.py), first on the path; `tree` puts another copy of the img2img
    package before it (--compare: two versions, timed job by job)."""

    def __init__(self, tree: str | None = None) -> None:
        env = dict(os.environ)
        shipped = str(build_twin().path)  # a no-op when nothing changed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (tree, shipped, env.get("PYTHONPATH"))))
        env["LAMBDA_TASK_ROOT"] = shipped  # as Lambda sets it (the X-Ray SDK then makes no sampling client)
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tools.bench", "--function-process"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, event: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
        """`profile`: the case under whose name the child profiles this job (--profile)."""
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps({"event": event, "profile": profile}) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the function process ended")
        reply: dict[str, Any] = json.loads(line)
        if reply["response"] != {"batchItemFailures": []}:
            raise RuntimeError(f"benchmark job failed: {reply['response']}")
        return reply

    def close(self) -> None:
        if self._child.stdin:
            self._child.stdin.close()
        self._child.wait(timeout=30)


def function_process() -> None:
    """The child side of FunctionProcess: one JSON event a line in, one JSON reply a line out.
    The handler's own output (JSON logs, EMF metrics) goes to /dev/null, written all the same.
    Jobs sent with a profile name run under that case's cProfile, printed to stderr at the end."""
    replies = os.fdopen(os.dup(1), "w")
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
    from img2img.handlers import worker
    from img2img.handlers.wiring import get_service
    from img2img_local.lambda_context import new_context

    # What ships, not the source tree (--compare's copy aside): FunctionProcess's path says so.
    assert not Path(worker.__file__).is_relative_to(REPO / "functions"), worker.__file__

    get_service(sync=False)
    calls = CallCounter.everywhere()
    profiles: dict[str, cProfile.Profile] = {}
    jobs: Counter[str] = Counter()
    for line in sys.stdin:
        message = json.loads(line)
        event, name = message["event"], message["profile"]
        profiler = profiles.setdefault(name, cProfile.Profile()) if name else None
        jobs[name] += 1
        context = new_context(
            r.WORKER_FUNCTION_NAME, timeout_seconds=r.WORKER_TIMEOUT_SECONDS, memory_mb=r.WORKER_MEMORY_MB
        )
        before = _high_water_mb()
        start, cpu = time.perf_counter(), time.process_time()
        response = (
            profiler.runcall(worker.handler, event, context) if profiler else worker.handler(event, context)
        )
        elapsed = (time.perf_counter() - start) * 1000
        reply = {
            "ms": elapsed,
            "cpu_ms": (time.process_time() - cpu) * 1000,  # the function process's own CPU
            "response": response,
            "calls": calls.take(),
            "rss_before_mb": before,
            "rss_after_mb": _high_water_mb(),
        }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    for index, (name, profiler) in enumerate(profiles.items()):
        saved = Path(tempfile.gettempdir(), f"bench-profile-{os.getpid()}-{index}.prof")
        profiler.dump_stats(saved)  # for pstats' callers/callees, or snakeviz
        stats = pstats.Stats(profiler, stream=sys.stderr)
        for order in ("cumulative", "tottime"):
            print(f"\n=== {name}: {jobs[name]} jobs, by {order} time (all: {saved}) ===", file=sys.stderr)
            stats.sort_stats(order).print_stats(25)


class Service:
    """One S3-door job through a function process: dropped, run, checked, cleaned up."""

    def __init__(self, function: FunctionProcess, dropper: Dropper) -> None:
        self.function, self.dropper = function, dropper
        self.s3 = client("s3")

    def __call__(self, n: int, profile: str | None = None) -> dict[str, Any]:
        event, key, version_id = self.dropper.drop(n)
        reply = self.function.run(event, profile)
        metadata_key = f"results/bench/{n}.{self.dropper.extension}.json"
        meta = json.loads(self.s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=metadata_key)["Body"].read())
        if meta["status"] != "SUCCEEDED":
            raise RuntimeError(f"benchmark job failed: {meta.get('error')}")
        image = self.s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=meta["result"]["key"])["Body"].read()
        result = meta["result"]
        if hashlib.sha256(image).hexdigest() != result["sha256"] or len(image) != result["bytes"]:
            raise RuntimeError("the metadata does not describe the stored result")
        self.dropper.clean(key, version_id)
        return reply


class InProcessModel:
    """A bedrock-runtime client double with zero latency, for the pipeline.run figure."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self.meta = SimpleNamespace(region_name=r.REGION)

    def invoke_model(self, **_: Any) -> dict[str, Any]:
        return {"body": io.BytesIO(self._answer), "ResponseMetadata": {"HTTPHeaders": {}}}


def _undelivered(code: str) -> None:
    raise RuntimeError(f"local mode's EventBridge refused the job's event ({code})")


class PipelineRun:
    """pipeline.run alone (an API-door job), the model an in-process double."""

    def __init__(self) -> None:
        from img2img.adapters.bedrock import BedrockInvoker
        from img2img.adapters.events import EventBridgeJobEvents
        from img2img.adapters.jobs import JobStore
        from img2img.adapters.s3 import ObjectStore
        from img2img.domain.imaging import ImageLimits
        from img2img.domain.pipeline import Pipeline
        from img2img.engines import engine_for

        self.pipeline = Pipeline(
            store=ObjectStore(client("s3")),
            invoker=BedrockInvoker(InProcessModel(model_answer())),
            jobs=JobStore(client("dynamodb"), r.JOBS_TABLE, 1),
            engines=engine_for,
            events=EventBridgeJobEvents(client("events"), r.EVENT_BUS, on_undelivered=_undelivered),
            limits=ImageLimits(),
            environment="bench",
        )

    def __call__(self, key: str, n: int) -> None:
        from img2img.domain.job import Job, OutputKeys, SourceRef
        from img2img.domain.pipeline import Attempt, utc_now
        from img2img.domain.request import parse_request

        request = parse_request(
            {"text_prompts": [{"text": PROMPT}], "init_image_s3_key": key, "style_preset": STYLE}
        )
        job = Job(
            job_id=f"bench-{n}-{uuid.uuid4().hex}",
            door="api",
            request=request,
            model_id=MODEL,
            source=SourceRef(r.INPUT_BUCKET, key),
            output=OutputKeys(r.OUTPUT_BUCKET, f"pipeline/{n}/result", f"pipeline/{n}/metadata.json"),
            created_at=utc_now(),
        )
        outcome = self.pipeline.run(job, Attempt())
        if outcome.status != "SUCCEEDED":
            raise RuntimeError(f"benchmark job failed: {outcome.summary.error}")


# --- measuring ---------------------------------------------------------------------------------


class CallCounter:
    """AWS calls per job, counted at botocore, by service and operation."""

    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        for c in clients:
            c.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    @classmethod
    def everywhere(cls) -> CallCounter:
        """Every client's calls, clients made later included: the worker makes its bedrock-runtime
        client for each deadline on the first job that needs it, not in get_service."""
        from botocore.client import BaseClient

        counter, make = cls(), BaseClient._make_api_call

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            counter.calls[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return make(client, operation, params)

        BaseClient._make_api_call = counted
        return counter

    def take(self) -> Counter[str]:
        calls, self.calls = self.calls, Counter()
        return calls


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU ms (this process's CPU: the servers run in another)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


@dataclass
class Timings:
    """One path's timings and CPU times (per round, their medians) and AWS calls over the
    measured jobs."""

    times: list[float]
    cpu: list[float]
    calls: Counter[str]
    jobs: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "ms": statistics.median(self.times),
            "cpu_ms": statistics.median(self.cpu),
            "rounds": [round(t, 1) for t in self.times],
            "calls": {k: v / self.jobs for k, v in sorted(self.calls.items())},
        }


def timing(runs: int, rounds: int, compare: str | None, profile: bool = False) -> list[dict[str, Any]]:
    """Per case: warm every path, then `rounds` rounds of `runs` jobs, the paths interleaved job
    by job (drift on a noisy machine hits them alike); each path's figure is the median of its
    per-round medians. With a second function process (--compare), the two take turns going
    first, and their difference is also the median of each adjacent pair's difference."""
    functions = {"service": FunctionProcess()}
    if compare:
        functions["compare"] = FunctionProcess(compare)
    bare, pipeline = Bare(), PipelineRun()
    bare_calls = CallCounter(bare.s3, bare.model)
    rows = []
    n = 0
    try:
        for case in (c for c in CASES if c.timed):
            data = case.make()
            key = f"{SOURCES}{case.extension}"
            bare.s3.put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=data)
            dropper = Dropper(data, case.extension)
            services = [(name, Service(function, dropper)) for name, function in functions.items()]
            paths = {name: Timings([], [], Counter()) for name in ("bare", *functions, "pipeline")}
            pairs: dict[str, list[float]] = {"ms": [], "cpu_ms": []}
            cpu: dict[str, float] = {}
            for warm in (True,) * 2 + (False,) * rounds:  # warm-up: imports, connections, caches
                per_round: dict[str, list[float]] = {name: [] for name in paths}
                per_round_cpu: dict[str, list[float]] = {name: [] for name in paths}
                bare_calls.take()
                for _ in range(1 if warm else runs):
                    n += 1
                    for into, value in zip(
                        (per_round, per_round_cpu), _timed(partial(bare, key, n)), strict=True
                    ):
                        into["bare"].append(value)
                    services.reverse()
                    for name, service in services:
                        n += 1
                        reply = service(n, f"{name}: {case.name}" if profile and not warm else None)
                        per_round[name].append(reply["ms"])
                        per_round_cpu[name].append(reply["cpu_ms"])
                        paths[name].calls.update({} if warm else reply["calls"])
                        cpu[name] = reply["cpu_ms"]
                    if compare and not warm:
                        pairs["ms"].append(per_round["service"][-1] - per_round["compare"][-1])
                        pairs["cpu_ms"].append(cpu["service"] - cpu["compare"])
                    n += 1
                    for into, value in zip(
                        (per_round, per_round_cpu), _timed(partial(pipeline, key, n)), strict=True
                    ):
                        into["pipeline"].append(value)
                if not warm:
                    paths["bare"].calls.update(bare_calls.take())
                    for name, path in paths.items():
                        path.times.append(statistics.median(per_round[name]))
                        path.cpu.append(statistics.median(per_round_cpu[name]))
                        path.jobs += runs
            figures = {name: path.row() for name, path in paths.items()}
            b, s = figures["bare"]["ms"], figures["service"]["ms"]
            added_cpu = figures["service"]["cpu_ms"] - figures["bare"]["cpu_ms"]
            row = {"case": case.name, "bare_ms": b, "service_ms": s, "added_ms": s - b, "ratio": s / b}
            row["added_cpu_ms"] = added_cpu
            if compare:
                row["paired"] = {what: _spread(values) for what, values in pairs.items()}
            rows.append(row | {"paths": figures})
    finally:
        for function in functions.values():
            function.close()
    return rows


def _spread(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return {"median": median, "q1": q1, "q3": q3}


def memory() -> list[dict[str, Any]]:
    """Per case, a fresh function process runs one job: its peak RSS, and what the job added to
    the peak before it (imports, the service built)."""
    rows = []
    for case in CASES:
        function, dropper = FunctionProcess(), Dropper(case.make(), case.extension)
        try:
            reply = Service(function, dropper)(10_000_000 + CASES.index(case))
        finally:
            function.close()
        peak, before = reply["rss_after_mb"], reply["rss_before_mb"]
        rows.append({"case": case.name, "peak_rss_mb": peak, "job_rss_mb": peak - before})
    return rows


def _high_water_mb() -> float:
    """The process's peak RSS. Not getrusage: on Linux its ru_maxrss survives exec, so a
    child started from a big parent reports the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _calls(calls: dict[str, float]) -> str:
    return f"{sum(calls.values()):.0f}: " + ", ".join(
        f"{name.split(':')[1]} {count:g}" if count != 1 else name.split(":")[1]
        for name, count in calls.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="jobs per path per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians of their medians")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also time the worker from another copy of the package (DIR/img2img, e.g. `git archive "
        "REV functions/img2img | tar -x -C DIR --strip-components=1`), job by job beside this one",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the measured jobs' handler calls (cProfile, to stderr)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--function-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.function_process:
        function_process()
        return
    with servers() as (aws_url, model_url):
        use_local_environment(aws_url, model_url)
        rows = timing(args.runs, args.rounds, args.compare, args.profile)
        peaks = memory() if not args.no_memory else []
    print(
        "The S3 door's worker handler end to end vs the seed's bare path, over loopback HTTP to one "
        "moto server and one\ninstant InvokeModel stand-in; each figure the median of "
        f"{args.rounds} interleaved rounds' medians of {args.runs} jobs"
    )
    columns = ("bare ms", "service ms", "added ms", "ratio", "pipeline.run", "added CPU ms")
    print(f"{'case':28} " + " ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(
            f"{row['case']:28} {row['bare_ms']:12.1f} {row['service_ms']:12.1f} {row['added_ms']:12.1f} "
            f"{row['ratio']:12.2f} {row['paths']['pipeline']['ms']:12.1f} {row['added_cpu_ms']:12.1f}"
        )
        if "compare" in row["paths"]:
            c = row["paths"]["compare"]["ms"]
            print(
                f"{'  --compare ' + args.compare:28} {'':12} {c:12.1f} {c - row['bare_ms']:12.1f} "
                f"{c / row['bare_ms']:12.2f} {'':12}"
            )
            for what, label in (("ms", "time"), ("cpu_ms", "CPU time")):
                p = row["paired"][what]
                print(
                    f"{'':28} service - compare, median of paired jobs' {label}: {p['median']:+.1f} ms "
                    f"(quartiles {p['q1']:+.1f} .. {p['q3']:+.1f})"
                )
    print("pipeline.run: the domain alone (an API-door job; the model an in-process double)")
    print(
        "added CPU ms: the function process's CPU less the bare path's (their own work, without the time "
        "they wait on the servers)"
    )
    print("AWS calls per job:")
    for row in rows:
        for name in ("service", "bare"):
            case = row["case"] if name == "service" else ""
            print(f"  {case:28} {name:7} {_calls(row['paths'][name]['calls'])}")
    if peaks:
        print("Peak RSS of a fresh worker process running one job (MB):")
        print(f"{'case':28} {'peak':>12} {'job adds':>12}")
        for peak in peaks:
            print(f"{peak['case']:28} {peak['peak_rss_mb']:12.0f} {peak['job_rss_mb']:12.0f}")
    print(
        "targets: added <= 40 ms (PNG) and <= 100 ms (JPEG); <= 6 AWS requests a job besides its "
        "event's PutEvents; peak RSS <= 123 MB for the 12-megapixel JPEG, < 512 MB for the largest "
        "source the caps admit"
    )
    if args.json:
        print(json.dumps({"timing": rows, "memory": peaks}, indent=2))


if __name__ == "__main__":
    main()
