"""File locks (``flock``): one slave per work directory, and one writer per shared cache entry.

Two slaves may share a cache directory (the stage3s, the tree branch, the distfiles); whoever
fetches or unpacks an entry holds its lock, and the other waits and then finds it done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

from autotua import AutotuaError


class Locked(AutotuaError):
    """Another process holds the lock."""


class Lock:
    """An exclusive ``flock`` on ``path`` (created), which records the holder's PID."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.fd: int | None = None

    def acquire(self, wait: bool = True) -> Lock:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Locked(f"{self.path} is locked by process {holder(self.path) or '?'}") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Lock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(path: str | os.PathLike) -> int | None:
    """The PID written by the last holder of ``path``, if it is still locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            data = os.read(fd, 32).decode(errors="replace").strip()
            return int(data) if data.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    with Lock(path):
        yield
