"""The loop: one slave per work directory, clean up first, check the host, then claim and run jobs
until told to stop.

At start, after cleaning up, :mod:`~autotua.slave.preflight` checks that this host can build the job
container as configured; while anything is missing the slave says what and exits (status 1). It
then works out, once, whom it trusts and its job ids (:class:`~autotua.slave.preflight.Host`).

Signals: the first SIGTERM stops taking work and stops the running job cleanly (its log so far is
sent, the container torn down, the job finished as ``error`` so the master requeues it); a second
SIGTERM, or a SIGINT, skips what can be skipped (no waiting on the master) and tears down at once.
Either way teardown runs. A slave whose teardown failed stops: it will not mount anything more
until ``autotua-slave clean`` has looked at what was left.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import tempfile
import threading
import time

from autotua import faults
from autotua.slave import preflight
from autotua.slave.api import Api, AuthError, Interrupted, Unreachable
from autotua.slave.claim import claim, free_disk
from autotua.slave.cleanup import clean
from autotua.slave.config import Config
from autotua.slave.container import Keeper, cgroups
from autotua.slave.job import JobRunner
from autotua.slave.locks import Lock, Locked

log = logging.getLogger("autotua.slave")


def setup_logging(cfg: Config, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, cfg.log_level.upper())
    root = logging.getLogger("autotua")
    root.setLevel(level)
    root.handlers.clear()
    if cfg.syslog:
        handler: logging.Handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.setFormatter(logging.Formatter("autotua-slave[%(process)d]: %(levelname)s %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.stopping = threading.Event()
        self.at_once = threading.Event()
        self.jobs_run = 0

    def _on_signal(self, signum, _frame) -> None:
        if signum == signal.SIGTERM and not self.stopping.is_set():
            log.warning("SIGTERM: stopping the current job cleanly, then exiting (again to stop at once)")
            self.stopping.set()
        else:
            log.warning("%s: tearing down at once", signal.Signals(signum).name)
            self.stopping.set()
            self.at_once.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def lock(self) -> Lock:
        try:
            return Lock(f"{self.cfg.work_dir}/slave.lock").acquire(wait=False)
        except Locked as e:
            raise Locked(f"another autotua-slave runs with this work directory ({e})") from None

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopping; True when we should go on."""
        return not self.stopping.wait(max(0.0, seconds))

    def run(self, once: bool = False) -> int:
        cfg = self.cfg
        lock = self.lock()
        tempdir = tempfile.tempdir
        spare: Keeper | None = None
        try:
            for line in clean(cfg):
                log.warning("cleanup after an earlier run: %s", line)
            # temporary files below the work directory, where the next start finds what a crash left
            os.makedirs(cfg.tmp_dir, mode=0o700, exist_ok=True)
            tempfile.tempdir = str(cfg.tmp_dir)
            missing = preflight.problems(cfg)
            for line in missing:
                log.error("this host cannot run jobs as configured: %s", line)
            if missing:
                return 1
            for line in cgroups.prepare():
                log.info("cgroups: %s", line)
            host = preflight.Host.of(cfg)
            api = Api(cfg.master, cfg.token(), retry_for=cfg.retry_for, stop=self.at_once)
            spare = Keeper()  # the next job's keeper, its Python started while we wait for the job
            log.info("autotua-slave %s: serving %s (%s) to %s", cfg.name, cfg.arch, ", ".join(cfg.flavours),
                     cfg.master)
            delay = 1.0
            while not self.stopping.is_set():
                free = free_disk(cfg)
                if free < cfg.min_free_disk + cfg.disk_limit:
                    log.warning("only %d MiB free in %s (min_free_disk %d MiB, and a job's disk_limit %d MiB); "
                                "not taking jobs", free >> 20, cfg.work_dir, cfg.min_free_disk >> 20,
                                cfg.disk_limit >> 20)
                    self.wait(cfg.max_poll_interval)
                    continue
                asked = time.monotonic()
                try:
                    answer = claim(api, cfg, host.trusted, abandon=self.stopping)
                except Interrupted:
                    break
                except Unreachable as e:
                    log.warning("%s", e)
                    self.wait(min(delay, cfg.max_poll_interval))
                    delay *= 2
                    continue
                except AuthError as e:
                    if e.status == 401:
                        log.error("%s: the master does not know this slave's token", e)
                        return 1
                    log.warning("%s (a new slave waits for staff to approve it)", e)
                    self.wait(cfg.max_poll_interval)
                    continue
                delay = 1.0
                if not answer.get("run") or not answer.get("job"):
                    after = answer.get("retry_after")
                    wait = cfg.max_poll_interval if after is None else min(float(after), cfg.max_poll_interval)
                    if wait < 1 and time.monotonic() - asked < 1:
                        wait = 1.0  # "at once", but it did not hold the claim: never a tight loop
                    log.debug("nothing to do; asking again in %.0f s", wait)
                    self.wait(wait)
                    continue
                faults.point("claim:answered")  # the master holds the run; nothing is done here yet
                runner = JobRunner(cfg, api, answer, host=host, keeper=spare, stopping=self.stopping,
                                   at_once=self.at_once)
                report = runner.run()
                if runner.keeper is not None:  # the job ended before its container was built
                    runner.keeper.close()
                spare = Keeper()
                self.jobs_run += 1
                if report.teardown_failed:
                    log.error("teardown failed; not taking more jobs until `autotua-slave clean` has run")
                    return 1
                if once:
                    break
            return 0
        finally:
            if spare is not None:
                spare.close()
            tempfile.tempdir = tempdir
            lock.release()
