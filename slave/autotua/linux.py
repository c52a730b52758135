"""Linux system calls Python 3.11 lacks (mount, umount2), via ctypes, and /proc/self/mountinfo.

Namespaces themselves are made with util-linux ``unshare(1)`` (``--fork --kill-child``): it is on
every Gentoo and Debian host, and its PID-1-dies-so-everything-dies behaviour is what we want.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _b(s: str | os.PathLike | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str | os.PathLike, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def umount(target: str | os.PathLike, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    mount_point: str
    fstype: str
    source: str
    options: str


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
