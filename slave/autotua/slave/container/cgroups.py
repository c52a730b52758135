"""The job's cgroup: memory, processes and CPU limits, and a way to kill everything in it.

Each job gets ``autotua-<run>`` below the slave's own cgroup, in every hierarchy it needs. A
controller is used from the unified (v2) hierarchy when the slave's cgroup can hand it to children
there, else from its v1 hierarchy: pure v2 hosts use v2 alone; the old hybrid layout
(``/sys/fs/cgroup/{memory,pids,cpu}`` plus an empty v2 at ``/sys/fs/cgroup/unified``) uses v1 for
the limits and v2 for ``cgroup.kill`` and the network helper's connection filter. The job's init
is placed in them before it starts anything, then unshares a cgroup namespace, so the job sees
its own cgroup as ``/``.

Limits end a job as *failed*, with a reason: the kernel's counters say so (``oom_kill`` in
``memory.events`` / ``memory.oom_control``, ``max`` in ``pids.events``), and :func:`hit` reads
them while phases run. CPU is a quota, never a failure.

On a pure v2 host the slave's own cgroup must have no processes for its children to get
controllers: :func:`prepare` moves the slave into ``<its cgroup>/supervisor`` once, at start (with
systemd, ``Delegate=yes`` makes that cgroup the slave's to manage).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time

from autotua import linux
from autotua.slave import SlaveError

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD = 100_000


class CgroupError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "cgroup")


class Layout:
    """Where the hierarchies are mounted and where this process sits in each."""

    def __init__(self):
        self.v2: str | None = None           # the cgroup2 mount point
        self.v2_own = "/"                    # this process's cgroup there
        self.v1: dict[str, str] = {}         # controller -> mount point
        self.v1_own: dict[str, str] = {}     # controller -> this process's cgroup

    @classmethod
    def read(cls, pid: int | str = "self") -> Layout:
        lay = cls()
        for m in linux.mountinfo(pid):
            if m.fstype == "cgroup2" and lay.v2 is None:
                lay.v2 = m.mount_point
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _src, opts = ([*right.split(), "", "", ""])[:3]
                if fstype != "cgroup":
                    continue
                for c in opts.split(","):
                    if c in CONTROLLERS and c not in lay.v1:
                        lay.v1[c] = linux._unescape(left.split()[4])
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                num, ctrls, path = line.rstrip("\n").split(":", 2)
                if num == "0" and not ctrls:
                    lay.v2_own = path
                for c in ctrls.split(","):
                    if c in CONTROLLERS:
                        lay.v1_own[c] = path
        return lay

    def v2_dir(self, *parts: str) -> str:
        return os.path.join(self.v2, self.v2_own.lstrip("/"), *parts)

    def v2_offers(self) -> set[str]:
        """The controllers the slave's v2 cgroup hands to its children."""
        if not self.v2:
            return set()
        try:
            with open(self.v2_dir("cgroup.subtree_control")) as f:
                return set(f.read().split())
        except OSError:
            return set()

    def v2_available(self) -> set[str]:
        if not self.v2:
            return set()
        try:
            with open(self.v2_dir("cgroup.controllers")) as f:
                return set(f.read().split())
        except OSError:
            return set()

    def where(self) -> dict[str, str]:
        """controller -> 'v2' or 'v1' (absent: nowhere)."""
        offers = self.v2_offers()
        out = {}
        for c in CONTROLLERS:
            if c in offers:
                out[c] = "v2"
            elif c in self.v1:
                out[c] = "v1"
        return out


