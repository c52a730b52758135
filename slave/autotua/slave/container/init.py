"""The job's init: PID 1 of the job's PID namespace, the only way anything runs in the container.

The keeper forks it early (no ``exec``: it runs code already loaded, nothing from the job's
root). Still root on the host, it puts itself into the job's cgroups, makes the job's network
namespace (so it belongs to the host's user namespace), and waits while the keeper mounts. Let
in, it mounts the job's own ``/proc`` and a read-only ``/sys`` (showing its own network devices),
enters the root with ``pivot_root`` and detaches the old one, so neither it nor anything it starts
has the host's ``/`` as root or working directory.
Then it joins the job's user namespace and unshares mount, IPC, UTS and cgroup namespaces: the
mount namespace is copied into one owned by the job's user namespace, and the kernel locks every
mount the keeper made. Last, as the job's root: ``/proc/sys`` and the other kernel knobs bound
read-only over themselves (writing them is refused anyway: they belong to the host's root), a
fresh session keyring, the host name, and ``PR_SET_DUMPABLE`` off, so that the job's processes
can neither ptrace it nor read its memory, descriptors or environment through ``/proc/1``.

It then serves the slave on a ``SOCK_SEQPACKET`` socket, one JSON message each way:

``{"op": "spawn", "id": n, "argv": [...], "env": {...}, "fds": [0, 1, 2, 3]}`` + descriptors
    fork, put the descriptors at those numbers, ``execve``; answers ``spawned`` (with the pid) or
    ``error``, and ``exited`` (with the exit code, negative for a signal) when it ends.
``{"op": "killall", "id": n}``
    SIGKILL every other process of the namespace, wait until they are gone; answers ``killed``.

Signals from inside its namespace do not reach a PID 1 that has no handler for them; SIGKILL from
the keeper does, and its death takes every process of the namespace with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import socket
import sys
import time

from autotua import linux
from autotua.linux import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REMOUNT
from autotua.slave.container import network

#: kernel knobs made read-only inside (as container runtimes do); writes are refused anyway
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
MAX_MESSAGE = 1 << 20


def _status(fd: int, **msg) -> None:
    os.write(fd, json.dumps(msg).encode() + b"\n")


def main(spec: dict, cgroup_procs: list[str], userns_fd: int, go_r: int, status_w: int, channel: int,
         lifeline: int, net_w: int | None) -> None:
    """The init's life, in the forked child; never returns. ``lifeline`` reads EOF once the keeper
    is gone, however it went; ``net_w`` tells slirp4netns the network namespace is there."""
    try:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the keeper
        linux.close_fds_except({userns_fd, go_r, status_w, channel, lifeline, net_w})
        for path in cgroup_procs:  # before anything of the job exists
            with open(path, "w") as f:
                f.write("0")
        if spec["network"] != "host":
            linux.unshare(linux.CLONE_NEWNET)
            network.configure_namespace()
        if net_w is not None:
            os.write(net_w, b"n")
            os.close(net_w)
        _status(status_w, net=True)  # in the job's cgroups, and its network namespace is made
        if os.read(go_r, 1) != b"g":  # the keeper went away before it was done
            os._exit(1)
        os.close(go_r)
        enter(spec, userns_fd)
        # changing credentials cleared the death signal: set it again, then make sure the keeper did
        # not go in between
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(1)
    except BaseException as e:
        with contextlib.suppress(OSError):
            _status(status_w, error=f"the job's init: {type(e).__name__}: {e}")
        os._exit(1)
    try:
        _status(status_w, entered=True)
        os.close(status_w)
        serve(channel, lifeline)
    finally:
        os._exit(0)


def enter(spec: dict, userns_fd: int) -> None:
    root = spec["root"]
    # a mount namespace of our own, still the host's root: these mounts are locked like the keeper's
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    linux.mount("sysfs", f"{root}/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    os.chdir(root)
    linux.pivot_root(".", ".")  # the old root is stacked below the new one...
    linux.umount(".", linux.MNT_DETACH)  # ...and detached: nothing of the host's tree is left here
    os.chdir("/")
    linux.setns(userns_fd, linux.CLONE_NEWUSER)
    os.close(userns_fd)
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS | linux.CLONE_NEWCGROUP)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    for name in PROC_READONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            linux.mount(path, path, None, MS_BIND)
            linux.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    linux.join_session_keyring()
    linux.sethostname(spec["hostname"])
    linux.prctl(linux.PR_SET_DUMPABLE, 0)


# -- serving the slave ------------------------------------------------------------------------------
def serve(channel: int, lifeline: int) -> None:
    sock = socket.socket(fileno=channel)
    sig_r, sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(sig_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> the slave's id for it
    while True:
        for fd in select.select([sock, sig_r, lifeline], [], [], 1.0)[0]:
            if fd == lifeline:
                return  # the keeper is gone: so are we, and with us every process of the job
            if fd == sig_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(sig_r, 4096)
                continue
            try:
                data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 16)
            except OSError:
                return
            if not data:
                return  # the slave is gone: so are we, and with us every process of the job
            try:
                msg = json.loads(data)
                if msg.get("op") == "spawn":
                    _reply(sock, spawn(msg, fds, children))
                elif msg.get("op") == "killall":
                    killall(sock, children)
                    _reply(sock, {"op": "killed", "id": msg.get("id")})
                else:
                    _reply(sock, {"op": "error", "id": msg.get("id"), "error": f"unknown request {msg!r:.100}"})
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        reap(sock, children)


def _reply(sock: socket.socket, msg: dict) -> None:
    sock.send(json.dumps(msg).encode())


def reap(sock: socket.socket | None, children: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children and sock is not None:
            _reply(sock, {"op": "exited", "id": children.pop(pid), "code": os.waitstatus_to_exitcode(status)})


def spawn(msg: dict, fds: list[int], children: dict[int, int]) -> dict:
    argv, env, targets = msg["argv"], msg["env"], msg["fds"]
    if len(targets) != len(fds):
        return {"op": "error", "id": msg["id"], "error": f"{len(fds)} descriptors for {len(targets)} places"}
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            _child(argv, env, dict(zip(targets, fds, strict=True)), msg.get("cwd") or "/", err_w)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.write(err_w, f"{argv[0]}: {e}".encode(errors="replace")[:4000])
        os._exit(127)
    os.close(err_w)
    try:
        failed = os.read(err_r, 4096)
    finally:
        os.close(err_r)
    if failed:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return {"op": "error", "id": msg["id"], "error": failed.decode(errors="replace")}
    children[pid] = msg["id"]
    return {"op": "spawned", "id": msg["id"], "pid": pid}


def _child(argv: list[str], env: dict[str, str], fds: dict[int, int], cwd: str, err_w: int) -> None:
    signal.set_wakeup_fd(-1)
    for sig in range(1, signal.NSIG):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    linux.prctl(linux.PR_SET_DUMPABLE, 1)  # as exec would: its /proc/self is its own again
    with open("/proc/self/oom_score_adj", "r+") as f:
        if f.read().strip() != "0":
            f.write("0")  # the init is spared by the OOM killer where it may be; what it starts is not
    high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for target, fd in fds.items()}
    for target, fd in high.items():
        os.dup2(fd, target, inheritable=True)
    linux.close_fds_except({*fds, err_w})
    os.chdir(cwd)
    os.umask(0o022)
    os.execve(argv[0], argv, env)


def killall(sock: socket.socket, children: dict[int, int], timeout: float = 10) -> None:
    """SIGKILL every other process of the namespace and wait until the kernel has them all."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise
        reap(sock, children)
        others = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
        if not others or time.monotonic() > deadline:
            return
        time.sleep(0.002)


if __name__ == "__main__":
    sys.exit("autotua.slave.container.init is started by the keeper, not run")
