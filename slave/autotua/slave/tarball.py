"""Tarballs that cannot write outside their target: every entry checked before anything is written.

Refused everywhere: an absolute name, a ``..`` component, a device node, an entry below a symlink
of the same archive (the classic "link, then write through it"), a hard link to anything but an
earlier file of the archive, a sparse file, and more unpacked bytes than the kind's limit. In
PORTCONF tarballs also: anything but files, directories and links,
and a relative symlink that climbs out of the root (an absolute one names a path in the chroot,
as ``make.profile`` does). In a repository snapshot (``gentoo-<date>/...``, one top directory)
also: anything but files, directories and links, an entry outside the one top directory,
setuid/setgid files, and any symlink that is absolute or climbs out of the repository (the slave
reads the repository on the host, e.g. its Manifests: nothing in it may lead elsewhere).

A stage3 is unpacked by GNU tar with the Handbook's flags into a new, empty directory. PORTCONF
tarballs go into a root that already has content (and links such as ``/var/run -> /run``), so they
are unpacked here, one directory descriptor at a time with ``O_NOFOLLOW``: no existing link of the
root is ever followed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator

from autotua import faults
from autotua.slave import SlaveError
from autotua.slave.fsutil import DIR_FLAGS, UnsafePath, walk

HANDBOOK_FLAGS = ["--xattrs-include=*.*", "--numeric-owner", "-p"]
#: the most an archive may unpack to, by kind: a stage3 is 1-4 GiB unpacked, portage config a few KiB.
#: A tarball that claims more (a 161-byte .tar.gz can hold a 1 TiB sparse file, or a header that lies)
#: is refused before anything is written, as is any sparse entry: neither kind has one.
UNPACKED_LIMIT = {"stage3": 64 << 30, "portconf": 64 << 20, "repository": 8 << 30}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class TarballError(SlaveError):
    """A tarball we refuse to unpack; the message names the entry and why."""


def normalise(name: str) -> str:
    """``./etc/x`` -> ``etc/x``; the archive's root (``.``, ``./``) -> ``''``."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def _bad_name(name: str) -> str | None:
    if name.startswith("/"):
        return "an absolute name"
    if any(p == ".." for p in name.split("/")):
        return "a '..' component"
    return None


@contextlib.contextmanager
def open_stream(path: str | os.PathLike) -> Iterator[tarfile.TarFile]:
    """The archive as a stream (gzip, bzip2, xz by tarfile; zstd through the ``zstd`` program)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == _ZSTD_MAGIC:
        proc = subprocess.Popen(["zstd", "-dc", os.fspath(path)], stdout=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                yield tar
        finally:
            proc.kill()
            proc.wait()
    else:
        with tarfile.open(path, mode="r|*") as tar:
            yield tar


def check_members(path: str | os.PathLike, kind: str) -> int:
    """Raise :class:`TarballError` at the first entry a ``kind`` ('stage3', 'portconf' or
    'repository') tarball must not have; returns the number of entries."""
    return _scan(path, kind)[0]


def check_repository(path: str | os.PathLike) -> str:
    """Check a repository snapshot's every entry; returns its one top directory's name."""
    _, top = _scan(path, "repository")
    if not top:
        raise TarballError(f"{os.path.basename(path)}: no top directory: not a repository snapshot")
    return top


def _scan(path: str | os.PathLike, kind: str) -> tuple[int, str]:
    label = os.path.basename(path)
    links: set[str] = set()
    files: set[str] = set()
    others: set[str] = set()
    tops: set[str] = set()
    n = total = 0
    limit = UNPACKED_LIMIT[kind]
    try:
        with open_stream(path) as tar:
            for m in tar:
                n += 1
                _check_one(m, kind, label, links, files, others)
                if kind == "repository":
                    _check_in_repository(m, label, tops)
                total += m.size if m.isreg() else 0
                if total > limit:
                    raise TarballError(f"{label}: refusing entry {m.name!r}: the archive unpacks to more than "
                                       f"{limit} bytes, the most a {kind} tarball may")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise TarballError(f"{label}: not a readable tarball ({e})") from None
    return n, next(iter(tops), "")


def _check_in_repository(m: tarfile.TarInfo, label: str, tops: set[str]) -> None:
    """A snapshot's entries all lie in one top directory (``gentoo-<date>/``), which tar strips."""
    name = normalise(m.name)
    if not name:
        raise TarballError(f"{label}: refusing entry {m.name!r}: a snapshot's entries lie in one top directory")
    top, _, rest = name.partition("/")
    if tops and top not in tops:
        raise TarballError(f"{label}: refusing entry {m.name!r}: outside the top directory {next(iter(tops))!r}")
    tops.add(top)
    if not rest and not m.isdir():
        raise TarballError(f"{label}: refusing entry {m.name!r}: the top directory is not a directory")
    if m.mode & 0o6000 and not m.isdir():
        raise TarballError(f"{label}: refusing entry {m.name!r}: setuid or setgid, which no repository file is")
    if m.issym() and (m.linkname.startswith("/") or _climbs_out(rest, m.linkname)):
        raise TarballError(f"{label}: refusing entry {m.name!r}: a symlink to {m.linkname!r}, which points outside "
                           "the repository")


