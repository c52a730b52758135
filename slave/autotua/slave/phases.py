"""Running one jobuild's phases: ``jobuild.sh phases`` in the container, as portage drives ebuild.sh.

The job's init starts one ``bash jobuild.sh phases`` per jobuild and Python reads two pipes: the
merged stdout and stderr (the log, streamed as it comes through a
:class:`~autotua.slave.logstream.LogStream`) and the bridge's record descriptor, 3 inside (phase
starts and ends, ``result`` values, ``attach`` files, ``die`` messages; see :mod:`autotua.bridge`).
Each phase has a timeout, enforced here, and so are the container's limits (memory, processes,
disk: :meth:`~autotua.slave.container.Container.hit`, asked every 0.2 s): when one runs out, or
the job is cancelled, or the slave stops, the init kills everything in the container. Nothing a
jobuild starts outlives it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotua import faults
from autotua.bridge import parse_record
from autotua.params import environment
from autotua.slave.container import INSIDE, Container
from autotua.slave.logstream import LogStream
from autotua.slave.sync import Prepared

MAX_RECORD = 1 << 16  # a record line longer than this is cut
MAX_RESULTS = 1000
MAX_RESULT_VALUE = 4096  # characters, as the master stores them
MAX_ATTACHMENTS = 100
TIMEOUT_STATUS = 124  # as timeout(1)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECORD_FD = 3  # the bridge's record descriptor, inside


def iso(t: float) -> str:
    """``2026-11-23T16:01:02.120Z``"""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Phase:
    name: str
    started: float
    finished: float | None = None
    exit_code: int | None = None

    @property
    def status(self) -> str:
        return "passed" if self.exit_code == 0 else "failed"

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "exit_code": self.exit_code,
                "started": iso(self.started), "finished": iso(self.finished or self.started)}


@dataclass
class Outcome:
    """What one jobuild did. ``interrupted`` is set when it was stopped from outside (cancel, stop):
    such a jobuild has no result to report."""

    index: int
    jobuild: str
    started: float
    finished: float = 0.0
    exit_code: int = 0
    phases: list[Phase] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (file in the out dir, label)
    died: list[str] = field(default_factory=list)
    timed_out: str | None = None
    limit: str | None = None  # the container's limit it ran into
    interrupted: str | None = None
    log_size: int = 0

    @property
    def passed(self) -> bool:
        return (self.exit_code == 0 and not self.timed_out and not self.limit and not self.interrupted
                and all(p.exit_code == 0 for p in self.phases))

    @property
    def failed_in(self) -> str:
        for p in self.phases:
            if p.exit_code != 0:
                return p.name
        return "global scope"

    def reason(self) -> str:
        why = self.limit or self.timed_out
        return f"{self.jobuild} failed in {self.failed_in}" + (f": {why}" if why else "")


def jobuild_env(p: Prepared, record_fd: int = RECORD_FD) -> dict[str, str]:
    """The variables jobuild.sh needs, as paths inside the container (see :mod:`autotua.slave.container`),
    and the job's parameter values as ``PARAM_<NAME>`` (data: bash never evaluates the environment)."""
    jid = p.jid
    tree = f"{INSIDE}/tree"
    return {
        **environment(p.parameters),
        "PATH": PATH, "HOME": "/root", "TERM": "xterm", "NOCOLOR": "false",  # colour kept in the log (ANSI)
        "P": f"{jid.name}-{jid.version}", "PN": jid.name, "PV": str(jid.version), "JOBUILD_USER": jid.user,
        "FILESDIR": f"{tree}/{jid.user}/{jid.name}/files", "DISTDIR": "/var/cache/distfiles",
        "WORKDIR": f"{INSIDE}/jobs/{p.index}/work", "T": f"{INSIDE}/jobs/{p.index}/temp",
        "A": " ".join(d.name for d in p.src_uri),
        "__AB_JOBUILD": f"{tree}/{p.path}", "__AB_TREE": tree, "__AB_OUTDIR": f"{INSIDE}/out/{p.index}",
        "__AB_FD": str(record_fd),
    }


