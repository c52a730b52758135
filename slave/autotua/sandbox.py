"""A sandbox for running untrusted bash at global scope (the metadata daemon).

The process runs in fresh mount, network, PID, IPC and UTS namespaces (util-linux ``unshare --fork
--kill-child``), chrooted into a read-only tmpfs that holds nothing but bash, the libraries it loads,
``/dev/null`` and the files we bind in, with an empty environment and, when we are root, as user
``nobody``. So a jobuild at global scope has no commands to run, no files to read, no network to
reach, and when the sandbox's first process dies the kernel kills everything it started.

Without root, the same is tried in a user namespace (``unshare --user --map-root-user``); where
even that is impossible the daemon runs with an empty environment and resource limits only, and
:func:`isolation` says so, so callers can warn.

Run as ``python -m autotua.sandbox SPEC_JSON``, this module is the sandbox's first process: it builds
the root inside the new mount namespace, drops privileges and execs the command.

Each sandbox has a work directory on the host, ``$TMPDIR/autotua-sandbox-*/``: ``root/`` (the empty
mountpoint its root is built on, in its own mount namespace) and whatever the caller keeps there to
bind in (the metadata daemon's ``src/``). The process that made it holds a lock on its ``lock`` file
for as long as it lives, and removes the directory when the sandbox is done, at its exit (atexit)
or when the object is collected; a work directory whose owner died without any of that (SIGKILL, a
gunicorn worker killed for its timeout) has no lock holder any more, and the next sandbox started on
the machine removes it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NOBODY = 65534
PREFIX = "autotua-sandbox-"


@functools.cache
def isolation() -> str:
    """'root', 'userns' or 'none': how strongly :func:`popen` can isolate on this host."""
    if not shutil.which("unshare"):
        return "none"
    if os.geteuid() == 0:
        return "root"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
                            "true"], capture_output=True)
    return "userns" if probe.returncode == 0 else "none"


@functools.cache
def _libraries(binary: str) -> tuple[str, ...]:
    """The shared libraries ``binary`` loads (from ldd), so the root can hold exactly those."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m and os.path.exists(m[1]):
            libs.append(m[1])
    return tuple(libs)


# -- work directories -------------------------------------------------------------------------------
#: how old an unlocked "lock.new" must be before its directory counts as its dead maker's
_MAKING_SECONDS = 60
_held: dict[str, int] = {}  # work directory -> the fd of its locked lock file
_held_lock = threading.Lock()


def make_workdir() -> Path:
    """A new work directory (with an empty ``root/``), locked by this process; stale ones of dead
    processes are removed first."""
    clean_stale()
    path = Path(tempfile.mkdtemp(prefix=PREFIX))
    path.chmod(0o755)  # the sandbox's user (nobody) reads what is bound in from below it
    # The lock is taken under a private name and then renamed into place: a clean_stale() of another
    # thread or process that found "lock" before it was locked would take this new directory for stale.
    fd = os.open(path / "lock.new", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (path / "root").mkdir()
    os.rename(path / "lock.new", path / "lock")
    with _held_lock:
        _held[str(path)] = fd
    return path


def remove_workdir(path: str | os.PathLike) -> None:
    """Remove a work directory this process made (nothing is removed while anything is mounted below)."""
    from autotua.linux import mounts_under

    key = str(path)
    with _held_lock:
        fd = _held.pop(key, None)
    if fd is None:
        return
    try:
        if not mounts_under(key):
            shutil.rmtree(key, ignore_errors=True)
    finally:
        os.close(fd)


def clean_stale(base: str | os.PathLike | None = None) -> list[str]:
    """Remove the work directories whose owner is gone (nobody holds their lock); returns them."""
    from autotua.linux import mounts_under

    base = Path(base or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return removed
    for path in candidates:
        if str(path) in _held:
            continue
        try:
            fd = os.open(path / "lock", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            # no lock: another program's, or one being made right now (its "lock.new" is locked for
            # microseconds); a "lock.new" a minute old whose lock nobody holds was its maker's last act
            try:
                if time.time() - (path / "lock.new").stat().st_mtime < _MAKING_SECONDS:
                    continue
                fd = os.open(path / "lock.new", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its owner lives
        try:
            if not mounts_under(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
        finally:
            os.close(fd)
    return removed


@atexit.register
def _remove_all() -> None:
    for path in list(_held):
        remove_workdir(path)


def popen(argv: list[str], binds: dict[str, str], env: dict[str, str], *, workdir: str | os.PathLike,
          pass_fds=(), **kw) -> subprocess.Popen:
    """Start ``argv`` (argv[0] = the host's bash) in the sandbox built on ``workdir/root`` (from
    :func:`make_workdir`); returns the process.

    ``binds`` maps paths inside the sandbox to host files or directories bound there read-only.
    """
    level = isolation()
    bash = os.path.realpath(argv[0])
    if level == "none":
        argv = [binds.get(a, a) for a in argv]
        return subprocess.Popen(argv, env=env, pass_fds=pass_fds, start_new_session=True, **kw)
    mountpoint = str(Path(workdir) / "root")
    all_binds = {"/bin/bash": bash, "/dev/null": "/dev/null"}
    for lib in _libraries(bash):
        all_binds[lib] = lib
    all_binds.update(binds)
    spec = {
        "mountpoint": mountpoint,
        "binds": all_binds,
        "argv": ["/bin/bash", *argv[1:]],
        "env": env,
        "uid": NOBODY if level == "root" else None,
    }
    cmd = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child",
           "--propagation", "private"]
    if level == "userns":
        cmd[1:1] = ["--user", "--map-root-user"]
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd += ["--", sys.executable, "-s", "-m", "autotua.sandbox", json.dumps(spec)]
    return subprocess.Popen(cmd, env={"PYTHONPATH": package_parent, "PATH": "/usr/bin:/bin"},
                            pass_fds=pass_fds, start_new_session=True, **kw)


def _enter(spec: dict) -> None:
    from autotua.linux import MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REMOUNT, mount

    root = spec["mountpoint"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for inside, host in spec["binds"].items():
        target = root + inside
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(host):
            os.makedirs(target, exist_ok=True)
        else:
            open(target, "w").close()
        mount(host, target, None, MS_BIND)
        # Keep the flags the kernel locks on the source (nodev on /dev, in a user namespace...).
        kept = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV)
        extra = 0 if inside == "/dev/null" else MS_NOSUID | MS_NODEV
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept | extra)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.chroot(root)
    os.chdir("/")
    if spec["uid"] is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    try:
        _enter(json.loads(sys.argv[1]))
    except Exception as e:  # the parent reads this on stderr
        print(f"autotua sandbox: cannot set up: {e}", file=sys.stderr)
        sys.exit(127)


def kill(proc: subprocess.Popen) -> None:
    """Kill a sandbox and reap it: its first process (PID 1 of the namespace) is killed, so the
    kernel kills and reaps everything inside, and ``unshare`` reaps that first process and exits.
    Killing ``unshare`` itself would leave its child for the host's init to reap."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        children = []
    for pid in children or [proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
