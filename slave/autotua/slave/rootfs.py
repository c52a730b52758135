"""The stage3, unpacked once into a cache, below every job's fresh root.

``<cache>/roots/<stage3 name>/`` is unpacked (after every entry is checked) into a temporary
directory and renamed into place, so a root in the cache is always complete. Each job then gets
overlayfs on top of it, idmapped (see :mod:`autotua.slave.container`), which costs milliseconds
and leaves the cache untouched. Where idmapped mounts are not available, a copy with its owners
shifted into the slave's job ids is made once (``<root>@<first id>``) and used instead.

``roots/`` is mode 0700: a stage3 holds setuid-root programs, and no user of the host may run
them from there. A job holds a shared lock on the root it uses; pruning old roots takes the lock
exclusively, so a root is never deleted under a running job (whose mounts the host cannot see).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from pathlib import Path

from autotua.slave import SlaveError
from autotua.slave.container.idmap import IdRange, shift_tree
from autotua.slave.fsutil import remove_tree
from autotua.slave.locks import locked
from autotua.slave.tarball import TarballError, unpack_stage3

log = logging.getLogger("autotua.slave.rootfs")
_SUFFIX_RE = re.compile(r"\.tar\.(xz|bz2|gz|zst)\Z")


class RootCache:
    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir) / "roots"

    def path_for(self, tarball: str | os.PathLike) -> Path:
        return self.dir / _SUFFIX_RE.sub("", Path(tarball).name)

    def get(self, tarball: str | os.PathLike) -> Path:
        """The unpacked root of ``tarball`` (a verified stage3), unpacking it the first time."""
        dest = self.path_for(tarball)
        done = Path(f"{dest}.complete")
        if done.exists() and dest.is_dir():
            return dest
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        with locked(f"{dest}.unpack-lock"):
            if done.exists() and dest.is_dir():
                return dest
            tmp = Path(f"{dest}.tmp")
            remove_tree(tmp)
            remove_tree(dest)
            t = time.monotonic()
            try:
                unpack_stage3(tarball, tmp)
            except TarballError as e:
                remove_tree(tmp)
                raise SlaveError(str(e), "stage3") from None
            os.rename(tmp, dest)
            done.write_text(f"{Path(tarball).name}\n")
            log.info("unpacked %s in %.1f s", Path(tarball).name, time.monotonic() - t)
        return dest

    def shifted(self, root: Path, ids: IdRange) -> Path:
        """``root`` with its owners moved into ``ids`` (made once): for hosts without idmapped mounts."""
        dest = Path(f"{root}@{ids.base}")
        done = Path(f"{dest}.complete")
        if done.exists() and dest.is_dir():
            return dest
        with locked(f"{dest}.unpack-lock"):
            if done.exists() and dest.is_dir():
                return dest
            tmp = Path(f"{dest}.tmp")
            remove_tree(tmp)
            remove_tree(dest)
            t = time.monotonic()
            shift_tree(root, tmp, ids)
            os.rename(tmp, dest)
            done.write_text(f"{root.name} shifted to {ids.base}\n")
            log.info("shifted the owners of %s into %d-%d in %.1f s", root.name, ids.base, ids.base + 65535,
                     time.monotonic() - t)
        return dest

    def hold(self, root: Path) -> int:
        """A shared lock on ``root`` for the life of a job; close the descriptor to release it."""
        fd = os.open(f"{root}.inuse", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd

    def roots(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*") if p.is_dir() and "@" not in p.name
                      and Path(f"{p}.complete").exists())

    def prune(self, keep: set[Path]) -> list[Path]:
        """Delete the complete roots not in ``keep`` that no job holds; returns what was deleted."""
        removed = []
        for root in self.roots():
            if root in keep:
                continue
            fd = os.open(f"{root}.inuse", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a job is using it
                Path(f"{root}.complete").unlink()
                remove_tree(root)
                for copy in self.dir.glob(f"{root.name}@*"):
                    if copy.is_dir():
                        Path(f"{copy}.complete").unlink(missing_ok=True)
                        remove_tree(copy)
                removed.append(root)
            finally:
                os.close(fd)
        return removed