class _Records:
    """Interprets the bridge's records as they arrive."""

    def __init__(self, out: Outcome, log: LogStream):
        self.out = out
        self.log = log
        self.buf = b""
        self.current: Phase | None = None

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.line(line)
        if len(self.buf) > MAX_RECORD:
            self.line(self.buf[:MAX_RECORD])
            self.buf = b""

    def line(self, raw: bytes) -> None:
        rec = parse_record(raw.decode("utf-8", errors="replace"))
        if rec is None:
            return
        key, value = rec
        words = value.split(" ")
        if key == "AUTOTUA_PHASE_START" and words:
            self.current = Phase(words[0], _epoch(words[1:]))
            self.out.phases.append(self.current)
            faults.point(f"phase:{self.out.jobuild}:{words[0]}")  # the phase runs in the container
        elif key == "AUTOTUA_PHASE_END" and len(words) >= 2 and self.current and self.current.name == words[0]:
            self.current.exit_code = int(words[1]) if words[1].lstrip("-").isdigit() else 1
            self.current.finished = _epoch(words[2:])
            self.current = None
        elif key == "AUTOTUA_RESULT" and words:
            k, _, v = value.partition(" ")
            if len(self.out.results) >= MAX_RESULTS and k not in self.out.results:
                self.log.note(f"result {k} ignored: more than {MAX_RESULTS} results")
            else:
                if len(v) > MAX_RESULT_VALUE:
                    self.log.note(f"result {k} cut to {MAX_RESULT_VALUE} characters")
                    v = v[:MAX_RESULT_VALUE]
                self.out.results[k] = v
        elif key == "AUTOTUA_ATTACH" and words:
            name, _, label = value.partition(" ")
            if len(self.out.attachments) >= MAX_ATTACHMENTS:
                self.log.note(f"attachment {name} ignored: more than {MAX_ATTACHMENTS} attachments")
            else:
                self.out.attachments.append((name, label or name))
        elif key == "AUTOTUA_DIE":
            self.out.died.append(value)


def _epoch(words: list[str]) -> float:
    try:
        return float(words[0])
    except (IndexError, ValueError):
        return time.time()


def run_jobuild(ns: Container, p: Prepared, log: LogStream, *, timeout: float,
                should_stop: Callable[[], str | None] = lambda: None) -> Outcome:
    """Run ``p``'s phases in the container; stream its log; return what happened."""
    out = Outcome(p.index, str(p.jid), time.time())
    records = _Records(out, log)
    log_r, log_w = os.pipe()
    rec_r, rec_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = ns.spawn(["/bin/bash", f"{INSIDE}/bridge/jobuild.sh", "phases"], jobuild_env(p),
                        {0: null, 1: log_w, 2: log_w, RECORD_FD: rec_w})
    except BaseException:
        os.close(log_r)
        os.close(rec_r)
        raise
    finally:
        os.close(null)
        os.close(log_w)
        os.close(rec_w)
    sel = selectors.DefaultSelector()
    sel.register(log_r, selectors.EVENT_READ, log.write)
    sel.register(rec_r, selectors.EVENT_READ, records.feed)
    killed = False
    watched = 0.0
    try:
        while sel.get_map():
            for key, _ in sel.select(0.2):
                data = os.read(key.fd, 1 << 16)
                if data:
                    key.data(data)
                else:
                    sel.unregister(key.fd)
            if proc.poll() is not None and not killed:
                ns.killall()  # whatever it left running; then the pipes close
                killed = True
            if not killed:
                why = None
                phase = records.current
                if phase and timeout and time.time() - phase.started > timeout:
                    out.timed_out = why = f"{phase.name} timed out after {timeout:.0f} s"
                elif time.monotonic() - watched >= 0.2 and (limit := ns.hit()):
                    out.limit = why = limit
                elif stop := should_stop():
                    out.interrupted = why = stop
                if why:
                    ns.killall()
                    killed = True
                    log.note(f"{why}; killed")
                elif time.monotonic() - watched >= 0.2:
                    watched = time.monotonic()
            log.tick()
        proc.wait()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                ns.killall()
            proc.wait()
        sel.close()
        os.close(log_r)
        os.close(rec_r)
    if records.buf:
        records.line(records.buf)
    if not out.limit and not out.interrupted and (proc.returncode or records.current is not None):
        out.limit = ns.hit()  # a failure the limit caused (a write that met a full disk)
        if out.limit:
            log.note(f"{out.limit}")
    out.finished = time.time()
    out.exit_code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    if records.current is not None:  # killed in the middle of a phase
        records.current.finished = out.finished
        records.current.exit_code = TIMEOUT_STATUS if out.timed_out else out.exit_code or 1
    if out.timed_out:
        out.exit_code = TIMEOUT_STATUS
    return out
