"""The stage3, unpacked once into a cache, below every job's fresh root.

``<cache>/roots/<stage3 name>/`` is a :class:`~autotua.slave.unpacked.UnpackedCache`: unpacked
once (every entry checked, the Handbook's tar flags), complete or absent, held with a shared lock
by each job that uses it, pruned only when no job holds it. Each job then gets overlayfs on top of
it, idmapped (see :mod:`autotua.slave.container`), which costs milliseconds and leaves the cache
untouched. Where idmapped mounts are not available, a copy with its owners shifted into the
slave's job ids is made once (``<root>@<first id>``) and used instead; it goes with its stage3
(a job holds the stage3's lock while it uses the copy).

``roots/`` is mode 0700: a stage3 holds setuid-root programs, and no user of the host may run them
from there.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from autotua.slave.container.idmap import IdRange, shift_tree
from autotua.slave.fsutil import remove_tree
from autotua.slave.locks import locked
from autotua.slave.tarball import unpack_stage3
from autotua.slave.unpacked import UnpackedCache

log = logging.getLogger("autotua.slave.rootfs")


class RootCache(UnpackedCache):
    def __init__(self, cache_dir: str | os.PathLike):
        super().__init__(cache_dir, "roots", unpack_stage3, "stage3")

    def get(self, tarball: str | os.PathLike) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        return super().get(tarball)

    def roots(self) -> list[Path]:
        return self.trees()

    def trees(self) -> list[Path]:
        return [t for t in super().trees() if "@" not in t.name]  # the shifted copies go with their stage3

    def remove(self, tree: Path) -> bool:
        gone = super().remove(tree)
        if gone:
            for copy in self.dir.glob(f"{tree.name}@*"):
                if copy.is_dir():
                    Path(f"{copy}.complete").unlink(missing_ok=True)
                    remove_tree(copy)
        return gone

    def shifted(self, root: Path, ids: IdRange) -> Path:
        """``root`` with its owners moved into ``ids`` (made once): for hosts without idmapped mounts."""
        dest = Path(f"{root}@{ids.base}")
        if self.is_complete(dest):
            return dest
        with locked(f"{dest}.unpack-lock"):
            if self.is_complete(dest):
                return dest
            tmp = Path(f"{dest}.tmp")
            remove_tree(tmp)
            remove_tree(dest)
            t = time.monotonic()
            shift_tree(root, tmp, ids)
            os.rename(tmp, dest)
            Path(f"{dest}.complete").write_text(f"{root.name} shifted to {ids.base}\n")
            log.info("shifted the owners of %s into %d-%d in %.1f s", root.name, ids.base, ids.base + 65535,
                     time.monotonic() - t)
        return dest
