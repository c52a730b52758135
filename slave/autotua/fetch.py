"""Downloads that resume (HTTP Range), show progress on a terminal, and are verified before use.

A file is written to ``<dest>.part`` and renamed into place only after its size and digests match;
a mismatch deletes the partial file and raises :class:`~autotua.manifest.DigestMismatch`. So a
file at its final name has always been verified.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping

import requests

from autotua import AutotuaError, faults
from autotua.manifest import REQUIRED_HASHES, DigestMismatch, check_digests, file_digests

_CHUNK = 1 << 16


class FetchError(AutotuaError):
    """Every URL for a file failed."""


class Progress:
    """A one-line progress display on a terminal (stderr); silent otherwise."""

    def __init__(self, label: str, total: int | None, stream=None):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.2):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        pct = f"{100 * done / self.total:5.1f}% " if self.total else ""
        total = f"/{_mib(self.total)}" if self.total else ""
        self.stream.write(f"\r>>> {self.label} {pct}{_mib(done)}{total} {_mib(rate)}/s\x1b[K")
        self.stream.flush()

    def finish(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            self.stream.write("\n")


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def fetch(urls: Iterable[str], dest: str | os.PathLike, *, size: int | None = None,
          hashes: Mapping[str, str] | None = None, session: requests.Session | None = None,
          progress: Callable[[str, int | None], Progress] | None = Progress, timeout: float = 60,
          max_size: int | None = None) -> str:
    """Fetch ``dest`` from the first URL that works, resuming a ``.part`` file, and verify it.

    ``size``/``hashes`` are what the file must be (a Manifest entry, a DIGESTS file); with neither
    the file is only size-capped by ``max_size``. Returns ``dest``.
    """
    dest = os.fspath(dest)
    want = {h: v for h, v in (hashes or {}).items() if h in REQUIRED_HASHES or h == "SHA256"}
    if os.path.exists(dest) and (size is not None or want):
        try:
            _verify(dest, size, want)
            return dest  # already fetched and verified
        except DigestMismatch:
            os.unlink(dest)
    session = session or requests.Session()
    part = dest + ".part"
    errors = []
    for url in urls:
        try:
            _download(session, url, part, size, max_size, timeout, progress, os.path.basename(dest))
        except (requests.RequestException, OSError, FetchError) as e:
            errors.append(f"{url}: {e}")
            continue
        try:
            _verify(part, size, want)
        except DigestMismatch:
            os.unlink(part)
            raise
        os.replace(part, dest)
        return dest
    raise FetchError(f"could not fetch {os.path.basename(dest)}:\n  " + "\n  ".join(errors or ["no URL to try"]))


def _verify(path: str, size: int | None, want: Mapping[str, str]) -> None:
    actual_size, actual = file_digests(path, want.keys() or REQUIRED_HASHES)
    check_digests(os.path.basename(path).removesuffix(".part"), actual_size, actual, size, want)


def _download(session, url: str, part: str, size: int | None, max_size: int | None, timeout: float,
              progress, label: str) -> None:
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if size is not None and have > size:
        os.unlink(part)  # longer than the file can be: start again
        have = 0
    if size is not None and have == size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:  # nothing left to send: the .part may be complete
            return
        r.raise_for_status()
        mode = "ab" if have and r.status_code == 206 else "wb"
        if mode == "wb":
            have = 0
        limit = size if size is not None else max_size
        total = size or (have + int(r.headers["Content-Length"]) if "Content-Length" in r.headers else None)
        bar = progress(label, total) if progress else None
        with open(part, mode) as f:
            for chunk in r.iter_content(_CHUNK):
                have += len(chunk)
                if limit is not None and have > limit:
                    raise FetchError(f"the server sent more than the expected {limit} bytes")
                f.write(chunk)
                faults.point(f"fetch:{label}")  # part of the file is in <dest>.part
                if bar:
                    bar.update(have)
        if bar:
            bar.finish(have)
