"""Linux system calls Python 3.11 lacks, via ctypes, and /proc/self/mountinfo.

Mounts (``mount``, ``umount2``, and the new mount API's ``open_tree``, ``move_mount`` and
``mount_setattr`` for idmapped mounts), namespaces (``unshare``, ``setns``, ``pivot_root``),
``prctl``, ``sethostname``, and ``bpf`` for the cgroup programs of
:mod:`autotua.slave.container.netfilter`. Each raises :class:`OSError` with the errno and what was
tried. Calls that glibc does not wrap go through ``syscall(2)`` with this architecture's number.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections import namedtuple

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

# the new mount API (the same numbers on every architecture but alpha)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x100000

# syscall numbers glibc has no wrapper for, by architecture (uname -m)
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "bpf": 321, "keyctl": 250},
    "i686": {"pivot_root": 217, "bpf": 357, "keyctl": 288},
    "aarch64": {"pivot_root": 41, "bpf": 280, "keyctl": 219},
    "riscv64": {"pivot_root": 41, "bpf": 280, "keyctl": 219},
    "loongarch64": {"pivot_root": 41, "bpf": 280, "keyctl": 219},
    "armv7l": {"pivot_root": 218, "bpf": 386, "keyctl": 311},
    "ppc64le": {"pivot_root": 203, "bpf": 361, "keyctl": 271},
    "ppc64": {"pivot_root": 203, "bpf": 361, "keyctl": 271},
    "s390x": {"pivot_root": 217, "bpf": 351, "keyctl": 280},
}
_NEW_MOUNT_API = {"open_tree": 428, "move_mount": 429, "mount_setattr": 442}

_libc = ctypes.CDLL(None, use_errno=True)  # the C library Python itself runs on
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _b(s: str | os.PathLike | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def syscall_number(name: str) -> int:
    machine = os.uname().machine
    if name in _NEW_MOUNT_API:
        return _NEW_MOUNT_API[name] + (110 if machine == "alpha" else 0)
    numbers = _SYSCALLS.get(machine)
    if not numbers:
        raise OSError(38, f"{name}: this architecture ({machine}) is not known to autotua.linux")
    return numbers[name]


def _syscall(name: str, *args) -> int:
    return _libc.syscall(ctypes.c_long(syscall_number(name)), *args)


def mount(source: str | None, target: str | os.PathLike, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {source} on {target}")


def umount(target: str | os.PathLike, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), f"setns({nstype:#x})")


def pivot_root(new_root: str | os.PathLike, put_old: str | os.PathLike) -> None:
    _check(_syscall("pivot_root", _b(new_root), _b(put_old)), f"pivot_root {new_root}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname {name}")


def open_tree(path: str | os.PathLike, flags: int, dirfd: int = -100) -> int:
    """A detached copy of the mount tree at ``path`` (``OPEN_TREE_CLONE``) as a file descriptor."""
    return _check(_syscall("open_tree", ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags)), f"open_tree {path}")


def move_mount(from_fd: int, to_path: str | os.PathLike) -> None:
    """Attach the detached tree ``from_fd`` at ``to_path``."""
    _check(_syscall("move_mount", ctypes.c_int(from_fd), b"", ctypes.c_int(-100), _b(to_path),
                    ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount to {to_path}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, attr_set: int, userns_fd: int = 0, recursive: bool = False) -> None:
    """Set mount attributes (``MOUNT_ATTR_*``; with ``MOUNT_ATTR_IDMAP``, the user namespace whose
    mapping the mount shows) on the detached tree ``fd``."""
    attr = _MountAttr(attr_set, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(_syscall("mount_setattr", ctypes.c_int(fd), b"", ctypes.c_uint(flags), ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def close_fds_except(keep: set[int | None]) -> None:
    """Close every descriptor of this process but ``keep`` (in a child that will not exec, or
    before it does: what it inherited is not its business)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def namespace_of_child(flags: int, in_child=None, before_release=None) -> int:
    """A new namespace (``flags``: one ``CLONE_NEW*``), made by a short-lived child and returned as a
    descriptor (``/proc/<child>/ns/...``), which keeps it alive. ``in_child()`` runs in the child
    once it is inside; ``before_release(pid)`` in the caller before the child goes (to write a user
    namespace's maps)."""
    kind = {CLONE_NEWUSER: "user", CLONE_NEWNET: "net", CLONE_NEWIPC: "ipc", CLONE_NEWUTS: "uts"}[flags]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: in, ready, wait to be let go
        try:
            os.close(ready_r)
            os.close(go_w)
            unshare(flags)
            if in_child:
                in_child()
            os.write(ready_w, b"y")
            os.read(go_r, 1)
        except BaseException as e:  # the parent reads why
            os.write(ready_w, f"n{e}".encode()[:1000])
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        said = os.read(ready_r, 1000)
        if said != b"y":
            raise OSError(1, f"a new {kind} namespace: {said[1:].decode(errors='replace') or 'the child died'}")
        fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if before_release:
                before_release(pid)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    return _check(_syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr))),
                  f"bpf({cmd})")


MountInfo = namedtuple("MountInfo", "mount_id mount_point fstype source options")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1 : i + 4]) == 3 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mountinfo(pid: int | str = "self") -> list[MountInfo]:
    """The mounts seen by ``pid`` (default: this process), in mount order."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf = left.split()
            rf = right.split()
            out.append(MountInfo(int(lf[0]), _unescape(lf[4]), rf[0], _unescape(rf[1]) if len(rf) > 1 else "",
                                 lf[5]))
    return out


def mounts_under(path: str | os.PathLike, pid: int | str = "self") -> list[str]:
    """Mount points at or below ``path`` (deepest last, in mount order)."""
    root = os.path.realpath(path).rstrip("/") or "/"
    prefix = root + "/" if root != "/" else "/"
    return [m.mount_point for m in mountinfo(pid) if m.mount_point == root or m.mount_point.startswith(prefix)]


KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring() -> int:
    """A new, anonymous session keyring for this process (and what it starts): keys of the
    session it came from (the slave's, its init system's) are no longer its to read."""
    return _check(_syscall("keyctl", ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_void_p(None)),
                  "keyctl(JOIN_SESSION_KEYRING)")
