"""The job's disk: an ext4 filesystem image of ``disk_limit`` bytes, loop-mounted in the keeper's
namespace, holding everything the job writes (its root's upper layer, the DISTDIR layer, its
attachments). When it is full the job gets ``ENOSPC``, the host does not; the slave sees it
(:func:`full`) and fails the job with that reason.

``mkfs.ext4`` without a journal (a job's disk does not survive a crash anyway), without lazy inode
table zeroing on mount, is a few milliseconds even for 8 GiB. The image starts sparse; a child
process then reserves all of it with ``fallocate(2)`` while the rest of the container is built (so
that the host's disk cannot run out under the job: no room, no job), where the filesystem can
(never by writing zeros, as ``posix_fallocate`` would). The loop device is set up with
``LO_FLAGS_AUTOCLEAR``: it detaches itself when its last mount goes, whichever way the keeper
goes. The image itself is deleted with the job's directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import subprocess
import time

from autotua import linux
from autotua.linux import MS_NODEV
from autotua.slave import SlaveError

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LOOP_CLR_FD = 0x4C01
LO_FLAGS_AUTOCLEAR = 4
FULL_BELOW = 1 << 20  # bytes free: less than this is a full disk
MKFS = ("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal,^resize_inode", "-E",
        "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "-L", "autotua-job")


class DiskError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "disk")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def reserve(fd: int, size: int) -> int:
    """``fallocate(fd, 0, 0, size)``: 0, or the errno."""
    return 0 if _libc.fallocate(fd, 0, 0, size) == 0 else ctypes.get_errno()


class _LoopInfo64(ctypes.Structure):
    _fields_ = [("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64), ("lo_rdevice", ctypes.c_uint64),
                ("lo_offset", ctypes.c_uint64), ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
                ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
                ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_char * 64),
                ("lo_crypt_name", ctypes.c_char * 64), ("lo_encrypt_key", ctypes.c_char * 32),
                ("lo_init", ctypes.c_uint64 * 2)]


class _LoopConfig(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("block_size", ctypes.c_uint32), ("info", _LoopInfo64),
                ("reserved", ctypes.c_uint64 * 8)]


def image_size(limit: int) -> int:
    """The image's size for ``limit`` usable bytes: ext4's inode tables (one 256-byte inode per
    16 KiB) and bitmaps come on top, so that a job gets the limit it was promised."""
    return limit + limit // 60 + (8 << 20)


def mkfs_tool() -> str | None:
    return shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:/usr/bin:/bin")


def attach_loop(image: str) -> tuple[str, int]:
    """A free loop device backed by ``image``, detaching itself when its last user goes, and an open
    descriptor of it: close that once it is mounted (closed before, it detaches at once)."""
    fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(50):
                n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
                dev = f"/dev/loop{n}"
                try:
                    lfd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    time.sleep(0.01)  # udev has not made the node yet
                    continue
                try:
                    cfg = _LoopConfig(fd=fd)
                    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR
                    cfg.info.lo_file_name = os.fsencode(image)[-63:]
                    fcntl.ioctl(lfd, LOOP_CONFIGURE, bytes(cfg))
                    return dev, lfd
                except OSError as e:
                    os.close(lfd)
                    if e.errno != errno.EBUSY:  # another process took it first: ask again
                        raise
            raise DiskError("no free loop device after 50 tries")
        finally:
            os.close(ctl)
    finally:
        os.close(fd)


def backing_file(dev: str) -> str | None:
    """What loop device ``dev`` is backed by, or None when it is free."""
    try:
        with open(f"/sys/block/{os.path.basename(dev)}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None


def detach(dev: str) -> None:
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD)
    except OSError as e:
        if e.errno != errno.ENXIO:  # not attached any more
            raise
    finally:
        os.close(fd)


class Disk:
    """``start()`` makes the image (``mkfs.ext4`` runs on while the caller goes on), ``mount()``
    mounts it at ``mountpoint``; ``remove()`` undoes both (but the image)."""

    def __init__(self, image: str, mountpoint: str, limit: int):
        self.image, self.mountpoint, self.limit = image, mountpoint, limit
        self.device: str | None = None
        self.mounted = False
        self.allocated = "fallocate"
        self._reserver: int | None = None
        self._mkfs: subprocess.Popen | None = None

    def start(self) -> None:
        size = image_size(self.limit)
        fd = os.open(self.image, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            pid = os.fork()
            if pid == 0:  # reserve the space meanwhile
                linux.close_fds_except({fd})
                os._exit(min(reserve(fd, size), 255))
            self._reserver = pid
        finally:
            os.close(fd)
        self._mkfs = subprocess.Popen([mkfs_tool() or "mkfs.ext4", *MKFS[1:], self.image], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def mount(self) -> None:
        out = self._mkfs.communicate()[0]
        code, self._mkfs = self._mkfs.returncode, None
        if code != 0:
            raise DiskError(f"mkfs.ext4 failed: {out.decode(errors='replace').strip()[-300:]}")
        self.device, lfd = attach_loop(self.image)
        try:
            os.makedirs(self.mountpoint, exist_ok=True)
            # exec and setuid stay allowed: the upper layer holds the programs a job builds and runs
            linux.mount(self.device, self.mountpoint, "ext4", MS_NODEV, "noinit_itable")
            self.mounted = True
        finally:
            os.close(lfd)

    def wait_reserved(self) -> None:
        """Until the space is the job's; no room on the host is an error (the job can go elsewhere)."""
        if self._reserver is None:
            return
        _, status = os.waitpid(self._reserver, 0)
        self._reserver = None
        err = os.waitstatus_to_exitcode(status)
        if err == errno.ENOSPC:
            raise DiskError(f"no room on the host for the job's disk ({image_size(self.limit) >> 20} MiB in "
                            f"{os.path.dirname(self.image)})")
        if err:
            self.allocated = f"sparse ({os.strerror(err) if err > 0 else 'reservation killed'})"

    def unmount(self) -> None:
        from autotua.slave.container.mounts import unmount_tree

        if self.mounted:
            unmount_tree(self.mountpoint)
            self.mounted = False
        if self.device:
            deadline = time.monotonic() + 5
            while backing_file(self.device) == self.image and time.monotonic() < deadline:
                time.sleep(0.002)  # autoclear detaches it once the filesystem is gone
            if backing_file(self.device) == self.image:
                detach(self.device)
            self.device = None

    def remove(self) -> None:
        self.unmount()
        if self._mkfs is not None:
            self._mkfs.kill()
            self._mkfs.wait()
            self._mkfs = None
        if self._reserver is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._reserver, 9)
            os.waitpid(self._reserver, 0)
            self._reserver = None


def full(path: str) -> str | None:
    """Why the filesystem at ``path`` counts as full (space or inodes), or None."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < FULL_BELOW:
        return "space"
    if st.f_files and st.f_favail == 0:
        return "inodes"
    return None
