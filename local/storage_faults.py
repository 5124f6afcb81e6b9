"""EMULATED S3 write faults in local mode's AWS (moto) server, for the tests that prove a job
is billed once whatever fails after the model answered.

A rule names a bucket, a key pattern and how many times each matching key's PutObject is
refused with S3's own `503 SlowDown` before one is let through. botocore then handles the
refusal exactly as a real one (retries with backoff, then an error), in whichever process
made the call: the in-process poller or a separate worker process. Rules live in this process
(the one running the moto server), so a test sets them directly:

    from img2img_local.storage_faults import STORAGE_FAULTS
    STORAGE_FAULTS.refuse(bucket, r"results/stress/drop-\\d\\d0\\.png\\.png", times=12)
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


@dataclass(frozen=True)
class _Rule:
    bucket: str
    pattern: re.Pattern[str]
    times: int


class StorageFaults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._seen: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # key -> PutObject calls refused

    def refuse(self, bucket: str, key_pattern: str, *, times: int) -> None:
        """Refuse the first `times` PutObject calls of every key fully matching the pattern."""
        with self._lock:
            self._rules.append(_Rule(bucket, re.compile(key_pattern), times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._seen.clear()
            self.refused.clear()

    def _should_refuse(self, method: str, path: str, query: str) -> bool:
        if method != "PUT" or "partNumber=" in query or "uploadId=" in query:
            return False
        bucket, _, key = path.lstrip("/").partition("/")
        with self._lock:
            for rule in self._rules:
                if rule.bucket == bucket and rule.pattern.fullmatch(key):
                    self._seen[key] += 1
                    if self._seen[key] <= rule.times:
                        self.refused[key] += 1
                        return True
                    return False
        return False

    def wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """A WSGI middleware in front of moto's app (path-style S3 requests)."""

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self._rules and self._should_refuse(
                environ.get("REQUEST_METHOD", ""),
                environ.get("PATH_INFO", ""),
                environ.get("QUERY_STRING", ""),
            ):
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response(
                    "503 Slow Down",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(_SLOW_DOWN)))],
                )
                return [_SLOW_DOWN]
            return app(environ, start_response)

        return middleware


STORAGE_FAULTS = StorageFaults()
