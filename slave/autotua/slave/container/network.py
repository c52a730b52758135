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
    The host's network, as the chroot had it: only for machines that are there to run jobs.

The namespace is made by the job's init while it is still root on the host, so it belongs to the
host's user namespace: the job's root cannot reconfigure it (no address, route or firewall
change; its nested namespaces, as portage's network-sandbox makes them, are its own). The init
brings ``lo`` up and lets any of the job's users bind low ports and ping.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
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
    """slirp4netns for the network namespace at ``netns`` (a path: it must not join the job's user
    namespace, whose root has no say over this network namespace); ``start()``, ``wait_ready()``,
    ``stop()``."""

    def __init__(self, program: str, netns: str, log_path: str, cgroup_procs: list[str]):
        self.program, self.netns, self.log_path, self.cgroup_procs = program, netns, log_path, cgroup_procs
        self.proc: subprocess.Popen | None = None
        self._ready_r: int | None = None
        self._exit_w: int | None = None

    def start(self) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        argv = [self.program, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", "--netns-type=path", self.netns,
                "tap0"]
        procs = self.cgroup_procs

        def placed() -> None:  # in the child, before exec: its cgroups (the filter), and die with us
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)

        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=(ready_w, exit_r), preexec_fn=placed, close_fds=True)
        finally:
            os.close(log)
            os.close(ready_w)
            os.close(exit_r)
        self._ready_r, self._exit_w = ready_r, exit_w

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetworkError(f"slirp4netns did not come up within {timeout:.0f} s{self._tail()}")
            ready, _, _ = select.select([self._ready_r], [], [], min(left, 0.05))
            if ready:
                if os.read(self._ready_r, 1) == b"1":
                    os.close(self._ready_r)
                    self._ready_r = None
                    return
                raise NetworkError(f"slirp4netns exited before the network was up{self._tail()}")
            if self.proc.poll() is not None:
                raise NetworkError(f"slirp4netns exited ({self.proc.returncode}){self._tail()}")

    def _tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()[-300:].strip()
        except OSError:
            return ""
        return f": {text}" if text else ""

    def stop(self) -> None:
        """At once: it holds nothing worth a clean exit (its exit descriptor is for a keeper that dies)."""
        for fd in (self._ready_r, self._exit_w):
            if fd is not None:
                os.close(fd)
        self._ready_r = self._exit_w = None
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None
