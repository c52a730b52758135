"""What an end-to-end test leaves behind: processes and mounts.

:class:`ProcessWatch` makes the test process a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``)
for the length of a test: whatever the test starts, directly or not, stays below it in the process
tree even when its parent dies (an orphaned keeper, a daemon that double-forked, a gunicorn worker
whose arbiter was killed), instead of slipping away to init. After the test, every process below
the test process that was not there before it is a leftover. Orphans that already exited are reaped.

Two kinds of long-lived helper started on first use by session fixtures are not the test's: the
session's PostgreSQL cluster (the ``postgres`` user's processes) and GnuPG's per-home agents
(``gpg-agent``, ``keyboxd``, ``dirmngr``), which the session stops at its end.

For the fault matrix, which kills a slave and looks at what it left before anything cleans up:
:func:`in_session` (what a daemon started in its own session still runs), :func:`touching` (what
runs with its root, working directory or a command-line argument below a path), :func:`alive` and
:func:`doomed` (on its way out by itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
SESSION_HELPERS = ("gpg-agent", "keyboxd", "dirmngr")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    start: int  # clock ticks since boot: a PID may be reused, (pid, start) is not
    uid: int
    name: str
    cmdline: str

    def __str__(self) -> str:
        return f"{self.pid} ({self.name}, parent {self.ppid}): {self.cmdline[:200]}"


def _read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return Proc(pid, int(fields[1]), fields[0], int(fields[19]), uid, name, cmdline)


def processes() -> dict[int, Proc]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            p = _read(int(entry))
            if p is not None:
                out[p.pid] = p
    return out


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    p = _read(pid)
    return p is not None and p.state != "Z"


def doomed(pid: int) -> bool:
    """``pid`` is gone or on its way out by itself: exiting, SIGKILL pending for it (a ``--pdeathsig``
    the kernel sent as its parent died), or it is a ``dies_with_us`` guard (setpriv, then sh;
    slave/autotua/slave/tarball.py) whose parent is no longer the slave that started it, which
    exits without running its command."""
    p = _read(pid)
    if p is None or p.state == "Z":
        return True
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return True
    if not any(args):  # its memory is already released: it is exiting
        return True
    pending = 0
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            pending |= int(line.split()[1], 16)
    if pending & (1 << (signal.SIGKILL - 1)):
        return True
    if "dies_with_us" in args[:-1]:
        starter = args[args.index("dies_with_us") + 1]
        return starter.isdigit() and int(starter) != p.ppid
    return False


def in_session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a daemon started with ``start_new_session``: its PID)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(entry))
    return out


def touching(path: str | os.PathLike) -> dict[int, str]:
    """Live processes whose root or cwd is at or below ``path``, or whose command line names a path
    below it (``nsenter ... chroot <root>``, ``tar -C <dir>``): PID -> command line."""
    prefix = os.path.realpath(path).rstrip("/")

    def below(p: str) -> bool:
        return p == prefix or p.startswith(prefix + "/")

    found = {}
    for p in processes().values():
        if p.pid == os.getpid() or p.state == "Z":
            continue
        links = []
        for link in ("root", "cwd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{p.pid}/{link}"))
        if any(below(x) for x in links) or prefix in p.cmdline:
            found[p.pid] = p.cmdline
    return found


def descendants(root: int | None = None) -> list[Proc]:
    """Every process below ``root`` (default: this process)."""
    root = root or os.getpid()
    procs = processes()
    children: dict[int, list[Proc]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c.pid)
    return out


def _set_subreaper(on: bool) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def _postgres_uid() -> int | None:
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None


class ProcessWatch:
    """``start()`` before a test, ``leftovers(grace)`` after it, ``stop()`` at the very end."""

    def __init__(self):
        self.before: set[tuple[int, int]] = set()
        self.subreaper = False

    def start(self) -> ProcessWatch:
        self.subreaper = _set_subreaper(True)
        self.before = {(p.pid, p.start) for p in descendants()}
        return self

    def _new(self) -> list[Proc]:
        pg = _postgres_uid()
        out = []
        for p in descendants():
            if (p.pid, p.start) in self.before:
                continue
            if p.name in SESSION_HELPERS or (pg is not None and p.uid == pg):
                continue
            if p.state == "Z":
                if p.ppid == os.getpid():
                    self._reap(p.pid)
                continue
            out.append(p)
        return out

    @staticmethod
    def _reap(pid: int) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def leftovers(self, grace: float = 10.0) -> list[Proc]:
        """The test's processes still alive after up to ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while True:
            left = self._new()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def kill(self, procs: list[Proc]) -> None:
        """SIGKILL leftovers (so one test's leak does not spoil the next) and reap what was ours."""
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        time.sleep(0.5)
        self._new()

    def stop(self) -> None:
        if self.subreaper:
            _set_subreaper(False)
            self.subreaper = False
