"""Undoing what a crashed run left: the first thing a slave does when it starts, and ``clean``.

A job's mounts live in its keeper's namespace, so after a crash there is normally nothing mounted
on the host: the keeper saw its stdin close and exited, and the kernel dropped the mounts. This
still checks, for each job directory: that its keeper is gone (killing it if not), that nothing
is mounted below it on the host (unmounting it if so), and only then deletes it. Then the
daemon's temporary files (``<work_dir>/tmp``: a keyring a verification was using), and the
stage3 roots and repository snapshots whose unpacking did not finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from autotua.linux import mounts_under
from autotua.slave import SlaveError
from autotua.slave.config import Config
from autotua.slave.fsutil import remove_tree
from autotua.slave.mounts import unmount_tree
from autotua.slave.rootfs import RootCache
from autotua.slave.snapshot import SnapshotStore

log = logging.getLogger("autotua.slave.cleanup")
KEEPER = b"autotua.slave.keeper"


def _is_keeper(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return KEEPER in argv and b"unshare" not in os.path.basename(argv[0])


def _stop_keepers(job_dir: Path) -> list[int]:
    """Kill the keeper a crashed slave left (it normally exits by itself); returns the PIDs killed."""
    try:
        pids = [int(w) for w in (job_dir / "keeper.pid").read_text().split() if w.isdigit()]
    except (OSError, ValueError):
        return []
    killed = []
    for pid in pids:
        if _is_keeper(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    deadline = time.monotonic() + 10
    while any(_is_keeper(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def clean_job_dir(job_dir: Path) -> str:
    """Make one job directory safe and delete it; returns a line saying what was done."""
    done = []
    killed = _stop_keepers(job_dir)
    if killed:
        done.append(f"killed keeper {', '.join(map(str, killed))}")
    if mounts_under(job_dir):
        detached = unmount_tree(str(job_dir))
        done.append("unmounted what was left" + (f" (lazily: {', '.join(detached)})" if detached else ""))
    remove_tree(job_dir)
    return f"{job_dir}: removed" + (f" ({'; '.join(done)})" if done else "")


def clean(cfg: Config, keep: set[str] = frozenset()) -> list[str]:
    """Clean every job directory in the work directory (but those in ``keep``); returns a report."""
    report = []
    jobs = cfg.jobs_dir
    for job_dir in sorted(p for p in jobs.iterdir() if p.name not in keep) if jobs.is_dir() else ():
        try:
            report.append(clean_job_dir(job_dir))
        except (SlaveError, OSError) as e:
            report.append(f"{job_dir}: NOT removed: {e}")
    for temp in sorted(cfg.tmp_dir.iterdir()) if cfg.tmp_dir.is_dir() else ():
        try:
            if temp.is_dir() and not temp.is_symlink():
                remove_tree(temp)
            else:
                temp.unlink()
            report.append(f"{temp}: removed (a temporary file of an earlier run)")
        except (SlaveError, OSError) as e:
            report.append(f"{temp}: NOT removed: {e}")
    for cache in (RootCache(cfg.cache_dir), SnapshotStore.for_config(cfg).trees):
        report += cache.clean_incomplete()
    return report
