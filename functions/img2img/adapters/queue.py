"""Sends to the worker's queue (the same queue S3 notifications feed): async API jobs, and the
images a manifest fans out into."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import StorageError

BATCH = 10  # SendMessageBatch's limits per call: entries, and their bodies' bytes together
BATCH_BYTES = 262_144
ROUNDS = 3  # sends of the entries a batch answer lists as failed through no fault of ours


class JobQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(message))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("could not queue the job", internal=str(exc)) from exc

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        """In SendMessageBatch calls of at most 10 entries and 256 KiB. A call can succeed with
        some entries failed (its
        answer's `Failed`): those with SenderFault false are sent again, a sender fault or
        entries still failed after ROUNDS are a StorageError (the caller's message comes back,
        and the messages sent meanwhile are harmless twice: their job ids are deterministic)."""
        for batch in _batches([json.dumps(m) for m in messages]):
            entries = {str(i): body for i, body in enumerate(batch)}
            for _ in range(ROUNDS):
                try:
                    answer = self._client.send_message_batch(
                        QueueUrl=self._url, Entries=[{"Id": k, "MessageBody": v} for k, v in entries.items()]
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise StorageError("could not queue the jobs", internal=str(exc)) from exc
                failed = answer.get("Failed", [])
                ours = [f for f in failed if f.get("SenderFault")]
                if ours:
                    raise StorageError("could not queue the jobs", internal=f"refused as sent: {ours}")
                entries = {f["Id"]: entries[f["Id"]] for f in failed}
                if not entries:
                    break
            else:
                raise StorageError("could not queue the jobs", internal=f"still failed: {failed}")


def _batches(bodies: list[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    for body in bodies:
        current = batches[-1]
        if len(current) == BATCH or sum(len(b.encode()) for b in [*current, body]) > BATCH_BYTES:
            batches.append(current := [])
        current.append(body)
    return [b for b in batches if b]
