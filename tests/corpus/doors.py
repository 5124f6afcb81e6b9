"""Runs corpus cases through a running local mode: the API door over HTTP, the S3 door by
dropping objects into the input bucket, and a spy on the worker handler that records what
every invocation received and answered (so a test can prove nothing was retried)."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import requests

from img2img_local.runner import WORKER_HANDLER, LocalStack, import_handler
from tests.corpus import INBOX_PREFIX, UPLOADED_PREFIXES, Case, api_body, manifest_body, valid_png

FINAL = frozenset({"SUCCEEDED", "CONTENT_FILTERED", "FAILED"})


@dataclass
class WorkerCall:
    """One invocation of the worker handler."""

    message_ids: list[str]
    receive_counts: list[int]
    bodies: list[dict[str, Any]]
    failed: list[str] = field(default_factory=list)  # batchItemFailures it answered
    error: str | None = None  # what it raised, if it raised

    def s3_keys(self) -> list[str]:
        return [
            unquote_plus(rec["s3"]["object"]["key"])
            for body in self.bodies
            for rec in body.get("Records", [])
            if rec.get("eventSource") == "aws:s3"
        ]


class WorkerSpy:
    """Stands in for the worker handler in start_local(): calls the real one (imported on first
    use, after local mode has set the environment) and records every call."""

    def __init__(self, handler_path: str = WORKER_HANDLER) -> None:
        self._path = handler_path
        self._lock = threading.Lock()
        self.calls: list[WorkerCall] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        records = event["Records"]
        call = WorkerCall(
            message_ids=[r["messageId"] for r in records],
            receive_counts=[int(r["attributes"].get("ApproximateReceiveCount", "1")) for r in records],
            bodies=[_json_or_empty(r["body"]) for r in records],
        )
        try:
            response = import_handler(self._path)(event, context)
        except BaseException as exc:
            call.error = f"{type(exc).__name__}: {exc}"
            self._record(call)
            raise
        call.failed = [f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])]
        self._record(call)
        return response

    def _record(self, call: WorkerCall) -> None:
        with self._lock:
            self.calls.append(call)

    def snapshot(self) -> list[WorkerCall]:
        with self._lock:
            return list(self.calls)

    def calls_for_key(self, key: str) -> list[WorkerCall]:
        return [c for c in self.snapshot() if key in c.s3_keys()]

    def calls_for_manifest_image(self, manifest_key: str) -> list[WorkerCall]:
        """The calls that ran an image the manifest at `manifest_key` fanned out."""
        return [
            c
            for c in self.snapshot()
            if any(b.get("kind") == "manifest_image" and b.get("key") == manifest_key for b in c.bodies)
        ]

    def receives(self) -> dict[str, int]:
        """How many times each message id reached the handler."""
        counts: dict[str, int] = {}
        for call in self.snapshot():
            for message_id in call.message_ids:
                counts[message_id] = counts.get(message_id, 0) + 1
        return counts


def _json_or_empty(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Doors:
    """Both doors of one running local stack."""

    def __init__(self, stack: LocalStack, spy: WorkerSpy | None = None) -> None:
        self.stack = stack
        self.spy = spy
        self.s3 = stack.client("s3")
        self.sqs = stack.client("sqs")
        self.input = stack.resources.input_bucket
        self.output = stack.resources.output_bucket

    # --- the emulator ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        reply = requests.get(f"{self.stack.bedrock_url}/_emulator/stats", timeout=10)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def set_faults(self, **faults: Any) -> None:
        requests.post(
            f"{self.stack.bedrock_url}/_emulator/faults", json=faults, timeout=10
        ).raise_for_status()

    def reset_emulator(self) -> None:
        requests.post(f"{self.stack.bedrock_url}/_emulator/reset", timeout=10).raise_for_status()

    # --- the API door ----------------------------------------------------------------------

    def api_request(self, case: Case) -> tuple[bytes, str]:
        """The body and content type a case sends to POST /v1/image-to-image."""
        if case.kind == "raw":
            assert case.raw is not None
            return case.raw(), case.content_type
        if case.kind == "image":
            assert case.image is not None
            body = {
                "text_prompts": [{"text": "corpus", "weight": 1.0}],
                "init_image": base64.b64encode(case.image()).decode("ascii"),
            }
            return json.dumps(body).encode(), case.content_type
        if case.kind == "key":
            self.s3.put_object(Bucket=self.input, Key=case.source_key, Body=valid_png())
            body = {"text_prompts": [{"text": "corpus", "weight": 1.0}], "init_image_s3_key": case.source_key}
            return json.dumps(body).encode(), case.content_type
        if case.kind == "body":
            if case.upload_source and case.source_key.startswith(UPLOADED_PREFIXES):
                self.s3.put_object(Bucket=self.input, Key=case.source_key, Body=valid_png())
            return json.dumps(api_body(case)).encode(), case.content_type
        raise ValueError(f"{case.name}: a {case.kind} case has no API form")

    def post(
        self, path: str, data: bytes, content_type: str | None = "application/json"
    ) -> requests.Response:
        return requests.post(
            f"{self.stack.api_url}{path}",
            data=data,
            headers={"Content-Type": content_type} if content_type else {},
            timeout=120,
        )

    def send_api(self, case: Case) -> requests.Response:
        data, content_type = self.api_request(case)
        return self.post("/v1/image-to-image", data, content_type)

    def wait_job(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view: dict[str, Any] = requests.get(f"{self.stack.api_url}/v1/jobs/{job_id}", timeout=30).json()
            if view.get("status") in FINAL:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {view.get('status')} after {timeout}s")
            time.sleep(0.1)

    # --- the S3 door -----------------------------------------------------------------------

    def drop(self, case: Case) -> str:
        """Put the case's object under inbox/ (and the source a manifest names); answers its key."""
        if case.kind in ("image", "metadata", "key"):
            data = case.image() if case.image is not None else valid_png()
            name = case.key if case.kind == "key" else f"{case.name}.{case.extension}"
            key = f"{INBOX_PREFIX}{name}"
            metadata = case.metadata if case.metadata is not None else {"prompt": "corpus"}
            self.s3.put_object(Bucket=self.input, Key=key, Body=data, Metadata=metadata)
            return key
        if case.upload_source and case.source_key.startswith(UPLOADED_PREFIXES):
            self.s3.put_object(Bucket=self.input, Key=case.source_key, Body=valid_png())
        if case.kind == "raw":
            if case.manifest_raw is not None:
                manifest = case.manifest_raw(case.source_key)
            else:
                assert case.raw is not None
                manifest = case.raw()
        else:
            manifest = json.dumps(manifest_body(case)).encode()
        key = f"{INBOX_PREFIX}{case.name}.json"
        self.s3.put_object(Bucket=self.input, Key=key, Body=manifest, ContentType="application/json")
        return key

    def read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.output, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        data: dict[str, Any] = json.loads(body)
        return data

    def wait_metadata(self, key: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.read_json(key)
            if found is not None and found.get("status") in FINAL:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no final metadata at s3://{self.output}/{key} after {timeout}s")
            time.sleep(0.05)

    def output_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.output, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    # --- the queues ------------------------------------------------------------------------

    def queue_depth(self, url: str | None = None) -> int:
        """Messages visible plus in flight (and delayed) in the jobs queue, or in `url`."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.stack.resources.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def dead_letters(self) -> int:
        return self.queue_depth(self.stack.resources.dlq_url)

    def dead_letter_bodies(self) -> list[dict[str, Any]]:
        """Read (and leave) what the DLQ holds."""
        got = self.sqs.receive_message(
            QueueUrl=self.stack.resources.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [_json_or_empty(m["Body"]) for m in got.get("Messages", [])]
