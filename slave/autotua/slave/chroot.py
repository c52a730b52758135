"""The job's chroot, seen from the slave: a keeper process in new namespaces, and commands run in it.

Python 3.11 has no ``os.unshare``, so namespaces come from util-linux, as in :mod:`autotua.sandbox`:
``unshare --mount --pid --fork --kill-child --propagation private`` starts the keeper
(:mod:`autotua.slave.keeper`) as PID 1 of a new PID namespace with a private mount namespace, and
``nsenter --target <keeper> --mount --pid`` + ``chroot`` runs each jobuild inside. Mounts made there
are invisible on the host, and when the keeper dies (it exits when the slave goes away) the kernel
kills every process in the namespace and drops every mount.

Layout of a job directory (``<work>/jobs/<run>/``) and what the chroot sees of it::

    root/        the chroot (overlayfs: stage3 cache below, upper/ above)
    upper/ ovl/  overlayfs upper and work directories
    tree/        the verified files of the plan   -> /var/tmp/autotua/tree    (read-only)
    bridge/      jobuild.sh                       -> /var/tmp/autotua/bridge  (read-only)
    out/<i>/     attachments of jobuild <i>       -> /var/tmp/autotua/out     (read-write)
    logs/<i>.log each jobuild's log, as streamed
                 the distfiles cache              -> /var/cache/distfiles     (read-only)
                 the host's ebuild repository     -> /var/db/repos/gentoo     (read-only, when present)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from autotua import faults
from autotua.slave import SlaveError

INSIDE = "/var/tmp/autotua"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "chroot")


def _tool(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not path:
        raise _err(f"{name} is not installed (util-linux / coreutils)")
    return path


class JobNamespace:
    """One job's namespaces and chroot. ``start()``, then ``popen()`` per jobuild, then ``teardown()``."""

    def __init__(self, job_dir: str | os.PathLike, spec: dict):
        self.dir = Path(job_dir)
        self.root = str(self.dir / "root")
        self.spec = {"root": self.root, **spec}
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None  # the keeper's PID on the host
        self._buf = b""
        self.info: dict = {}

    # -- the keeper ---------------------------------------------------------------------------------
    def start(self, timeout: float = 900) -> dict:
        for d in ("root", "upper", "ovl"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        cmd = [_tool("unshare"), "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
               sys.executable, "-s", "-m", "autotua.slave.keeper"]
        env = {"PYTHONPATH": _PACKAGE_PARENT, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/",
                                     start_new_session=True)
        (self.dir / "keeper.pid").write_text(f"{self.proc.pid}\n")
        self._send(json.dumps(self.spec))
        faults.point("chroot:mounting")  # the keeper is building the root and its mounts
        answer = self._answer(timeout)
        if "error" in answer:
            self._wait_exit()
            raise _err(answer["error"])
        self.pid = self._keeper_pid()
        (self.dir / "keeper.pid").write_text(f"{self.proc.pid} {self.pid}\n")
        self.info = answer
        faults.point("chroot:ready")  # everything is mounted, no jobuild has started
        return answer

    def _keeper_pid(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            raise _err("the keeper process is gone") from None

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise _err("the keeper process is gone") from None

    def _answer(self, timeout: float) -> dict:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _err(f"the keeper did not answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait()
                    raise _err(f"the keeper exited (status {code}) without answering")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise _err(f"the keeper said {line[:200]!r}") from None

    def _wait_exit(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    # -- running things inside ----------------------------------------------------------------------
    def popen(self, argv: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
        """Start ``argv`` chrooted in the job's root, inside its namespaces, with exactly ``env``."""
        if self.pid is None:
            raise _err("the chroot is not set up")
        cmd = [_tool("nsenter"), "--target", str(self.pid), "--mount", "--pid", "--",
               _tool("chroot"), self.root, *argv]
        return subprocess.Popen(cmd, env=env, cwd="/", start_new_session=True, **kw)

    def killall(self) -> None:
        """Kill every process in the namespace except the keeper."""
        self._send("killall")
        answer = self._answer(60)
        if "error" in answer:
            raise _err(answer["error"])

    # -- the end ------------------------------------------------------------------------------------
    def teardown(self) -> None:
        """Kill everything in the root, unmount in reverse, check mountinfo; the keeper then exits."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self._send("teardown")
                faults.point("teardown")  # the keeper is killing and unmounting
                answer = self._answer(120)
                if "error" in answer:
                    raise _err(answer["error"])
        finally:
            self._wait_exit()
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "keeper.pid").unlink()

    def kill(self) -> None:
        """At once: kill the keeper (PID 1 of the namespace), so the kernel kills the rest and drops the
        mounts; ``unshare`` then reaps it. Killing ``unshare`` itself would leave the keeper to init."""
        if self.proc is None:
            return
        for pid in [self.pid] if self.pid else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