def prepare(lay: Layout | None = None) -> list[str]:
    """Make the slave's v2 cgroup hand memory, pids and cpu to job cgroups where it can (pure v2).
    Returns what it did; raises :class:`CgroupError` when it cannot and v1 cannot stand in."""
    lay = lay or Layout.read()
    want = [c for c in CONTROLLERS if c in lay.v2_available() and c not in lay.v2_offers()]
    if not want:
        return []
    done = []

    def enable() -> None:
        with open(lay.v2_dir("cgroup.subtree_control"), "w") as f:
            f.write(" ".join(f"+{c}" for c in want))

    try:
        enable()
    except OSError as e:
        if e.errno != errno.EBUSY or lay.v2_own == "/":
            raise CgroupError(f"cannot enable {', '.join(want)} for job cgroups in {lay.v2_dir()}: {e.strerror}") \
                from None
        # "no internal processes": the slave moves into a child of its own cgroup first
        sup = lay.v2_dir("supervisor")
        os.makedirs(sup, exist_ok=True)
        with open(os.path.join(sup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        done.append(f"moved the slave into {sup}")
        try:
            enable()
        except OSError as e2:
            missing = [c for c in want if c not in lay.v1]
            if missing:
                raise CgroupError(f"cannot enable {', '.join(want)} for job cgroups in {lay.v2_dir()}: "
                                  f"{e2.strerror} (other processes share the slave's cgroup; run it as a service, "
                                  "with Delegate=yes under systemd)") from None
            return [*done, f"v2 refused {', '.join(want)} ({e2.strerror}); using v1"]
    return [*done, f"enabled {', '.join(want)} for job cgroups in {lay.v2_dir()}"]


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == key and words[1].isdigit():
            return int(words[1])
    return 0


def human(n: int) -> str:
    """``8 GiB``, ``512 MiB``, ``1.5 GiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"


class Limits:
    def __init__(self, memory: int = 0, pids: int = 0, cpus: float = 0):
        self.memory = memory  # bytes; 0: none
        self.pids = pids      # processes; 0: none
        self.cpus = cpus      # CPUs' worth of time; 0: no quota

    @classmethod
    def from_spec(cls, d: dict) -> Limits:
        return cls(int(d.get("memory") or 0), int(d.get("pids") or 0), float(d.get("cpus") or 0))


class JobCgroup:
    """``autotua-<run>`` in each hierarchy; ``create()``, ``add(pid)``, ``hit()``, ``remove()``."""

    def __init__(self, name: str, limits: Limits, lay: Layout | None = None):
        self.name = name
        self.limits = limits
        self.lay = lay or Layout.read()
        self.where = self.lay.where()
        self.v2: str | None = self.lay.v2_dir(name) if self.lay.v2 else None
        self.v1: dict[str, str] = {c: os.path.join(self.lay.v1[c], self.lay.v1_own.get(c, "/").lstrip("/"), name)
                                   for c, h in self.where.items() if h == "v1"}

    @property
    def dirs(self) -> list[str]:
        """Every directory made, deepest last (removed in reverse)."""
        return [*([self.v2] if self.v2 else []), *dict.fromkeys(self.v1.values())]

    def create(self) -> None:
        for d in self.dirs:
            os.mkdir(d, 0o755)
        lim = self.limits
        if lim.memory:
            if self.where.get("memory") == "v2":
                _write(os.path.join(self.v2, "memory.max"), str(lim.memory))
                with contextlib.suppress(FileNotFoundError):
                    _write(os.path.join(self.v2, "memory.swap.max"), "0")
            elif "memory" in self.v1:
                _write(os.path.join(self.v1["memory"], "memory.limit_in_bytes"), str(lim.memory))
                with contextlib.suppress(FileNotFoundError):  # without swap accounting there is no memsw
                    _write(os.path.join(self.v1["memory"], "memory.memsw.limit_in_bytes"), str(lim.memory))
        if lim.pids:
            d = self.v2 if self.where.get("pids") == "v2" else self.v1.get("pids")
            if d:
                _write(os.path.join(d, "pids.max"), str(lim.pids))
        if lim.cpus:
            quota = max(1000, int(lim.cpus * CPU_PERIOD))
            if self.where.get("cpu") == "v2":
                _write(os.path.join(self.v2, "cpu.max"), f"{quota} {CPU_PERIOD}")
            elif "cpu" in self.v1:
                _write(os.path.join(self.v1["cpu"], "cpu.cfs_period_us"), str(CPU_PERIOD))
                _write(os.path.join(self.v1["cpu"], "cpu.cfs_quota_us"), str(quota))

    def child(self, name: str) -> str | None:
        """A v2 child cgroup (the network helper's, for its connection filter), or None without v2."""
        if not self.v2:
            return None
        d = os.path.join(self.v2, name)
        os.mkdir(d, 0o755)
        return d

    def add(self, pid: int, v2_dir: str | None = None) -> None:
        for d in [v2_dir or self.v2, *dict.fromkeys(self.v1.values())]:
            if d:
                _write(os.path.join(d, "cgroup.procs"), str(pid))

    def watch(self) -> dict[str, list[str]]:
        """The counters that say a limit was hit: limit -> [file, key] (read by :func:`hit`)."""
        out = {}
        mem = self.v2 if self.where.get("memory") == "v2" else self.v1.get("memory")
        if self.limits.memory and mem:
            out["memory"] = [os.path.join(mem, "memory.events" if mem == self.v2 else "memory.oom_control"),
                             "oom_kill"]
        pids = self.v2 if self.where.get("pids") == "v2" else self.v1.get("pids")
        if self.limits.pids and pids:
            out["pids"] = [os.path.join(pids, "pids.events"), "max"]
        return out

    def remove(self, timeout: float = 10) -> None:
        remove_dirs(self.dirs, timeout)


def hit(watch: dict[str, list[str]], limits: Limits) -> str | None:
    """Which limit the job ran into, as the reason its jobuild failed; None while it has not."""
    if "memory" in watch and _counter(_read(watch["memory"][0]), watch["memory"][1]):
        return f"used more than {human(limits.memory)} of memory (the slave's memory_limit)"
    if "pids" in watch and _counter(_read(watch["pids"][0]), watch["pids"][1]):
        return f"more than {limits.pids} processes (the slave's pids_limit)"
    return None


def _procs(d: str) -> list[int]:
    return [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split() if p.isdigit()]


def remove_dirs(dirs: list[str], timeout: float = 10) -> list[int]:
    """Kill what is left in these cgroups and remove them (children first); returns the PIDs killed.
    Also what the next start does with a crashed run's cgroups."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    existing = [d for d in dirs if os.path.isdir(d)]
    for d in existing:
        with contextlib.suppress(OSError):
            _write(os.path.join(d, "cgroup.kill"), "1")  # v2, kernel 5.14+
    for d in reversed(existing):
        subs = sorted((os.path.join(root, n) for root, names, _ in os.walk(d) for n in names), reverse=True)
        for cg in [*subs, d]:
            while True:
                pids = _procs(cg)
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
                killed += [p for p in pids if p not in killed]
                try:
                    os.rmdir(cg)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {cg}: {e.strerror} (processes: {_procs(cg)})") from None
                    time.sleep(0.01)
    return killed
