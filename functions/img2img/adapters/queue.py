"""Sends to the worker's queue (the same queue S3 notifications feed): async API jobs, and the
images a manifest fans out into."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import StorageError

BATCH = 10  # SendMessageBatch's limit on entries per call
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
        """In SendMessageBatch calls of 10. A call can succeed with some entries failed (its
        answer's `Failed`): those with SenderFault false are sent again, a sender fault or
        entries still failed after ROUNDS are a StorageError (the caller's message comes back,
        and the messages sent meanwhile are harmless twice: their job ids are deterministic)."""
        for start in range(0, len(messages), BATCH):
            entries = {str(i): json.dumps(m) for i, m in enumerate(messages[start : start + BATCH])}
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