def _check_one(m: tarfile.TarInfo, kind: str, label: str, links: set[str], files: set[str],
               others: set[str]) -> None:
    def refuse(why: str) -> TarballError:
        return TarballError(f"{label}: refusing entry {m.name!r}: {why}")

    why = _bad_name(m.name)
    if why:
        raise refuse(f"it has {why}")
    name = normalise(m.name)
    if not name:
        if not m.isdir():
            raise refuse("the archive's root is not a directory")
        return
    parts = name.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in links:
            raise refuse(f"it lies below the symlink {prefix!r} of the same archive")
        if prefix in files or prefix in others:
            raise refuse(f"it lies below {prefix!r}, which is not a directory")
    if m.ischr() or m.isblk():
        raise refuse("it is a device node")
    if m.sparse is not None:
        raise refuse(f"it is a sparse file ({m.size} bytes unpacked)")
    if kind in ("portconf", "repository") and not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
        raise refuse(f"{'PORTCONF tarballs' if kind == 'portconf' else 'repository snapshots'} may hold only "
                     "files, directories and links")
    if m.islnk():
        why = _bad_name(m.linkname)
        target = normalise(m.linkname)
        if why:
            raise refuse(f"it is a hard link to a name with {why}")
        if target not in files:
            raise refuse(f"it is a hard link to {m.linkname!r}, which is not an earlier file of the archive")
    if m.issym() and kind == "portconf" and not m.linkname.startswith("/") and _climbs_out(name, m.linkname):
        raise refuse(f"it is a symlink to {m.linkname!r}, which points outside the root")
    links.discard(name)
    files.discard(name)
    others.discard(name)
    if m.issym():
        links.add(name)
    elif m.isreg() or m.islnk():
        files.add(name)
    elif not m.isdir():
        others.add(name)


def _climbs_out(name: str, target: str) -> bool:
    """Whether a relative ``target`` of a link at ``name`` climbs above the root (lexically)."""
    depth = len(name.split("/")) - 1  # directories above the link, below the root
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


# -- a stage3: GNU tar, into a new directory ------------------------------------------------------

def dies_with_us(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel kills it when we die (util-linux ``setpriv --pdeathsig KILL``):
    a slave killed with SIGKILL must not leave a ``tar`` writing into the cache behind it, where
    the next start is cleaning up. A death before setpriv set the signal would not send it, so a
    shell checks, once it is set, that its parent is still this process before it runs ``argv``."""
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not setpriv:
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"',
            "dies_with_us", str(os.getpid()), *argv]


def unpack_stage3(path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Check every entry, then unpack with the Handbook's flags into ``dest`` (which must not exist)."""
    check_members(path, "stage3")
    os.mkdir(dest, 0o755)
    proc = subprocess.Popen(dies_with_us(["tar", "-x", *HANDBOOK_FLAGS, "-f", os.fspath(path), "-C", os.fspath(dest)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    faults.point("stage3:unpack")  # tar is unpacking into dest
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise TarballError(f"{os.path.basename(path)}: tar failed: {stderr.strip()[-500:]}")


def unpack_repository(path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Check every entry of a repository snapshot, then unpack its top directory's content into
    ``dest`` (which must not exist), owned by root and with the umask's permissions, not the
    archive's: the tree is only ever read."""
    check_repository(path)
    os.mkdir(dest, 0o755)
    proc = subprocess.Popen(dies_with_us(["tar", "-x", "--strip-components=1", "--no-same-owner",
                                          "--no-same-permissions", "-f", os.fspath(path), "-C", os.fspath(dest)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, umask=0o022)
    faults.point("repository:unpack")  # tar is unpacking into dest
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise TarballError(f"{os.path.basename(path)}: tar failed: {stderr.strip()[-500:]}")


# -- PORTCONF: into an existing root, never following a link of the root ---------------------------

def _walk(root_fd: int, parts: list[str], create: bool, label: str) -> int:
    try:
        return walk(root_fd, parts, create=create)
    except UnsafePath as e:
        raise TarballError(f"{label}: {e}") from None


def _clear(dir_fd: int, leaf: str, keep_dir: bool, label: str, name: str) -> bool:
    """Remove what is at ``leaf`` unless it is a directory we may keep; True when a directory stays."""
    try:
        st = os.lstat(leaf, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        raise TarballError(f"{label}: refusing entry {name!r}: a directory is in its place in the root")
    os.unlink(leaf, dir_fd=dir_fd)
    return False


def extract_into(path: str | os.PathLike, root: str | os.PathLike) -> int:
    """Check every entry of a PORTCONF tarball, then unpack it into ``root``; returns the entry count."""
    label = os.path.basename(path)
    check_members(path, "portconf")
    root_fd = os.open(root, DIR_FLAGS)
    n = 0
    try:
        with open_stream(path) as tar:
            for m in tar:
                name = normalise(m.name)
                if not name:
                    continue
                n += 1
                *parents, leaf = name.split("/")
                dir_fd = _walk(root_fd, parents, True, label)
                try:
                    _extract_one(tar, m, dir_fd, leaf, root_fd, label, name)
                finally:
                    os.close(dir_fd)
    finally:
        os.close(root_fd)
    return n


def _extract_one(tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, leaf: str, root_fd: int, label: str,
                 name: str) -> None:
    mode = m.mode & 0o1777  # no setuid/setgid from a config tarball
    if m.isdir():
        if not _clear(dir_fd, leaf, True, label, name):
            os.mkdir(leaf, 0o700, dir_fd=dir_fd)
        fd = os.open(leaf, DIR_FLAGS, dir_fd=dir_fd)
        try:
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    elif m.isreg():
        _clear(dir_fd, leaf, False, label, name)
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            src = tar.extractfile(m)
            while chunk := src.read(1 << 16):
                os.write(fd, chunk)
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, mode)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)
    elif m.issym():
        _clear(dir_fd, leaf, False, label, name)
        os.symlink(m.linkname, leaf, dir_fd=dir_fd)
        os.chown(leaf, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
    elif m.islnk():
        _clear(dir_fd, leaf, False, label, name)
        *src_parents, src_leaf = normalise(m.linkname).split("/")
        src_fd = _walk(root_fd, src_parents, False, label)
        try:
            os.link(src_leaf, leaf, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)
