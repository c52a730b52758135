"""A jobuild's log: written to a file as it is produced, and sent to the master in chunks from there.

Memory stays bounded whatever the jobuild prints: bytes go from the pipe to the file, and from the
file to the master at most one chunk at a time. When the master says a chunk starts past what it
holds (416) we resend from where it says; a chunk it already has is accepted once (the protocol's
append is idempotent), so a retry after a lost answer doubles nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from autotua import faults
from autotua.slave.api import ApiError, LogGap


class LogStream:
    """``write()`` as output arrives, ``tick()`` often, ``close()`` at the end (returns the size)."""

    def __init__(self, path: str | os.PathLike, send: Callable[[int, bytes], int] | None = None, *,
                 chunk: int = 1 << 20, interval: float = 1.0):
        self.path = os.fspath(path)
        self.file = open(self.path, "ab+")  # noqa: SIM115  (closed in close())
        self.size = self.file.tell()
        self.sent = 0
        self.send = send
        self.chunk = max(1, chunk)
        self.interval = interval
        self.last = time.monotonic()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def note(self, message: str) -> None:
        """A line of the slave's own, in the log (a timeout, a kill, an attachment left out)."""
        self.write(f"\n>>> autotua-slave: {message}\n".encode())

    def tick(self) -> None:
        pending = self.size - self.sent
        if self.send and pending and (pending >= self.chunk or time.monotonic() - self.last >= self.interval):
            self.flush()

    def flush(self) -> None:
        if not self.send:
            self.sent = self.size
            return
        self.file.flush()
        stuck = 0
        while self.sent < self.size:
            n = min(self.chunk, self.size - self.sent)
            data = os.pread(self.file.fileno(), n, self.sent)
            try:
                offset = self.send(self.sent, data)
            except LogGap as gap:
                offset = gap.offset
            if not 0 <= offset <= self.size:
                raise ApiError(f"the master holds {offset} bytes of a log that has {self.size}")
            stuck = stuck + 1 if offset <= self.sent else 0
            if stuck > 3:
                raise ApiError(f"the master does not take the log past {offset} bytes")
            self.sent = offset
            faults.point(f"log:{os.path.basename(self.path)}")  # the master took a chunk of <index>.log
        self.last = time.monotonic()

    def close(self, flush: bool = True) -> int:
        if self.file.closed:
            return self.size
        try:
            if flush:
                self.flush()
        finally:
            self.file.close()
        return self.size
