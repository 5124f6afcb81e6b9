"""Lambda's SQS event source mapping, locally: long-poll the jobs queue, call the worker
handler with the SQS event Lambda would send, and delete what succeeded. It follows the
mapping's ReportBatchItemFailures rules: a raise, a timeout or an invalid batchItemFailures
fails the whole batch; listed records stay in the queue and come back after the visibility
timeout; SQS itself moves a message to the DLQ once it was received maxReceiveCount times."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from img2img_local import resources as r
from img2img_local.lambda_context import new_context

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class BatchOutcome:
    received: list[str]  # message ids, in the order the handler saw them
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str | None = None  # why the whole batch failed, when it did


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str = r.REGION) -> dict[str, Any]:
    """One SQS message as it appears in a Lambda SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return out


def failed_ids(response: Any, batch_ids: list[str]) -> list[str]:
    """The message ids a handler response reports as failed. Raises ValueError where Lambda
    would count the whole batch as failed (a malformed or unknown itemIdentifier)."""
    if response is None:
        return []
    if not isinstance(response, dict):
        raise ValueError(f"the response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if not failures:
        return []
    if not isinstance(failures, list):
        raise ValueError("batchItemFailures is not a list")
    ids: list[str] = []
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or not ident:
            raise ValueError(f"invalid batchItemFailures entry {item!r}")
        if ident not in batch_ids:
            raise ValueError(f"itemIdentifier {ident!r} is not a message of this batch")
        ids.append(ident)
    return ids


class SqsPoller:
    """One poller thread, one batch at a time (Lambda scales pollers out; one is enough here)."""

    def __init__(
        self,
        handler: Handler,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        region: str = r.REGION,
        batch_size: int = r.WORKER_BATCH_SIZE,
        wait_seconds: int = 1,
        function_name: str = r.WORKER_FUNCTION_NAME,
        timeout_seconds: float = r.WORKER_TIMEOUT_SECONDS,
        memory_mb: int = r.WORKER_MEMORY_MB,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("an SQS receive returns 1 to 10 messages")
        self._handler = handler
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._region = region
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds  # short long-polls so stop() is prompt
        self._function_name = function_name
        self._timeout_seconds = timeout_seconds
        self._memory_mb = memory_mb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SqsPoller:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop polling; a batch in progress is allowed to finish (up to timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the worker handler is still running; leaving its thread behind")
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the queue is unreachable (e.g. shutting down): back off, retry
                if self._stop.is_set():
                    return
                log.exception("polling %s failed", self._queue_url)
                self._stop.wait(1)

    def poll_once(self) -> BatchOutcome | None:
        """Receive one batch and process it; None when the long poll found nothing."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return None
        return self.process(messages)

    def process(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        records = [to_lambda_record(m, self._queue_arn, self._region) for m in messages]
        ids = [rec["messageId"] for rec in records]
        outcome = BatchOutcome(received=ids)
        context = new_context(
            self._function_name, timeout_seconds=self._timeout_seconds, memory_mb=self._memory_mb
        )
        started = time.monotonic()
        try:
            response = self._handler({"Records": records}, context)
        except Exception as exc:
            log.exception("the worker handler raised; the batch of %d returns to the queue", len(ids))
            outcome.failed, outcome.error = ids, f"handler raised {type(exc).__name__}: {exc}"
            return outcome
        elapsed = time.monotonic() - started
        if elapsed > self._timeout_seconds:
            # Lambda would have stopped the function: nothing of the batch is deleted.
            log.error("Task timed out after %.2f seconds", elapsed)
            outcome.failed, outcome.error = ids, "timed out"
            return outcome
        try:
            failed = failed_ids(response, ids)
        except ValueError as exc:
            log.error("invalid partial batch response, the whole batch fails: %s", exc)
            outcome.failed, outcome.error = ids, f"invalid response: {exc}"
            return outcome
        done = [rec for rec in records if rec["messageId"] not in failed]
        outcome.failed = [i for i in ids if i in failed]
        outcome.deleted = self._delete(done)
        return outcome

    def _delete(self, records: list[dict[str, Any]]) -> list[str]:
        if not records:
            return []
        reply = self._sqs.delete_message_batch(
            QueueUrl=self._queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": rec["receiptHandle"]} for i, rec in enumerate(records)],
        )
        for failure in reply.get("Failed", []):
            log.warning("could not delete message %s: %s", records[int(failure["Id"])]["messageId"], failure)
        return [records[int(ok["Id"])]["messageId"] for ok in reply.get("Successful", [])]
