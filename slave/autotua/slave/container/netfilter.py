"""Keeping ``outbound`` jobs off the host: a cgroup BPF filter on the user-mode network stack.

slirp4netns makes the job's connections from the host's network namespace, as the host; to it,
the host's own addresses are local and would reach the host's services. So it runs in a v2
cgroup of its own with four tiny BPF programs attached (``BPF_CGROUP_INET4_CONNECT``,
``UDP4_SENDMSG`` and their IPv6 twins): a TCP connect or UDP send to ``127.0.0.0/8``,
``0.0.0.0/8`` or any address of the host is refused with ``EPERM`` before it leaves (the job sees
a connection refused), except to the host's own resolvers from ``/etc/resolv.conf`` on port 53
(a systemd-resolved stub on 127.0.0.53 stays usable). IPv6 is refused altogether: the stack gives
jobs IPv4 only. The kernel checks it; nothing in the job's reach can change it.

The programs are assembled here (a dozen instructions each), loaded with ``bpf(BPF_PROG_LOAD)``
and attached to the cgroup; they stay attached until the cgroup is removed.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys

from autotua import linux
from autotua.slave import SlaveError

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
INET4_CONNECT, INET6_CONNECT, UDP4_SENDMSG, UDP6_SENDMSG = 10, 11, 14, 15
# struct bpf_sock_addr: user_family 0, user_ip4 4, user_ip6 8..23, user_port 24
_IP4, _PORT = 4, 24
ALWAYS_BLOCKED = ("127.0.0.0/8", "0.0.0.0/8")


class FilterError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "network")


class _LoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16), ("prog_ifindex", ctypes.c_uint32),
                ("expected_attach_type", ctypes.c_uint32)]


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("attach_flags", ctypes.c_uint32)]


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi" if sys.byteorder == "little" else ">BBhi", code,
                       (src << 4 | dst) if sys.byteorder == "little" else (dst << 4 | src), off, imm)


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _ip(addr: str) -> int:
    """An IPv4 address as the 32-bit load of ``user_ip4`` (network order in memory) sees it."""
    return _s32(int.from_bytes(socket.inet_aton(addr), sys.byteorder))


def _network(cidr: str) -> tuple[str, str]:
    """``10.0.0.0/8`` -> (``10.0.0.0``, ``255.0.0.0``)."""
    addr, _, bits = cidr.partition("/")
    n = int(bits or 32)
    mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    net = int.from_bytes(socket.inet_aton(addr), "big") & mask
    return socket.inet_ntoa(net.to_bytes(4, "big")), socket.inet_ntoa(mask.to_bytes(4, "big"))


def _port(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), sys.byteorder)


def ipv4_program(blocked: list[str], allowed: list[tuple[str, int]]) -> bytes:
    """connect4/sendmsg4: 1 (go ahead) unless the destination is in ``blocked`` networks and not one
    of the ``allowed`` (address, port) pairs; 0 (``EPERM``) then."""
    MOV64_X, LDX_W, MOV32_X, AND32_K, JEQ32_K, JNE32_K, JA, MOV64_K, EXIT = (
        0xBF, 0x61, 0xBC, 0x54, 0x16, 0x56, 0x05, 0xB7, 0x95)
    # r6 = ctx; w2 = user_ip4; w3 = user_port. A jump to a label is (label, code, register, imm).
    prog: list = [_insn(MOV64_X, 6, 1), _insn(LDX_W, 2, 6, _IP4), _insn(LDX_W, 3, 6, _PORT)]
    for addr, port in allowed:  # ip == addr && port == port: allow
        prog += [_insn(JNE32_K, 2, off=2, imm=_ip(addr)), _insn(JNE32_K, 3, off=1, imm=_port(port)),
                 ("allow", JA, 0, 0)]
    for cidr in blocked:  # (ip & mask) == network: deny
        net, mask = _network(cidr)
        prog += [_insn(MOV32_X, 4, 2), _insn(AND32_K, 4, imm=_ip(mask)), ("deny", JEQ32_K, 4, _ip(net))]
    labels = {"allow": len(prog), "deny": len(prog) + 2}
    prog += [_insn(MOV64_K, 0, imm=1), _insn(EXIT), _insn(MOV64_K, 0, imm=0), _insn(EXIT)]
    return b"".join(_insn(x[1], x[2], off=labels[x[0]] - i - 1, imm=x[3]) if isinstance(x, tuple) else x
                    for i, x in enumerate(prog))


def deny_program() -> bytes:
    return _insn(0xB7, 0, imm=0) + _insn(0x95)


def load(code: bytes, attach_type: int, name: bytes = b"autotua_net") -> int:
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(16384)
    attr = _LoadAttr(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, len(code) // 8, ctypes.addressof(insns),
                     ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0, name[:15], 0,
                     attach_type)
    try:
        return linux.bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise FilterError(f"the kernel refused the connection filter ({e.strerror}): "
                          f"{log.value.decode(errors='replace')[-300:]}") from None


def attach(cgroup_dir: str, blocked: list[str], allowed: list[tuple[str, int]]) -> None:
    """Attach the four programs to ``cgroup_dir`` (a v2 cgroup)."""
    cfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        v4 = ipv4_program(blocked, allowed)
        for kind, code in ((INET4_CONNECT, v4), (UDP4_SENDMSG, v4), (INET6_CONNECT, deny_program()),
                           (UDP6_SENDMSG, deny_program())):
            pfd = load(code, kind)
            try:
                linux.bpf(BPF_PROG_ATTACH, _AttachAttr(cfd, pfd, kind, 0))
            except OSError as e:
                raise FilterError(f"cannot attach the connection filter to {cgroup_dir}: {e.strerror}") from None
            finally:
                os.close(pfd)
    finally:
        os.close(cfd)


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 14)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [("next", ctypes.POINTER(_Ifaddrs)), ("name", ctypes.c_char_p), ("flags", ctypes.c_uint),
                     ("addr", ctypes.POINTER(_Sockaddr)), ("netmask", ctypes.POINTER(_Sockaddr)),
                     ("ifu", ctypes.POINTER(_Sockaddr)), ("data", ctypes.c_void_p)]
_libc = ctypes.CDLL(None, use_errno=True)


def host_addresses() -> list[str]:
    """Every IPv4 address of this network namespace's interfaces (``getifaddrs``)."""
    head = ctypes.POINTER(_Ifaddrs)()
    if _libc.getifaddrs(ctypes.byref(head)) != 0:
        raise OSError(ctypes.get_errno(), "getifaddrs")
    out = []
    try:
        p = head
        while p:
            a = p.contents.addr
            if a and a.contents.family == socket.AF_INET:
                out.append(socket.inet_ntoa(bytes(a.contents.data[2:6])))
            p = p.contents.next
    finally:
        _libc.freeifaddrs(head)
    return sorted(set(out))


def local_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The IPv4 nameservers of ``path`` that are the host itself (loopback or one of its addresses)."""
    mine = set(host_addresses())
    out = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    try:
                        socket.inet_pton(socket.AF_INET, words[1])
                    except OSError:
                        continue  # IPv6: the stack gives jobs IPv4 only
                    if words[1].startswith("127.") or words[1] in mine:
                        out.append(words[1])
    except OSError:
        pass
    return out


def host_rules() -> tuple[list[str], list[tuple[str, int]]]:
    """(blocked networks, allowed (address, port)) for this host, now."""
    blocked = [*ALWAYS_BLOCKED, *(f"{a}/32" for a in host_addresses() if not a.startswith("127."))]
    allowed = [(a, 53) for a in local_resolvers()]
    return blocked, allowed
