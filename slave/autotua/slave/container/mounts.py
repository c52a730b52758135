"""Mounts that know how to undo themselves, as mock's mount handling has them, and the stack of them.

Each mount is an object with ``mount(root)`` and ``umount()``; a :class:`MountStack` mounts them in
order and undoes them in reverse, and then checks ``/proc/self/mountinfo`` that nothing is left
below the root. Targets are created inside the root with :func:`autotua.slave.fsutil.ensure_dir`
(owned by the job's root when an owner is given) and must resolve to themselves, so a link in the
root can never move a mount outside it.

All of these are made by the keeper, root on the host, in the job's private mount namespace and
before the job's user namespace exists: when the job's init copies that namespace into the user
namespace, the kernel *locks* every one of them (a read-only bind cannot be made writable, a mount
cannot be taken off to show what is below). Binds are idmapped when the filesystem allows it, so
the host's root-owned files show as the job's root, not as ``nobody``.
"""

from __future__ import annotations

import errno
import os
import time

from autotua import linux
from autotua.linux import MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REMOUNT
from autotua.slave import SlaveError
from autotua.slave.fsutil import ensure_dir

#: the minimal /dev: name -> (major, minor), all mode 0666 as on any Linux system
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}


class MountError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "container")


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
                    import logging

                    logging.getLogger("autotua.slave.mounts").warning("umount %s: %s; detaching it", target,
                                                                      e.strerror)
                    linux.umount(target, MNT_DETACH)
                    detached.append(target)
                    break
                time.sleep(0.05)
    raise MountError(f"cannot unmount everything below {path}")


class Mount:
    """One mount in a root: ``mount()`` does it, ``umount()`` undoes it (and whatever is below)."""

    target: str = ""
    at: str = ""
    owner: tuple[int, int] | None = None  # of the directories made for it in the root

    def mount(self, root: str) -> None:
        raise NotImplementedError

    def _target(self, root: str) -> str:
        ensure_dir(root, self.at, owner=self.owner)
        return _inside(root, self.at)

    def umount(self) -> None:
        if not self.target:
            return
        try:
            linux.umount(self.target)
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.EINVAL):
                raise
            unmount_tree(self.target)  # something is mounted below it, or it is gone already
        self.target = ""

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.target}"


class FsMount(Mount):
    """A filesystem: tmpfs, overlay, devpts, an ext4 image."""

    def __init__(self, fstype: str, at: str, source: str | None = None, flags: int = 0, data: str | None = None,
                 mode: int | None = None, owner: tuple[int, int] | None = None):
        self.fstype, self.at, self.source, self.flags, self.data, self.mode = fstype, at, source, flags, data, mode
        self.owner = owner

    def mount(self, root: str) -> None:
        target = self._target(root)
        linux.mount(self.source or self.fstype, target, self.fstype, self.flags, self.data)
        self.target = target
        if self.mode is not None:
            os.chmod(target, self.mode)

    def __str__(self) -> str:
        return f"{self.fstype} on {self.target or self.at}"


class BindMount(Mount):
    """A bind mount of a host directory, read-only or not, idmapped through ``userns_fd`` when given
    (a plain bind where the filesystem cannot be idmapped)."""

    def __init__(self, source: str, at: str, *, readonly: bool = False, userns_fd: int | None = None,
                 owner: tuple[int, int] | None = None):
        self.source, self.at, self.readonly, self.userns_fd, self.owner = source, at, readonly, userns_fd, owner
        self.idmapped = False

    def mount(self, root: str) -> None:
        if not os.path.isdir(self.source):
            raise MountError(f"{self.source} is not a directory")
        target = self._target(root)
        if self.userns_fd is not None and idmapped_bind(self.source, target, self.userns_fd, self.readonly):
            self.idmapped = True
        else:
            linux.mount(self.source, target, None, MS_BIND)
            if self.readonly:
                # keep what the kernel locks on the source (nodev, nosuid) and add read-only
                kept = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
                linux.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)
        self.target = target

    def __str__(self) -> str:
        how = ",".join(w for w, on in (("bind", True), ("ro", self.readonly), ("idmapped", self.idmapped)) if on)
        return f"{self.source} on {self.target or self.at} ({how})"


