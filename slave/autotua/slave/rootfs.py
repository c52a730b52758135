"""The stage3, unpacked once into a cache, below every job's fresh root.

``<cache>/roots/<stage3 name>/`` is a :class:`~autotua.slave.unpacked.UnpackedCache`: unpacked
once (every entry checked, the Handbook's tar flags), complete or absent, held with a shared lock
by each job that uses it, pruned only when no job holds it. Each job then gets overlayfs on top of
it (see :mod:`autotua.slave.keeper`), which costs milliseconds and leaves the cache untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

from autotua.slave.tarball import unpack_stage3
from autotua.slave.unpacked import UnpackedCache


class RootCache(UnpackedCache):
    def __init__(self, cache_dir: str | os.PathLike):
        super().__init__(cache_dir, "roots", unpack_stage3, "stage3")

    def roots(self) -> list[Path]:
        return self.trees()
