"""Claiming a job, and the heartbeat that keeps its lease while it runs.

A claim names the run with a UUID of our own; a claim repeated after a lost answer (same UUID)
gets the same job. The heartbeat runs in its own thread (with its own HTTP session) every
``heartbeat_every`` seconds, retrying for as long as the lease lasts; an ``abort`` answer, or the
master saying the run is over, marks the job cancelled, and the job notices within a fraction
of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import socket
import threading
import uuid

from autotua import __version__
from autotua.slave.api import LONG_POLL, Api, ApiError, Interrupted, RunOver, Unreachable
from autotua.slave.config import Config
from autotua.slave.trust import claim_field

log = logging.getLogger("autotua.slave.claim")


def host_info() -> dict:
    mem = 0
    with contextlib.suppress(ValueError, OSError):
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"hostname": socket.gethostname(), "kernel": platform.release(), "cpus": os.cpu_count() or 1,
            "memory": mem}


def free_disk(cfg: Config) -> int:
    path = cfg.work_dir
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def claim_payload(cfg: Config, run: str, trusted: frozenset[str] = frozenset()) -> dict:
    """The claim's body; ``trust`` (the volunteer's trusted fingerprints) only when it is set."""
    return {"run": run, "arch": cfg.arch, "flavours": list(cfg.flavours), "free_disk": free_disk(cfg),
            "host": host_info(), "version": __version__, **claim_field(trusted)}


def claim(api: Api, cfg: Config, trusted: frozenset[str] = frozenset(),
          abandon: threading.Event | None = None) -> dict:
    """One claim with a fresh run UUID, held by the master until a job comes or for LONG_POLL seconds:
    ``{"run": None, "retry_after": n}`` or the job's answer. ``abandon`` gives up waiting for it."""
    return api.claim(claim_payload(cfg, str(uuid.uuid4()), trusted), hold=LONG_POLL, abandon=abandon)


class Heartbeat(threading.Thread):
    """Extends the lease in the background; ``cancelled`` holds the reason once the master says stop."""

    def __init__(self, api: Api, run: str, lease: dict | None):
        super().__init__(name=f"heartbeat-{run[:8]}", daemon=True)
        self.api = api
        self.run_id = run
        lease = lease or {}
        self.every = float(lease.get("heartbeat_every") or 60)
        self.seconds = float(lease.get("seconds") or self.every * 5)
        self.cancelled: str | None = None
        self.run_over = False
        self.beats = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                answer = self.api.heartbeat(self.run_id, retry_for=max(self.seconds - self.every, 5))
            except RunOver as e:
                self.cancelled, self.run_over = f"the run is over: {e.body.get('detail') or e}", True
                return
            except Interrupted:
                return
            except Unreachable as e:
                log.warning("heartbeat: %s", e)
                continue
            except ApiError as e:
                log.error("heartbeat: %s", e)
                continue
            self.beats += 1
            if answer.get("action") == "abort":
                self.cancelled = answer.get("reason") or "cancelled on the master"
                return
            lease = answer.get("lease") or {}
            if lease.get("heartbeat_every"):
                self.every = float(lease["heartbeat_every"])
            if lease.get("seconds"):
                self.seconds = float(lease["seconds"])
