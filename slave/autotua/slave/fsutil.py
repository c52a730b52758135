"""Paths inside a root that are reached without following any of the root's links.

A stage3 has absolute links (``/var/run -> /run``, ``/etc/resolv.conf`` on systemd flavours...)
that mean something inside the job's root and something else on the host. Everything the slave
creates or writes inside a root from the outside goes through these: one directory descriptor at
a time, ``O_NOFOLLOW``, so a link in the root is refused instead of followed.
"""

from __future__ import annotations

import os
import shutil
import stat

from autotua.linux import mounts_under
from autotua.slave import SlaveError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(SlaveError):
    """A path in a root that goes through a link or a non-directory."""


def walk(root_fd: int, parts: list[str], create: bool = False, mode: int = 0o755,
         owner: tuple[int, int] | None = None) -> int:
    """A new descriptor of ``root/parts...``, opened one component at a time without following links;
    with ``create``, missing directories are made (``mode``, and ``owner`` as (uid, gid) when given)."""
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            if part in ("", ".", ".."):
                raise UnsafePath(f"{'/'.join(parts)}: bad path component {part!r}")
            try:
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, mode, dir_fd=fd)
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
                if owner is not None:
                    os.fchown(nxt, *owner)
            except OSError as e:
                raise UnsafePath(f"{'/'.join(parts[: i + 1])} is a link or not a directory; refusing to go through "
                                 f"it ({e.strerror})") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def ensure_dir(root: str | os.PathLike, rel: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> str:
    """Create ``root/rel`` (and its parents) without following links; returns its path."""
    root_fd = os.open(root, DIR_FLAGS)
    try:
        os.close(walk(root_fd, [p for p in rel.split("/") if p], create=True, mode=mode, owner=owner))
    finally:
        os.close(root_fd)
    return os.path.join(os.fspath(root), rel.strip("/"))


def replace_file(root: str | os.PathLike, rel: str, data: bytes, mode: int = 0o644,
                 owner: tuple[int, int] | None = None) -> None:
    """Write ``root/rel`` as a new regular file, replacing (never following) what is there."""
    *parents, leaf = [p for p in rel.split("/") if p]
    root_fd = os.open(root, DIR_FLAGS)
    try:
        dir_fd = walk(root_fd, parents, create=True, owner=owner)
    finally:
        os.close(root_fd)
    try:
        try:
            st = os.lstat(leaf, dir_fd=dir_fd)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{rel}: a directory is in the way")
            os.unlink(leaf, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
    finally:
        os.close(dir_fd)


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """A regular file's bytes, opened with ``O_NOFOLLOW``; refuses links, other kinds and big files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UnsafePath(f"{os.path.basename(path)}: cannot open ({e.strerror})") from None
    return _read_fd(fd, os.path.basename(path), limit)


def read_regular_in(base: str | os.PathLike, parts: list[str], name: str, limit: int) -> bytes:
    """``base/parts.../name`` as :func:`read_regular` reads it, but reached one directory at a time
    with ``O_NOFOLLOW``: a directory the job replaced with a link is refused, not followed."""
    if not name or "/" in name or name in (".", ".."):
        raise UnsafePath(f"{name!r} is not a file name")
    try:
        base_fd = os.open(base, DIR_FLAGS)
    except OSError as e:
        raise UnsafePath(f"{os.path.basename(base)}: cannot open ({e.strerror})") from None
    try:
        dir_fd = walk(base_fd, parts)
    except FileNotFoundError:
        raise UnsafePath(f"{'/'.join(parts)}: no such directory") from None
    finally:
        os.close(base_fd)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as e:
            raise UnsafePath(f"{name}: cannot open ({e.strerror})") from None
    finally:
        os.close(dir_fd)
    return _read_fd(fd, name, limit)


def _read_fd(fd: int, name: str, limit: int) -> bytes:
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{name}: not a regular file")
        if st.st_size > limit:
            raise UnsafePath(f"{name}: {st.st_size} bytes, over the limit of {limit}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(f"{name}: over the limit of {limit} bytes")
    return data


def remove_tree(path: str | os.PathLike) -> None:
    """Delete ``path``, but never while anything is mounted at or below it (in our namespace)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    left = mounts_under(path)
    if left:
        raise SlaveError(f"refusing to delete {path}: still mounted there: {', '.join(left)}", "cleanup")
    # rmtree works with directory descriptors and never follows links, where the platform allows it
    if not shutil.rmtree.avoids_symlink_attacks:
        raise SlaveError(f"refusing to delete {path}: this platform's rmtree could follow symlinks", "cleanup")
    shutil.rmtree(path)
