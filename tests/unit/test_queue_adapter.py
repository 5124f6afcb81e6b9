"""The queue adapter's SendMessageBatch handling, against the answers AWS documents
(tests/fixtures/sqs/send-message-batch.json): a real boto3 SQS client behind botocore's
Stubber, which checks each request and answer against the service's model. moto answers every
batch in full, so the partial answers are stubbed here; the full path runs over moto in
tests/handlers/test_adapter_contracts.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from img2img.adapters.queue import BATCH, BATCH_BYTES, ROUNDS, JobQueue
from img2img.domain.errors import StorageError

pytestmark = pytest.mark.unit

DOC = json.loads((Path(__file__).parents[1] / "fixtures" / "sqs" / "send-message-batch.json").read_text())
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


def client() -> Any:
    return boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def entries(*messages: dict[str, Any], ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or [str(n) for n in range(len(messages))]
    return {
        "QueueUrl": URL,
        "Entries": [{"Id": i, "MessageBody": json.dumps(m)} for i, m in zip(ids, messages, strict=True)],
    }


def test_batches_keep_to_sqs_limits() -> None:
    assert (DOC["facts"]["max_entries"], DOC["facts"]["max_total_payload_bytes"]) == (BATCH, BATCH_BYTES)
    sqs = client()
    big = [{"pad": "x" * 100_000}] * 3  # two fit in 256 KiB, not three
    with Stubber(sqs) as stub:
        stub.add_response("send_message_batch", {"Successful": [], "Failed": []}, entries(*big[:2]))
        stub.add_response("send_message_batch", {"Successful": [], "Failed": []}, entries(big[2]))
        JobQueue(sqs, URL).send_batch(big)
        stub.assert_no_pending_responses()


def test_entries_failed_through_no_fault_of_ours_are_sent_again() -> None:
    sqs = client()
    messages = [{"n": n} for n in range(3)]
    with Stubber(sqs) as stub:
        stub.add_response("send_message_batch", DOC["partial_answer"], entries(*messages))
        # Only the two entries the answer lists as failed (SenderFault false), under their ids.
        again = {"Successful": [], "Failed": []}
        stub.add_response("send_message_batch", again, entries(*messages[1:], ids=["1", "2"]))
        JobQueue(sqs, URL).send_batch(messages)
        stub.assert_no_pending_responses()


def test_entries_still_failing_are_a_retryable_storage_error() -> None:
    sqs = client()
    messages = [{"n": n} for n in range(3)]
    with Stubber(sqs) as stub:
        stub.add_response("send_message_batch", DOC["partial_answer"], entries(*messages))
        for _ in range(ROUNDS - 1):
            stub.add_response(
                "send_message_batch", DOC["partial_answer"], entries(*messages[1:], ids=["1", "2"])
            )
        with pytest.raises(StorageError) as caught:
            JobQueue(sqs, URL).send_batch(messages)
        stub.assert_no_pending_responses()
    assert caught.value.retryable and "InternalError" in str(caught.value.internal)


def test_a_sender_fault_is_not_sent_again() -> None:
    sqs = client()
    with Stubber(sqs) as stub:
        stub.add_response("send_message_batch", DOC["sender_fault_answer"], entries({"n": 0}))
        with pytest.raises(StorageError) as caught:
            JobQueue(sqs, URL).send_batch([{"n": 0}])
        stub.assert_no_pending_responses()
    assert "InvalidParameterValue" in str(caught.value.internal)
