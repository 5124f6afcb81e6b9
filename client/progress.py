"""A live status line on a terminal, silence anywhere else (pipes, files, CI logs).

with Progress() as progress:
    progress.update("uploading cat.png (2.1 MB)")
    progress.update("job 1a2b3c4d RUNNING")
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_FRAMES = "|/-\\"
_CLEAR = "\r\x1b[2K"


class Progress:
    """One line, rewritten in place, with a spinner and the seconds since start. Writes
    nothing unless `stream` is a terminal (or `enabled=True`)."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._started = time.monotonic()
        self._frame = 0
        self._shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        frame = _FRAMES[self._frame % len(_FRAMES)]
        self._frame += 1
        self._stream.write(f"{_CLEAR}{frame} {text}  {elapsed:.0f}s")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line so the next output starts clean."""
        if self.enabled and self._shown:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.clear()
