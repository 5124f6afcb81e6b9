"""Sends async API jobs to the worker's queue (the same queue S3 notifications feed)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import StorageError


class JobQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(message))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("could not queue the job", internal=str(exc)) from exc
