"""The master's own copy of a pinned snapshot, for what only the ebuild repository can say: whether an
atom a job names exists, a package's IUSE and REQUIRED_USE (job parameters, tatt's sampling), and
its reverse dependencies.

The slave's :class:`~autotua.slave.snapshot.SnapshotStore` does the work, as on a slave: fetched from
``AUTOTUA_SNAPSHOT_MIRROR``, the MD5 and the signature checked against ``AUTOTUA_SNAPSHOT_KEY`` (and
its fingerprint), every tarball entry checked, unpacked once per date into ``DATA_DIR/snapshots``
(shared by every process of the master through the store's locks), the oldest beyond
``AUTOTUA_KEEP_SNAPSHOTS`` pruned unless a process holds them. Each process opens a date once
(:func:`repository_for`) and keeps it, held, with its reverse-dependency index; the index is kept
on disk too, so it is built once per date for the whole site. ``refreshsnapshots`` fetches the newest
date ahead, so the first job of the day does not wait for it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from django.conf import settings

from autotua.ebuildrepo import EbuildRepository
from autotua.slave import SlaveError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_open: dict[tuple[str, str], tuple[EbuildRepository, int | None]] = {}


class SnapshotUnavailable(Exception):
    """The pinned snapshot could not be had (fetch, signature, unpack): the sentence says why."""


def configured() -> bool:
    """Whether this master reads snapshots at all (a mirror and a key to verify with)."""
    return bool(settings.AUTOTUA_SNAPSHOT_MIRROR and settings.AUTOTUA_SNAPSHOT_KEY)


def cache_dir() -> Path:
    return Path(settings.AUTOTUA_DATA_DIR) / "snapshots"


def store():
    from autotua.slave.snapshot import SnapshotStore

    return SnapshotStore([settings.AUTOTUA_SNAPSHOT_MIRROR], cache_dir(), settings.AUTOTUA_SNAPSHOT_KEY,
                         fingerprint=settings.AUTOTUA_SNAPSHOT_KEY_FINGERPRINT, keep=settings.AUTOTUA_KEEP_SNAPSHOTS)


def repository_for(date: str) -> EbuildRepository | None:
    """The repository of snapshot ``date``, or None when this master reads no snapshots (or the job
    has none). Raises :class:`SnapshotUnavailable`. The first call for a date in a process may fetch
    and unpack it (once for the site); the next ones cost a dictionary lookup."""
    if not date or not configured():
        return None
    key = (os.fspath(cache_dir()), date)
    with _lock:
        hit = _open.get(key)
        if hit is not None:
            return hit[0]
    try:
        repo = store().get(date)
    except SlaveError as e:
        raise SnapshotUnavailable(f"the Gentoo snapshot {date} is not available to the master: "
                                  f"{str(e).removeprefix('repository: ')}") from None
    held = repo.hold()  # not pruned under us while this process may read it
    opened = EbuildRepository(repo.path, label=f"the Gentoo repository of {date}", index_dir=cache_dir() / "index")
    with _lock:
        if key in _open:  # another thread got there first
            if held is not None:
                os.close(held)
            return _open[key][0]
        _open[key] = (opened, held)
    log.info("snapshot %s opened at %s", date, repo.path)
    return opened


def prefetch(date: str) -> EbuildRepository | None:
    """Fetch and open ``date`` now, and build its reverse-dependency index (refreshsnapshots)."""
    repo = repository_for(date)
    if repo is not None:
        repo.dependency_texts()
    return repo


def close_all() -> None:
    """Forget the open repositories and release their holds (tests, and a process that ends)."""
    with _lock:
        for _, held in _open.values():
            if held is not None:
                os.close(held)
        _open.clear()
