"""Puts a job's "Image Job Finished" event on the environment's EventBridge bus (PutEvents).

A job never depends on its event: nothing here raises. PutEvents answers 200 even when it
refuses an entry (`FailedEntryCount`, and the entry's `ErrorCode` / `ErrorMessage` instead of an
`EventId`), so each answer is read entry by entry. The two codes AWS documents as retryable
(InternalFailure, ThrottlingException) are retried briefly with backoff; botocore's own retries
cover refused calls. Whatever is still refused is logged and counted (`on_undelivered`, the
JobEventsUndelivered metric and its alarm) and the job goes on as if it had been sent."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.job_events import DETAIL_TYPE, SOURCE, JobFinished

log = logging.getLogger(__name__)

# PutEventsResultEntry's retryable codes (tests/fixtures/eventbridge/put_events.json).
RETRYABLE = frozenset({"InternalFailure", "ThrottlingException"})


class EventBridgeJobEvents:
    def __init__(
        self,
        client: Any,
        bus_name: str,
        *,
        on_undelivered: Callable[[str], None],
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._on_undelivered = on_undelivered  # called with the last error code
        self._attempts = attempts
        self._sleep = sleep

    def job_finished(self, event: JobFinished) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(event.to_json_dict(), separators=(",", ":")),
            "EventBusName": self._bus,
        }
        code = self._put(entry)
        if code is not None:
            log.warning(
                "the job's event was not delivered",
                extra={"job_id": event.job_id, "error_code": code, "event_bus": self._bus},
            )
            self._on_undelivered(code)

    def _put(self, entry: dict[str, Any]) -> str | None:
        """None when EventBridge took the entry, else the code it last refused it with."""
        for attempt in range(1, self._attempts + 1):
            try:
                answer = self._client.put_events(Entries=[entry])
            except ClientError as exc:  # refused past botocore's own retries
                return str(exc.response.get("Error", {}).get("Code") or "ClientError")
            except BotoCoreError as exc:  # no connection, timeouts
                return type(exc).__name__
            if not answer.get("FailedEntryCount"):
                return None
            code = str(answer["Entries"][0].get("ErrorCode") or "Unknown")
            if code not in RETRYABLE or attempt == self._attempts:
                return code
            self._sleep(0.1 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")
