"""Job containers for tests: a slave configuration and its host facts, specs, running a shell in a
container, and what a container leaves on the host (mounts, cgroups, loop devices, processes,
network namespaces) so that a test can say it left nothing."""

from __future__ import annotations

import contextlib
import os
import select
import time
import uuid
from pathlib import Path

from autotua.linux import mounts_under
from autotua.slave.config import Config, from_dict
from autotua.slave.container import Container, cgroups, disk
from autotua.slave.job import Workspace
from autotua.slave.preflight import Host
from tests.support.leftovers import alive, touching

#: small limits, so that tests reach them quickly
LIMITS = {"disk_limit": "256M", "memory_limit": "512M", "pids_limit": 200}


def slave_config(base: str | os.PathLike, **extra) -> Config:
    base = Path(base)
    return from_dict({"master": "http://127.0.0.1:9/", "work_dir": str(base / "work"), "cache_dir": str(base / "cache"),
                      **LIMITS, **extra}, "<test>")


def workspace(base: str | os.PathLike, run: str | None = None) -> Workspace:
    ws = Workspace(Path(base) / "jobs", run or uuid.uuid4().hex)
    ws.create()
    return ws


def start(ws: Workspace, lower: Path, host: Host, prepared=(), distdir: Path | None = None, **spec) -> Container:
    distdir = distdir or ws.dir.parent / "distfiles"
    distdir.mkdir(exist_ok=True)
    c = Container(ws.dir, {**ws.spec(lower, list(prepared), distdir, host), **spec})
    c.start()
    return c


ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}


def sh(c: Container, script: str, timeout: float = 60, env: dict | None = None) -> tuple[int, str]:
    """``bash -c script`` in the container as its root; (exit code, output until it exited: what it
    left running in the background may hold the pipe open longer, and is not waited for)."""
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        p = c.spawn(["/bin/bash", "-c", script], env or ENV, {0: null, 1: w, 2: w})
    finally:
        os.close(w)
        os.close(null)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{script[:80]!r} ran longer than {timeout} s; output so far: {out[-2000:]!r}")
            if select.select([r], [], [], min(left, 0.1))[0]:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                while select.select([r], [], [], 0.05)[0] and (chunk := os.read(r, 1 << 16)):
                    out += chunk
                break
        code = p.wait(max(1.0, deadline - time.monotonic()))
    finally:
        os.close(r)
    return code, out.decode(errors="replace")


def loops_under(path: str | os.PathLike) -> list[str]:
    """Loop devices backed by a file below ``path``."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    out = []
    for dev in sorted(os.listdir("/sys/block")):
        backing = disk.backing_file(f"/dev/{dev}") if dev.startswith("loop") else None
        if backing and backing.startswith(prefix):
            out.append(f"/dev/{dev}: {backing}")
    return out


def cgroups_named(names: list[str]) -> list[str]:
    """Cgroup directories (any hierarchy, below this process's cgroups) with one of these names."""
    lay = cgroups.Layout.read()
    roots = []
    if lay.v2:
        roots.append(lay.v2_dir())
    roots += [os.path.join(m, lay.v1_own.get(c, "/").lstrip("/")) for c, m in lay.v1.items()]
    return sorted(os.path.join(r, n) for r in roots for n in names if os.path.isdir(os.path.join(r, n)))


def netns_alive(inode: int) -> list[int]:
    """PIDs whose network namespace is ``inode`` (a job's, from container.json)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    out.append(int(pid))
    return out


def keepers_alive(base: str | os.PathLike) -> list[int]:
    """The keepers and inits named by the ``keeper.pid`` files of job directories below ``base``."""
    pids = []
    for f in Path(base).rglob("keeper.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(w) for w in f.read_text().split()]
    return [p for p in pids if alive(p)]


def left_behind(base: str | os.PathLike, runs: list[str], netns: list[int] = ()) -> dict[str, list]:
    """Everything of containers below ``base`` (jobs named ``runs``) still on the host."""
    left = {"mounts": mounts_under(base), "loops": loops_under(base),
            "cgroups": cgroups_named([f"autotua-{r}" for r in runs]),
            "processes": [f"{pid}: {cmd}" for pid, cmd in touching(base).items()] + keepers_alive(base),
            "netns": [p for n in netns for p in netns_alive(n)]}
    return {k: v for k, v in left.items() if v}


def wait_nothing_left(base, runs, netns=(), timeout: float = 10) -> dict[str, list]:
    deadline = time.monotonic() + timeout
    while True:
        left = left_behind(base, runs, netns)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
