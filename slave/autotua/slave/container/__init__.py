"""The job container: a signed jobuild runs as root in it and cannot touch the host.

Made from parts the kernel already has, as systemd-nspawn, bubblewrap and rootless podman make
theirs, as one ordered list of steps that each know how to undo themselves (the keeper,
:mod:`~autotua.slave.container.keeper`, runs them), one module per kind of step::

    keeper     the privileged side: the steps, in order, each undone in reverse
    idmap      the job's user namespace: its ids 0-65535 on host ids no account uses
    disk       its disk: an ext4 image of disk_limit bytes on a loop device
    cgroups    memory, processes and CPU limits, and killing all of it
    init       its PID 1: /proc, /sys, pivot_root, the user namespace, running the jobuilds
    network    none, outbound (slirp4netns) or host; netfilter: keeping outbound off the host
    mounts     the root (overlayfs: the stage3, idmapped, below), the binds, /dev, /run

This module is the slave's side of it: :class:`Container` hands the spec to a keeper
(:class:`Keeper`, started ahead), runs each jobuild through the job's init
(:meth:`Container.spawn`), watches the limits, and tears it down.

Layout of a job directory (``<work>/jobs/<run>/``; K: seen only in the keeper's mount
namespace) and what the job sees of it::

    tree/        the verified files of the plan   -> /var/tmp/autotua/tree    (read-only)
    bridge/      jobuild.sh                       -> /var/tmp/autotua/bridge  (read-only)
    logs/<i>.log each jobuild's log, as streamed (written by the slave, out of the job's reach)
    disk.img     the job's disk
    disk/     K  its filesystem: upper/ ovl/ (the root's layer), out/<i>/ (attachments
                 -> /var/tmp/autotua/out), dist-upper/ (its DISTDIR downloads)
    lower/    K  the cached stage3, idmapped, read-only
    root/     K  the job's root (overlayfs)
    dist-lower/ K  the verified distfiles cache, idmapped, read-only -> /var/cache/distfiles (with
                 dist-upper above)
                 the host's ebuild repository     -> /var/db/repos/gentoo     (read-only, when present)
    container.json  what the keeper made (cgroups, loop device, network namespace), for cleanup
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

from autotua import faults
from autotua.slave import SlaveError
from autotua.slave.container import cgroups, disk

INSIDE = "/var/tmp/autotua"
KEEPER_MODULE = "autotua.slave.container.keeper"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "container")


class JobProcess:
    """A process the job's init started for us: ``poll()``, ``wait()``, ``returncode`` as Popen's."""

    def __init__(self, container: Container, ident: int, pid: int):
        self.container, self.id, self.pid = container, ident, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.container._pump(0)
            self.returncode = self.container._exits.pop(self.id, None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("job process", timeout)
            self.container._pump(0.5 if left is None else min(left, 0.5))
        return self.returncode


class Keeper:
    """A keeper process, started ahead of its job: starting Python is the slowest part of a
    container's start, so the daemon keeps one waiting (it exits by itself when its stdin closes)."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PYTHONPATH": _PACKAGE_PARENT, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        try:
            # -S: no site (a virtualenv's .pth files cost tens of ms); the package comes from PYTHONPATH
            self.proc = subprocess.Popen([sys.executable, "-S", "-s", "-m", KEEPER_MODULE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, cwd="/", pass_fds=(theirs.fileno(),),
                                         start_new_session=True)
        finally:
            self.channel_fd = theirs.fileno()  # its number in the keeper, where pass_fds kept it
            theirs.close()
        self.sock = ours

    def close(self) -> None:
        """A keeper no job took: it sees its stdin close and exits."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Container:
    """One job's container. ``start()``, then ``spawn()`` per jobuild, then ``teardown()``; ``keeper``
    is one started ahead (else ``start()`` starts it)."""

    def __init__(self, job_dir: str | os.PathLike, spec: dict, keeper: Keeper | None = None):
        self.dir = os.fspath(job_dir)
        self.spec = {"job": self.dir, **spec}
        self._keeper = keeper
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.sock: socket.socket | None = None
        self._buf = b""
        self._exits: dict[int, int] = {}
        self._replies: dict[int, dict] = {}
        self._running: set[int] = set()  # spawned, not yet exited
        self._next = 0
        self._init_gone = False

    @property
    def pid(self) -> int | None:
        """The job's init, as the host sees it."""
        return self.info.get("init_pid")

    # -- the keeper ---------------------------------------------------------------------------------
    def start(self, timeout: float = 900) -> dict:
        os.makedirs(self.dir, exist_ok=True)
        keeper, self._keeper = self._keeper or Keeper(), None
        self.proc, self.sock = keeper.proc, keeper.sock
        self._pidfile(f"{self.proc.pid}\n")
        self._send(json.dumps({**self.spec, "channel_fd": keeper.channel_fd}))
        while True:
            answer = self._answer(timeout)
            if "step" in answer:
                faults.point(f"container:{answer['step']}")  # the keeper is doing this step now
                continue
            if "undo" in answer:  # a step failed: the keeper undoes what it did, then says why
                continue
            if "error" in answer:
                self._wait_exit()
                raise _err(answer["error"])
            break
        self.info = answer
        self._pidfile(f"{self.proc.pid} {self.pid}\n")
        faults.point("container:ready")  # everything is up, no jobuild has started
        return answer

    def _pidfile(self, text: str) -> None:
        with open(os.path.join(self.dir, "keeper.pid"), "w") as f:
            f.write(text)

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

    def _wait_exit(self, timeout: float = 60) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    # -- the job's init -----------------------------------------------------------------------------
    def _pump(self, timeout: float) -> None:
        """Take every message the init has sent (waiting up to ``timeout`` for the first)."""
        if self.sock is None or self._init_gone:
            return
        wait = timeout
        while select.select([self.sock], [], [], wait)[0]:
            data = self.sock.recv(1 << 16)
            if not data:
                self._init_gone = True
                for ident in self._running:
                    self._exits.setdefault(ident, -signal.SIGKILL)
                return
            msg = json.loads(data)
            if msg.get("op") == "exited":
                self._exits[msg["id"]] = int(msg["code"])
                self._running.discard(msg["id"])
            else:
                self._replies[msg.get("id")] = msg
            wait = 0

    def _request(self, msg: dict, fds: list[int] = (), timeout: float = 60) -> dict:
        if self.sock is None or self._init_gone:
            raise _err("the job's init is gone")
        self._next += 1
        msg = {**msg, "id": self._next}
        socket.send_fds(self.sock, [json.dumps(msg).encode()], list(fds))
        deadline = time.monotonic() + timeout
        while msg["id"] not in self._replies:
            if self._init_gone:
                raise _err("the job's init is gone")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _err(f"the job's init did not answer {msg['op']} within {timeout:.0f} s")
            self._pump(left)
        answer = self._replies.pop(msg["id"])
        if answer.get("op") == "error":
            raise _err(answer.get("error", "?"))
        return answer

    def spawn(self, argv: list[str], env: dict[str, str], fds: dict[int, int]) -> JobProcess:
        """Start ``argv`` in the job (as its root, in its root directory) with exactly ``env``, and
        the descriptors ``fds`` (number inside -> our descriptor)."""
        if not self.pid:
            raise _err("the container is not up")
        answer = self._request({"op": "spawn", "argv": argv, "env": env, "fds": list(fds)}, list(fds.values()))
        self._running.add(answer["id"])
        return JobProcess(self, answer["id"], answer["pid"])

    def killall(self) -> None:
        """Kill every process of the job but its init."""
        self._request({"op": "killall"}, timeout=60)

    # -- watching it --------------------------------------------------------------------------------
    def host_path(self, *parts: str) -> str:
        """A path of the keeper's namespace (the job's disk, its attachments) as the slave reaches it."""
        return os.path.join(f"/proc/{self.proc.pid}/root", self.dir.lstrip("/"), *parts)

    def out_dir(self) -> str:
        return self.host_path("disk", "out")

    def hit(self) -> str | None:
        """Which limit the job ran into (memory, processes, disk), or None."""
        limits = self.spec.get("limits") or {}
        reason = cgroups.hit(self.info.get("watch") or {}, cgroups.Limits.from_spec(limits))
        if reason:
            return reason
        if self.proc and limits.get("disk"):
            full = disk.full(self.host_path("disk"))
            if full == "space":
                return f"used more than {cgroups.human(int(limits['disk']))} of disk (the slave's disk_limit)"
            if full == "inodes":
                return f"made more files than its disk holds ({cgroups.human(int(limits['disk']))}, the slave's " \
                       "disk_limit)"
        return None

    # -- the end ------------------------------------------------------------------------------------
    def teardown(self) -> dict:
        """Kill everything in it, undo every step in reverse, check mountinfo; the keeper then exits."""
        if self.proc is None:
            return {}
        answer: dict = {}
        died = self.proc.poll() is not None
        try:
            if not died:
                self._send("teardown")
                while True:
                    answer = self._answer(120)
                    if "undo" in answer:
                        faults.point(f"teardown:{answer['undo']}")  # the keeper is undoing this step
                        continue
                    break
                if "error" in answer:
                    raise _err(answer["error"])
        finally:
            self._close()
            self._wait_exit()
            self.proc = None
        if died:  # killed (it undid nothing): the kernel took the rest, the cgroups are ours to remove
            cgroups.remove_dirs(self.info.get("cgroups") or [])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.dir, "keeper.pid"))
        return answer

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def kill(self) -> None:
        """At once: SIGKILL the keeper; the job's init dies with it and the kernel kills the rest and
        drops the mounts; then remove the cgroups it left."""
        self._close()
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        cgroups.remove_dirs(self.info.get("cgroups") or [])
