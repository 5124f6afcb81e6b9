"""`make demo`: start local mode, run one sample image through each door, copy every result
image and metadata JSON into local-output/, print where they are, stop. Exits non-zero if a
door failed. Ports are the defaults (or IMG2IMG_*_PORT); a busy one is swapped for a free one.
The screen gets the demo's report only: logs and warnings go to local-output/demo.log."""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import requests

from img2img.domain.s3_door import output_keys
from img2img.vocabulary import FINAL_STATUSES, SYNC
from img2img_local import resources as r
from img2img_local.runner import LocalStack, port_is_free, ports_from_environment, start_local
from tools.sample import sample_png

OUTPUT_DIR = Path("local-output")
LOG_FILE = OUTPUT_DIR / "demo.log"
PROMPT = "a watercolor painting of a red house on green hills under a summer sun"
WAIT_SECONDS = 90
SECOND_MODEL_ID = r.FALLBACK_MODEL_IDS[-1]  # Control Structure: another family, another translation


@dataclass
class DoorResult:
    door: str
    status: str
    job_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)  # "image"/"metadata" -> local copy
    s3_uris: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and "image" in self.files and "metadata" in self.files


def choose_ports(host: str = r.DEFAULT_HOST) -> tuple[dict[str, int], list[str]]:
    """The configured ports, with any busy one replaced by 0 (a free port)."""
    ports, notes = ports_from_environment(), []
    env_vars = {"api_port": r.API_PORT_ENV, "aws_port": r.AWS_PORT_ENV, "bedrock_port": r.BEDROCK_PORT_ENV}
    for name, port in ports.items():
        if port and not port_is_free(host, port):
            notes.append(f"port {port} is busy ({env_vars[name]}): using a free port instead")
            ports[name] = 0
    return ports, notes


def request_body(png: bytes) -> dict[str, Any]:
    return {
        "text_prompts": [{"text": PROMPT, "weight": 1.0}, {"text": "blurry, low quality", "weight": -1.0}],
        "init_image": base64.b64encode(png).decode("ascii"),
        "image_strength": 0.4,
        "cfg_scale": 7,
        "seed": 42,
        "steps": 30,
    }


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def download(stack: LocalStack, uri: str, target: Path) -> Path:
    bucket, key = split_s3_uri(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return target


def collect(
    stack: LocalStack, result: DoorResult, image_uri: str | None, metadata_uri: str | None
) -> DoorResult:
    """Copy the result image and metadata JSON from the output bucket into local-output/<door>/."""
    folder = OUTPUT_DIR / result.door
    for kind, uri in (("image", image_uri), ("metadata", metadata_uri)):
        if uri:
            result.s3_uris[kind] = uri
            result.files[kind] = download(stack, uri, folder / Path(split_s3_uri(uri)[1]).name)
    return result


def via_sync_api(
    stack: LocalStack, png: bytes, model_id: str | None = None, door: str = "sync-api"
) -> DoorResult:
    request = request_body(png) | ({"model_id": model_id} if model_id else {})
    reply = requests.post(stack.api_url + SYNC.path, json=request, timeout=60)
    body = reply.json()
    if reply.status_code != 200:
        return DoorResult(door, f"HTTP {reply.status_code}", detail=json.dumps(body)[:500])
    result = DoorResult(door, body.get("status", "?"), job_id=body.get("job_id"))
    collect(stack, result, body.get("image", {}).get("s3_uri"), body.get("metadata", {}).get("s3_uri"))
    artifact = (body.get("artifacts") or [{}])[0]
    if artifact.get("base64"):  # the Bedrock-shaped answer itself carries the image too
        path = OUTPUT_DIR / door / "response-artifact.png"
        path.write_bytes(base64.b64decode(artifact["base64"]))
        result.files["response artifact"] = path
    return result


def via_async_api(stack: LocalStack, png: bytes) -> DoorResult:
    reply = requests.post(f"{stack.api_url}/v1/jobs", json=request_body(png), timeout=60)
    if reply.status_code != 202:
        return DoorResult("async-api", f"HTTP {reply.status_code}", detail=reply.text[:500])
    job_id = reply.json()["job_id"]
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        view = requests.get(f"{stack.api_url}/v1/jobs/{job_id}", timeout=30).json()
        if view.get("status") in FINAL_STATUSES:
            break
        if time.monotonic() > deadline:
            return DoorResult("async-api", "TIMEOUT", job_id, detail=f"last status {view.get('status')}")
        time.sleep(0.5)
    result = DoorResult("async-api", view["status"], job_id, detail=json.dumps(view.get("error") or "")[:300])
    return collect(stack, result, view.get("image", {}).get("s3_uri"), view.get("metadata", {}).get("s3_uri"))


def via_s3_drop(stack: LocalStack, png: bytes) -> DoorResult:
    """The S3 door: upload under inbox/ with the parameters as object metadata, then wait for
    results/<name>.png.json (the S3 door writes the image first and its metadata last)."""
    s3 = stack.client("s3")
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    s3.put_object(
        Bucket=r.INPUT_BUCKET,
        Key=f"{r.INBOX_PREFIX}{name}.png",
        Body=png,
        ContentType="image/png",
        Metadata={
            "prompt": PROMPT,
            "negative-prompt": "blurry, low quality",
            "seed": "42",
            "image-strength": "0.4",
        },
    )
    metadata_key = output_keys(r.OUTPUT_BUCKET, f"{r.INBOX_PREFIX}{name}.png").metadata_key
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listed = s3.list_objects_v2(Bucket=r.OUTPUT_BUCKET, Prefix=metadata_key).get("Contents", [])
        if any(item["Key"] == metadata_key for item in listed):
            break
        if time.monotonic() > deadline:
            return DoorResult("s3-drop", "TIMEOUT", detail=f"no s3://{r.OUTPUT_BUCKET}/{metadata_key}")
        time.sleep(0.5)
    metadata = json.loads(s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=metadata_key)["Body"].read())
    image = metadata.get("result") or {}
    result = DoorResult("s3-drop", metadata.get("status", "?"), metadata.get("job_id"))
    result.detail = json.dumps(metadata.get("error") or "")[:300]
    image_uri = f"s3://{image['bucket']}/{image['key']}" if image.get("key") else None
    return collect(stack, result, image_uri, f"s3://{r.OUTPUT_BUCKET}/{metadata_key}")


