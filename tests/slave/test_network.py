"""The job's network, each mode against an outside world of the test's own (no internet here): a
server in a network namespace the test made, reached through a veth pair whose host end is one
of the host's own addresses, and listeners on the host's 127.0.0.1 and on all its addresses.

``outbound`` reaches the far server and nothing of the host; ``none`` reaches nothing; ``host``
reaches all of it (the volunteer's explicit choice)."""

from __future__ import annotations

import pytest

from autotua.slave.container.netfilter import host_addresses
from autotua.slave.preflight import Host
from tests.slave.helpers import needs_root
from tests.support.container import sh, slave_config, start, wait_nothing_left, workspace
from tests.support.networld import NetWorld

pytestmark = [pytest.mark.root, needs_root]

CONNECT = r'''
try() { # NAME ADDRESS PORT: one line, what connecting said
    if out=$(timeout 5 bash -c "exec 3<>/dev/tcp/$2/$3 && head -1 <&3" 2>&1); then echo "$1: $out"
    else echo "$1: refused (${out##*: })"; fi
}
'''


@pytest.fixture(scope="module")
def world():
    with NetWorld() as w:
        yield w


def _probe(c, world, extra: str = "") -> dict[str, str]:
    script = CONNECT + f"""
try far {world.far_addr} {world.far_port}
try loopback 127.0.0.1 {world.loopback.port}
try slirp-host-alias 10.0.2.2 {world.loopback.port}
try host-address {world.host_addr} {world.anywhere.port}
""" + "".join(f"try host-{a} {a} {world.anywhere.port}\n" for a in host_addresses() if not a.startswith("127."))
    _rc, out = sh(c, script + extra, timeout=120)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def _host(tmp_path, network: str) -> Host:
    return Host.of(slave_config(tmp_path / "slave", network=network))


def test_outbound_reaches_the_world_and_nothing_of_the_host(tmp_path, cached_root, world):
    ws = workspace(tmp_path)
    c = start(ws, cached_root, _host(tmp_path, "outbound"))
    seen = (world.loopback.connections, world.anywhere.connections)
    try:
        said = _probe(c, world)
        _rc, ifaces = sh(c, "ls /sys/class/net; cat /etc/resolv.conf")
    finally:
        c.teardown()
    assert said.pop("far") == "far side", said  # the internet, as far as this test has one
    for name, what in said.items():
        assert what.startswith("refused"), f"{name}: {what}"
    assert (world.loopback.connections, world.anywhere.connections) == seen  # not one connection got there
    assert ifaces.split()[:2] == ["lo", "tap0"] and "nameserver 10.0.2.3" in ifaces
    assert f"{world.host_addr}/32" in c.info["blocked"]
    assert wait_nothing_left(tmp_path, [ws.run], [c.info["netns"]]) == {}


def test_none_is_loopback_only(tmp_path, cached_root, world):
    ws = workspace(tmp_path)
    c = start(ws, cached_root, _host(tmp_path, "none"))
    try:
        said = _probe(c, world, "try own-loopback 127.0.0.1 1\n")
        _rc, ifaces = sh(c, "ls /sys/class/net")
    finally:
        c.teardown()
    assert ifaces.split() == ["lo"]
    assert all(what.startswith("refused") for what in said.values()), said
    assert "network is unreachable" in said["far"].lower()
    assert "connection refused" in said["own-loopback"].lower()  # lo is up, nothing listens


def test_host_is_the_hosts_network(tmp_path, cached_root, world):
    ws = workspace(tmp_path)
    c = start(ws, cached_root, _host(tmp_path, "host"))
    try:
        said = _probe(c, world)
    finally:
        c.teardown()
    assert said["far"] == "far side" and said["loopback"] == "host side" and said["host-address"] == "host side"
    assert "netns" not in c.info


def test_portage_network_sandbox_works_inside(tmp_path, cached_root, host):
    """FEATURES=network-sandbox: portage unshares a network namespace of its own and brings its lo up;
    low ports and ping sockets work for the job's users in the job's namespace too."""
    ws = workspace(tmp_path)
    c = start(ws, cached_root, host)
    try:
        rc, out = sh(c, r'''
unshare --net --ipc --uts --fork python3 -c '
import fcntl, socket, struct, os
s = socket.socket()
req = struct.pack("16sh22x", b"lo", 0)
flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))
l = socket.socket(); l.bind(("127.0.0.1", 80)); l.listen()
c = socket.create_connection(("127.0.0.1", 80)); print("nested lo up, port 80 bound, connected")
print("interfaces:", sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else "-")'
setpriv --reuid=250 --regid=250 --clear-groups python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 25)); print("portage bound port 25")
p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); print("portage has a ping socket")'
''')
    finally:
        c.teardown()
    assert rc == 0, out
    assert "nested lo up, port 80 bound, connected" in out
    assert "portage bound port 25" in out and "portage has a ping socket" in out
