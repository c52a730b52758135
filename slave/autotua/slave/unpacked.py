"""Verified tarballs unpacked once into a cache, used read-only by jobs, pruned when no job holds them.

``<cache>/<kind>/<name>/`` is unpacked (after every entry is checked) into ``<name>.tmp`` and
renamed into place, then ``<name>.complete`` is written, so a tree in the cache is always complete;
the next start removes a ``.tmp`` a crash left (:func:`clean_incomplete`). A job holds a shared
lock (``<name>.inuse``) on the tree it uses; pruning takes it exclusively, so a tree is never
deleted under a running job, whose mounts the host cannot see. The stage3 roots
(:class:`autotua.slave.rootfs.RootCache`) and the repository snapshots
(:class:`autotua.slave.snapshot.SnapshotStore`) are two such caches.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from autotua.slave import SlaveError
from autotua.slave.fsutil import remove_tree
from autotua.slave.locks import Lock, Locked, locked
from autotua.slave.tarball import TarballError

log = logging.getLogger("autotua.slave.unpacked")
_SUFFIX_RE = re.compile(r"\.tar\.(xz|bz2|gz|zst)\Z")


def _open_inuse(tree: Path) -> int:
    return os.open(f"{tree}.inuse", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)


class UnpackedCache:
    """``unpack(tarball, tmp)`` fills a new directory ``tmp`` (raising TarballError on a refused
    tarball); failures are :class:`SlaveError`\\ s of ``step``."""

    def __init__(self, cache_dir: str | os.PathLike, kind: str, unpack: Callable[[Path, Path], None], step: str):
        self.dir = Path(cache_dir) / kind
        self.unpack = unpack
        self.step = step

    def path_for(self, tarball: str | os.PathLike) -> Path:
        return self.dir / _SUFFIX_RE.sub("", Path(tarball).name)

    def get(self, tarball: str | os.PathLike) -> Path:
        """The unpacked tree of ``tarball`` (verified before it is given here), unpacked the first time."""
        dest = self.path_for(tarball)
        done = Path(f"{dest}.complete")
        if self.is_complete(dest):
            return dest
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(f"{dest}.unpack-lock"):
            if self.is_complete(dest):
                return dest
            tmp = Path(f"{dest}.tmp")
            remove_tree(tmp)
            remove_tree(dest)
            t = time.monotonic()
            try:
                self.unpack(Path(tarball), tmp)
            except TarballError as e:
                remove_tree(tmp)
                raise SlaveError(str(e), self.step) from None
            os.rename(tmp, dest)
            done.write_text(f"{Path(tarball).name}\n")
            log.info("unpacked %s in %.1f s", Path(tarball).name, time.monotonic() - t)
        return dest

    def hold(self, tree: Path) -> int:
        """A shared lock on ``tree`` for the life of a job; close the descriptor to release it.
        Raises SlaveError when another slave sharing the cache pruned it just before."""
        fd = _open_inuse(tree)
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not self.is_complete(tree):
            os.close(fd)
            raise SlaveError(f"{tree.name} was pruned from the cache just now; try again", self.step)
        return fd

    def trees(self) -> list[Path]:
        """The complete trees, by name."""
        return sorted(p for p in self.dir.glob("*") if p.is_dir() and Path(f"{p}.complete").exists())

    def is_complete(self, tree: Path) -> bool:
        return Path(f"{tree}.complete").exists() and tree.is_dir()

    def remove(self, tree: Path) -> bool:
        """Delete one complete tree unless a job holds it; whether it is gone."""
        if not self.is_complete(tree):
            return not tree.exists()
        fd = _open_inuse(tree)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a job is using it
            Path(f"{tree}.complete").unlink()
            remove_tree(tree)
            return True
        finally:
            os.close(fd)

    def prune(self, keep: set[Path]) -> list[Path]:
        """Delete the complete trees not in ``keep`` that no job holds; returns what was deleted."""
        return [tree for tree in self.trees() if tree not in keep and self.remove(tree)]

    def clean_incomplete(self) -> list[str]:
        """Remove what an unpack that did not finish left (``<name>.tmp``), unless one runs now."""
        report = []
        for tmp in sorted(self.dir.glob("*.tmp")) if self.dir.is_dir() else ():
            try:
                with Lock(f"{str(tmp)[: -len('.tmp')]}.unpack-lock").acquire(wait=False):
                    remove_tree(tmp)
                report.append(f"{tmp}: removed (an unpack that did not finish)")
            except Locked:
                pass  # another slave sharing the cache is unpacking it right now
            except (SlaveError, OSError) as e:
                report.append(f"{tmp}: NOT removed: {e}")
        return report
