"""An outside world for the network tests, with no internet: a network namespace of the test's own
("far") holding a TCP server, joined to the host by a veth pair on a private /30, and listeners on
the host (on 127.0.0.1 and on all addresses) that a job must not reach.

The host end of the veth is one of the host's own addresses, so it doubles as "the host's
address" a job must not reach. Killing the far namespace's process removes the namespace and the
veth pair with it; :meth:`NetWorld.close` also deletes the host end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading

SERVER = r"""
import socket, sys
print("unshared", flush=True)  # unshare(1) has made the namespace: /proc/<pid>/ns/net is it now
sys.stdin.readline()  # the veth is up
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"far side\n")
    c.close()
"""


class Listener(threading.Thread):
    """A TCP listener on the host that counts connections and answers ``host side``."""

    def __init__(self, addr: str):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with contextlib.suppress(OSError):
                c.sendall(b"host side\n")
            c.close()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class NetWorld:
    def __init__(self):
        n = random.randrange(1, 250)
        tag = f"{os.getpid() % 10000}{n}"
        self.host_if, self.far_if = f"ath{tag}"[:15], f"atf{tag}"[:15]
        self.host_addr, self.far_addr = f"10.231.{n}.1", f"10.231.{n}.2"
        self.far_port = 8080
        self.far: subprocess.Popen | None = None
        self.loopback: Listener | None = None
        self.anywhere: Listener | None = None

    def __enter__(self) -> NetWorld:
        try:
            self.far = subprocess.Popen(["unshare", "--net", "--", sys.executable, "-c", SERVER, self.far_addr,
                                         str(self.far_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            # until unshare(1) has unshared and exec'd, /proc/<pid>/ns/net is still the host's: the veth's
            # far end would land on the host, and the far side would not find it (seen once in CI)
            assert self.far.stdout.readline() == "unshared\n"
            ns = f"/proc/{self.far.pid}/ns/net"
            assert os.stat(ns).st_ino != os.stat("/proc/self/ns/net").st_ino, "the far side has no namespace of its own"
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.far_if, "netns", ns)
            self._ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            far = ["nsenter", f"--net={ns}", "--", "ip"]
            for args in (["addr", "add", f"{self.far_addr}/30", "dev", self.far_if], ["link", "set", self.far_if, "up"],
                         ["link", "set", "lo", "up"]):
                subprocess.run(far + args, check=True, capture_output=True)
            self.far.stdin.write("go\n")
            self.far.stdin.flush()
            assert self.far.stdout.readline() == "listening\n"
            self.loopback = Listener("127.0.0.1")
            self.anywhere = Listener("0.0.0.0")
        except BaseException:
            self.close()
            raise
        return self

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for lst in (self.loopback, self.anywhere):
            if lst:
                lst.close()
        if self.far:
            self.far.kill()
            self.far.wait()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