def idmapped_bind(source: str, target: str, userns_fd: int, readonly: bool) -> bool:
    """Bind ``source`` at ``target`` showing its owners through ``userns_fd``'s mapping (so host uid 0
    is the job's root); False, and nothing mounted, where the kernel or filesystem cannot."""
    try:
        fd = linux.open_tree(source, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
            return False
        raise
    try:
        attrs = linux.MOUNT_ATTR_IDMAP | (linux.MOUNT_ATTR_RDONLY if readonly else 0)
        try:
            linux.mount_setattr(fd, attrs, userns_fd)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP):
                return False
            raise
        linux.move_mount(fd, target)
        return True
    finally:
        os.close(fd)


class DevTmpfs(FsMount):
    """The job's own /dev: a small tmpfs holding only the harmless devices (:data:`DEVICES`), made
    here with ``mknod`` (the job itself cannot: no user namespace may), and the usual links. Never
    the host's devtmpfs."""

    def __init__(self, at: str, owner: tuple[int, int]):
        super().__init__("tmpfs", at, source="dev", flags=MS_NOSUID | MS_NOEXEC,
                         data=f"mode=755,size=1m,nr_inodes=4096,uid={owner[0]},gid={owner[1]}", owner=owner)

    def mount(self, root: str) -> None:
        super().mount(root)
        for name, (major, minor) in DEVICES.items():
            path = os.path.join(self.target, name)
            os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(path, 0o666)
            os.chown(path, *self.owner)
        for name, target in DEV_LINKS.items():
            os.symlink(target, os.path.join(self.target, name))
            os.lchown(os.path.join(self.target, name), *self.owner)
        for d in ("pts", "shm"):
            os.mkdir(os.path.join(self.target, d), 0o755)
            os.chown(os.path.join(self.target, d), *self.owner)


def dev_mounts(root: str, owner: tuple[int, int], tty_gid: int, shm_bytes: int) -> list[Mount]:
    """``root``/dev, a new devpts instance (its own ``ptmx``; the host's ptys stay out of sight) and
    /dev/shm (a tmpfs of ``shm_bytes``, counted against the job's memory)."""
    return [
        DevTmpfs(f"{root}/dev", owner),
        FsMount("devpts", f"{root}/dev/pts", source="devpts", flags=MS_NOSUID | MS_NOEXEC,
                data=f"newinstance,ptmxmode=0666,mode=0620,gid={tty_gid}"),
        FsMount("tmpfs", f"{root}/dev/shm", source="shm", flags=MS_NOSUID | MS_NODEV,
                data=f"mode=1777,size={shm_bytes},uid={owner[0]},gid={owner[1]}"),
    ]


def run_mount(root: str, owner: tuple[int, int]) -> Mount:
    """A fresh ``root``/run, owned by the job's root."""
    return FsMount("tmpfs", f"{root}/run", source="run", flags=MS_NOSUID | MS_NODEV,
                   data=f"mode=755,size=64m,uid={owner[0]},gid={owner[1]}", owner=owner)


class MountStack:
    """Mounts done in order (targets below ``root``), undone in reverse; ``undo()`` proves that
    none of them is left."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.done: list[Mount] = []

    def push(self, m: Mount) -> Mount:
        m.mount(self.root)
        self.done.append(m)
        return m

    def undo(self) -> None:
        errors, targets = [], []
        while self.done:
            m = self.done.pop()
            targets.append(m.target)
            try:
                m.umount()
            except (OSError, MountError) as e:
                errors.append(f"{m}: {e}")
        mounted = {i.mount_point for i in linux.mountinfo()}
        left = [t for t in targets if t in mounted]
        if errors or left:
            raise MountError("teardown left mounts behind: " + "; ".join(errors + left))
