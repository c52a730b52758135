"""SRC_URI and PORTCONF_URI files in a shared distfiles cache, each verified before use.

A file's size, BLAKE2B and SHA512 come from its jobuild's signed Manifest (checked by
:mod:`autotua.slave.sync`). :func:`autotua.fetch.fetch` resumes partial downloads and renames a file
into place only once it matches, so a file under its own name has always been verified; a stamp
(name, size, inode, mtime -> digests) lets the next job skip hashing it again. ``mirror://`` URLs
go to the slave's own mirrors first, then to the ones the job suggests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from autotua.cache import DigestCache
from autotua.fetch import FetchError, fetch
from autotua.manifest import DigestMismatch
from autotua.slave import SlaveError
from autotua.slave.locks import locked
from autotua.slave.sync import Distfile
from autotua.srcuri import Mirrors, SrcUriError

log = logging.getLogger("autotua.slave.distfiles")


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "distfiles")


def merge_mirrors(own: Mirrors, hints: dict[str, list[str]] | None) -> Mirrors:
    """The slave's ``mirror://`` bases first, then the job's hints for the same names."""
    mapping = {name: list(urls) for name, urls in own.mapping.items()}
    for name, urls in (hints or {}).items():
        if isinstance(urls, list):
            mapping.setdefault(name, []).extend(u for u in urls if isinstance(u, str) and u not in mapping[name])
    try:
        return Mirrors(mapping)
    except SrcUriError as e:
        raise _err(str(e)) from None


class Distfiles:
    """The distfiles directory and its stamps of verified files."""

    def __init__(self, distdir: str | os.PathLike, mirrors: Mirrors):
        self.dir = Path(distdir)
        self.mirrors = mirrors
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stamps = DigestCache(self.dir / ".autotua" / "verified.sqlite")

    def close(self) -> None:
        self.stamps.close()

    @staticmethod
    def _key(path: Path) -> str | None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return f"{path.name}|{st.st_size}|{st.st_ino}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_mode}"

    def get(self, df: Distfile) -> Path:
        """``df`` in the distfiles directory, verified; fetched first when needed."""
        if "/" in df.name or df.name.startswith(".") or not df.name:
            raise _err(f"{df.name!r} is not a distfile name")
        dest = self.dir / df.name
        want = {"size": df.size, **df.hashes}
        with locked(self.dir / ".autotua" / "locks" / f"{df.name}.lock"):
            key = self._key(dest)
            if key and self.stamps.get("verified", key) == want:
                return dest
            try:
                urls = self.mirrors.resolve(df.url)
            except SrcUriError as e:
                raise _err(str(e)) from None
            if not (dest.exists() and key):
                log.info("fetching %s", df.name)
            try:
                fetch(urls, dest, size=df.size, hashes=df.hashes)
            except DigestMismatch as e:
                raise _err(f"{e} (the download was deleted)") from None
            except FetchError as e:
                raise _err(str(e)) from None
            if os.path.islink(dest) or not dest.is_file():
                raise _err(f"{dest} is not a regular file")
            self.stamps.put("verified", self._key(dest), want)
        return dest

    def get_all(self, files: Iterable[Distfile]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for df in files:
            if df.name not in out:
                out[df.name] = self.get(df)
        return out