def report(results: list[DoorResult]) -> str:
    lines = []
    for res in results:
        lines.append(
            f"\n[{res.door}] {'ok' if res.ok else 'FAILED'}: status {res.status}, job {res.job_id or '-'}"
        )
        for kind, uri in res.s3_uris.items():
            lines.append(f"    {kind:<9} {uri}")
        for kind, path in res.files.items():
            lines.append(f"    copied    {path}  ({kind})")
        if res.detail and not res.ok:
            lines.append(f"    detail    {res.detail}")
    return "\n".join(lines)


def to_log_file() -> TextIO:
    """Send everything written to stdout and stderr (the functions' JSON logs, metrics,
    warnings, the servers' request lines, C libraries' own output) to LOG_FILE; answer a
    stream to the screen for the demo's own lines."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    screen = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    with LOG_FILE.open("w") as log:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
    return screen


def main() -> int:
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    say = functools.partial(print, file=to_log_file(), flush=True)
    ports, notes = choose_ports()
    for note in notes:
        say(note)
    png = sample_png()
    (OUTPUT_DIR / "sample.png").write_bytes(png)
    with start_local(**ports) as stack:
        stack.wait_healthy(timeout=30)
        say(f"local mode up: API {stack.api_url}, AWS {stack.aws_url}, Bedrock {stack.bedrock_url}")
        say(f"sample image: {OUTPUT_DIR / 'sample.png'} ({len(png)} bytes)")
        say(f"logs: {LOG_FILE}")
        results = []
        doors: list[tuple[str, Callable[[LocalStack, bytes], DoorResult]]] = [
            (f"sync api on the default model, {r.DEFAULT_MODEL_ID}", via_sync_api),
            ("async api (a job to poll)", via_async_api),
            ("s3 drop", via_s3_drop),
            # The same image on a second live model: what a fallback would run.
            (
                f"sync api on a second live model, {SECOND_MODEL_ID}",
                lambda stack, png: via_sync_api(stack, png, SECOND_MODEL_ID, "second-model"),
            ),
        ]
        for label, door in doors:
            say(f"running {label}...")
            try:
                results.append(door(stack, png))
            except Exception as exc:  # report every door, not only the first failure
                results.append(DoorResult(label, "ERROR", detail=f"{type(exc).__name__}: {exc}"))
        say(report(results))
    say(
        "\nNote: the Bedrock emulator's images are stand-ins made locally, not model output."
        if all(res.ok for res in results)
        else "\nSome doors failed (see above)."
    )
    return 0 if all(res.ok for res in results) else 1


if __name__ == "__main__":
    sys.exit(main())
