"""The job's network, as the volunteer chose it (``network`` in slave.toml).

``outbound`` (the default)
    A network namespace of the job's own whose only way out is slirp4netns, a user-mode TCP/IP
    stack: the job reaches the internet as any program on the host would, and nothing else. The
    host's loopback is not the job's (``127.0.0.1`` in the job is the job), slirp4netns's alias
    of it is off (``--disable-host-loopback``), and :mod:`~autotua.slave.container.netfilter`
    refuses its connections to the host's own addresses. slirp4netns runs sandboxed
    (``--enable-sandbox --enable-seccomp``: no capabilities, an empty root) and ends with the keeper
    (``--exit-fd``).
``none``
    The namespace with loopback only.
``host``
    The host's network: only for machines that are there to run jobs.

The namespace is made by the job's init while it is still root on the host, so it belongs to the
host's user namespace: the job's root cannot reconfigure it (no address, route or firewall
change; its nested namespaces, as portage's network-sandbox makes them, are its own). The init
brings ``lo`` up and lets any of the job's users bind low ports and ping.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import time

from autotua import linux
from autotua.slave import SlaveError

MODES = ("outbound", "none", "host")
SLIRP_NAMESERVER = "10.0.2.3"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
NETNS_SYSCTLS = {"net/ipv4/ip_unprivileged_port_start": "0", "net/ipv4/ping_group_range": "0 2147483647"}


class NetworkError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "network")


def slirp4netns() -> str | None:
    return shutil.which("slirp4netns", path="/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin")


def resolv_conf(mode: str, host_file: str = "/etc/resolv.conf") -> bytes:
    """What the job's /etc/resolv.conf says."""
    if mode == "outbound":
        return f"# the user-mode network's resolver (it asks the host's)\nnameserver {SLIRP_NAMESERVER}\n".encode()
    if mode == "host":
        try:
            with open(host_file, "rb") as f:
                return f.read()
        except OSError:
            return b""
    return b"# network = none: no resolver\n"


def hosts(hostname: str) -> bytes:
    return f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost {hostname}\n".encode()


# -- in the job's init, root on the host, in the new namespace ------------------------------------
def configure_namespace() -> None:
    """``lo`` up, low ports and ping for every user of the job."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
    for key, value in NETNS_SYSCTLS.items():
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)


# -- in the keeper ----------------------------------------------------------------------------------
class Slirp:
    """slirp4netns for the network namespace the job's init makes: started at once, it waits (before
    ``exec``) until the init says the namespace is there, so that it comes up while the keeper
    mounts; ``wait_ready()``, ``stop()``."""

    def __init__(self, program: str, init_pid: int, net_r: int, log_path: str, cgroup_procs: list[str],
                 prepare=None):
        self.program, self.init_pid, self.log_path, self.cgroup_procs = program, init_pid, log_path, cgroup_procs
        self.prepare = prepare  # run in its process first (the connection filter's programs)
        self.pid: int | None = None
        self._ready_r: int | None = None
        self._exit_w: int | None = None
        self._start(net_r)

    def _start(self, net_r: int) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        # a path, not the pid: given a pid, slirp4netns would join the job's user namespace too, whose
        # root has no say over this network namespace
        argv = [self.program, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", "--netns-type=path",
                f"/proc/{self.init_pid}/ns/net", "tap0"]
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        pid = os.fork()
        if pid == 0:
            try:
                linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
                os.dup2(log, 2)
                if self.prepare:
                    self.prepare()
                for path in self.cgroup_procs:  # its cgroups (the connection filter) before it exists
                    with open(path, "w") as f:
                        f.write("0")
                if os.read(net_r, 1) != b"n":  # the init made the namespace (or died: nothing to do)
                    os._exit(1)
                os.dup2(log, 1)
                os.dup2(log, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                linux.close_fds_except({0, 1, 2, ready_w, exit_r})
                os.set_inheritable(ready_w, True)
                os.set_inheritable(exit_r, True)
                os.execv(self.program, argv)
            except BaseException as e:  # in the log, for wait_ready to say
                os.write(2, f"autotua: starting slirp4netns: {e}\n".encode())
            finally:
                os._exit(127)
        for fd in (log, ready_w, exit_r, net_r):
            os.close(fd)
        self.pid, self._ready_r, self._exit_w = pid, ready_r, exit_w

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetworkError(f"slirp4netns did not come up within {timeout:.0f} s{self._tail()}")
            if select.select([self._ready_r], [], [], left)[0]:
                got = os.read(self._ready_r, 1)
                os.close(self._ready_r)
                self._ready_r = None
                if got == b"1":
                    return
                raise NetworkError(f"slirp4netns exited before the network was up{self._tail()}")

    def _tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()[-300:].strip()
        except OSError:
            return ""
        return f": {text}" if text else ""

    def kill(self) -> None:
        """At once: it holds nothing worth a clean exit (its exit descriptor is for a keeper that dies)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill it and wait until it is gone."""
        for fd in (self._ready_r, self._exit_w):
            if fd is not None:
                os.close(fd)
        self._ready_r = self._exit_w = None
        if self.pid is None:
            return
        self.kill()
        os.waitpid(self.pid, 0)
        self.pid = None
