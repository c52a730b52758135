"""Mounts that know how to undo themselves, as mock's mount handling has them, and the stack of them.

Each mount is an object with ``mount()`` and ``umount()``; a :class:`MountStack` mounts them in
order and undoes them in reverse, and then checks ``/proc/self/mountinfo`` that nothing is left
below the root. A recursive bind (``/dev``, ``/sys``) is undone submount by submount, deepest
first. Targets are created inside the root with :func:`autotua.slave.fsutil.ensure_dir` and must
resolve to themselves, so a link in the root can never move a mount outside it.

These run inside the job's private mount namespace (see :mod:`autotua.slave.keeper`), so even a
mount this code fails to undo disappears with the namespace.
"""

from __future__ import annotations

import errno
import logging
import os
import time

from autotua import linux
from autotua.linux import MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SLAVE
from autotua.slave import SlaveError
from autotua.slave.fsutil import ensure_dir

log = logging.getLogger("autotua.slave.mounts")


class MountError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "chroot")


def _inside(root: str, path: str) -> str:
    """``root/path`` after checking it resolves to itself (no link on the way)."""
    full = os.path.join(root, path.strip("/"))
    if os.path.realpath(full) != os.path.normpath(full):
        raise MountError(f"{full} goes through a link in the root ({os.path.realpath(full)}); not mounting there")
    return full


def unmount_tree(path: str, retries: int = 20) -> list[str]:
    """Unmount every mount at or below ``path``, deepest (latest) first; lazily as a last resort.
    Returns what had to be detached lazily."""
    detached = []
    for _ in range(10000):
        left = linux.mounts_under(path)
        if not left:
            return detached
        target = left[-1]
        for attempt in range(retries):
            try:
                linux.umount(target)
                break
            except OSError as e:
                if e.errno == errno.EINVAL and target not in linux.mounts_under(path):
                    break  # already gone
                if e.errno != errno.EBUSY or attempt == retries - 1:
                    log.warning("umount %s: %s; detaching it", target, e.strerror)
                    linux.umount(target, MNT_DETACH)
                    detached.append(target)
                    break
                time.sleep(0.05)
    raise MountError(f"cannot unmount everything below {path}")


class Mount:
    """One mount in a root: ``mount()`` does it, ``umount()`` undoes it (and whatever is below)."""

    target: str = ""

    def mount(self, root: str) -> None:
        raise NotImplementedError

    def umount(self) -> None:
        if self.target:
            unmount_tree(self.target)

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.target}"


class FsMount(Mount):
    """A filesystem: proc, tmpfs, overlay."""

    def __init__(self, fstype: str, at: str, source: str | None = None, flags: int = 0, data: str | None = None,
                 mode: int | None = None):
        self.fstype, self.at, self.source, self.flags, self.data, self.mode = fstype, at, source, flags, data, mode

    def mount(self, root: str) -> None:
        ensure_dir(root, self.at)
        target = _inside(root, self.at)
        linux.mount(self.source or self.fstype, target, self.fstype, self.flags, self.data)
        self.target = target
        if self.mode is not None:
            os.chmod(target, self.mode)

    def __str__(self) -> str:
        return f"{self.fstype} on {self.target or self.at}"


class BindMount(Mount):
    """A bind mount of a host path; optionally recursive, read-only, and (r)slave, as the Handbook does."""

    def __init__(self, source: str, at: str, *, recursive: bool = False, readonly: bool = False,
                 slave: bool = False):
        self.source, self.at, self.recursive, self.readonly, self.slave = source, at, recursive, readonly, slave

    def mount(self, root: str) -> None:
        if not os.path.isdir(self.source):
            raise MountError(f"{self.source} is not a directory")
        ensure_dir(root, self.at)
        target = _inside(root, self.at)
        linux.mount(self.source, target, None, MS_BIND | (MS_REC if self.recursive else 0))
        self.target = target
        if self.readonly:
            # keep what the kernel locks on the source (nodev, nosuid) and add read-only
            kept = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
            linux.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)
        if self.slave:
            linux.mount(None, target, None, MS_SLAVE | (MS_REC if self.recursive else 0))

    def __str__(self) -> str:
        how = ",".join(w for w, on in (("rbind" if self.recursive else "bind", True), ("ro", self.readonly),
                                        ("rslave" if self.recursive else "slave", self.slave)) if on)
        return f"{self.source} on {self.target or self.at} ({how})"


class MountStack:
    """Mounts done in order, undone in reverse; ``check()`` proves nothing is left below ``root``."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.done: list[Mount] = []

    def push(self, m: Mount) -> Mount:
        m.mount(self.root)
        self.done.append(m)
        log.debug("mounted %s", m)
        return m

    def undo(self) -> None:
        errors = []
        while self.done:
            m = self.done.pop()
            try:
                m.umount()
            except OSError as e:
                errors.append(f"{m}: {e}")
        try:
            unmount_tree(self.root)  # anything mounted below the root by someone else (the jobuild)
        except (OSError, MountError) as e:
            errors.append(str(e))
        left = linux.mounts_under(self.root)
        if errors or left:
            raise MountError("teardown left mounts behind: " + "; ".join(errors + left))


def handbook_mounts(resolv_conf: bool = True) -> list[Mount]:
    """The Gentoo Handbook's chroot mounts (chapter "Installing the Gentoo base system")."""
    return [
        FsMount("proc", "proc", source="proc"),
        BindMount("/sys", "sys", recursive=True, slave=True),
        BindMount("/dev", "dev", recursive=True, slave=True),
        BindMount("/run", "run", slave=True),
    ]


def shm_mount() -> Mount:
    """/dev/shm as a tmpfs (nosuid,nodev,noexec, mode 1777), as the Handbook does for non-Gentoo media."""
    return FsMount("tmpfs", "dev/shm", source="shm", flags=MS_NOSUID | MS_NODEV | MS_NOEXEC, data="mode=1777",
                   mode=0o1777)
