"""A tiny root filesystem made from the host's own programs and their libraries.

No internet here, so no real stage3: the tests and the demo build this one instead, and the slave
treats it exactly like Gentoo's (see :mod:`autotua.demo.stage3`). It holds what a jobuild's phases
need (bash, coreutils, tar, gzip, uname), the files a chroot expects (``/etc/passwd``...), and what a
real stage3 carries that a hostile jobuild would reach for: Python (the host's system interpreter and
its standard library, as ``/usr/bin/python3``), util-linux's ``mount``, ``umount``, ``unshare``,
``nsenter``, ``setpriv``, coreutils' ``chroot``, and the ``portage`` user and group (uid/gid 250).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

COREUTILS = (
    "basename cat chgrp chmod chown comm cp cut date dd df dirname du echo env expr false fold head id "
    "install ln ls md5sum mkdir mkfifo mknod mktemp mv nproc od paste printf pwd readlink realpath rm "
    "rmdir seq sha1sum sha256sum sha512sum sleep sort split stat sync tail tee test timeout touch tr true "
    "tty uname uniq wc whoami yes b2sum"
).split()
EXTRA = ("bash", "sh", "tar", "gzip", "gunzip", "zcat")
# what a real stage3 has that an attacker would use (util-linux, coreutils' chroot)
ATTACKER_TOOLS = ("mount", "umount", "unshare", "nsenter", "setpriv", "chroot", "kill", "ps", "grep")
# the standard library parts a stage3's Python has no use for here (tests, GUIs, bundled wheels)
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__",
                "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu"}


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return [m[1] for m in re.finditer(r"(/\S+)\s+\(0x", out) if os.path.exists(m[1])]


def _copy(src: str, root: Path) -> None:
    dest = root / src.lstrip("/")
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)


def system_python() -> str | None:
    """The host's system interpreter (``/usr/bin/python3``, resolved), or None: a stage3's Python is a
    distribution's, not a virtualenv's or pyenv's."""
    path = "/usr/bin/python3"
    return os.path.realpath(path) if os.path.exists(path) else None


def add_python(root: str | os.PathLike, python: str | None = None) -> str:
    """Copy ``python`` (default :func:`system_python`), its libraries and its standard library (its
    compiled extension modules and their libraries too) into ``root``, as ``/usr/bin/python3`` and
    ``/usr/bin/python``. Returns the version directory name (``python3.11``)."""
    root = Path(root)
    python = python or system_python()
    if not python:
        raise FileNotFoundError("no system Python (/usr/bin/python3) on this host")
    info = subprocess.run([python, "-c", "import sys, sysconfig; print(sysconfig.get_path('stdlib')); "
                           "print(f'python{sys.version_info[0]}.{sys.version_info[1]}')"],
                          capture_output=True, text=True, check=True).stdout.split()
    stdlib, name = info[0], info[1]
    dest_bin = root / "usr/bin"
    dest_bin.mkdir(parents=True, exist_ok=True)
    shutil.copy2(python, dest_bin / name)
    for link in ("python3", "python"):
        if not (dest_bin / link).exists():
            os.symlink(name, dest_bin / link)
    libs = set(_libraries(python))

    def skip(dirpath: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _STDLIB_SKIP or n.endswith(".pyc")}

    target = root / stdlib.lstrip("/")
    shutil.copytree(stdlib, target, ignore=skip, symlinks=True, dirs_exist_ok=True)
    for dirpath, _, filenames in os.walk(target):
        for f in filenames:
            if f.endswith(".so"):
                libs.update(_libraries(os.path.join(dirpath, f)))
    for lib in sorted(libs):
        _copy(lib, root)
        if os.path.islink(lib):
            _copy(os.path.realpath(lib), root)
    (target / "site-packages").mkdir(exist_ok=True)
    return name


def add_programs(root: str | os.PathLike, programs: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Copy ``programs`` from the host (resolved through PATH) into ``root/bin``, with their
    libraries; programs the host lacks are skipped, except those in ``required``."""
    root = Path(root)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    libs: set[str] = set()
    for prog in programs:
        path = shutil.which(prog, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if path is None:
            if prog in required:
                raise FileNotFoundError(f"{prog} is not installed on this host")
            continue
        real = os.path.realpath(path)
        shutil.copy2(real, root / "bin" / prog)
        libs.update(_libraries(real))
    for lib in sorted(libs):
        _copy(lib, root)
        # the loader and libraries are also reached through their unresolved names
        if os.path.islink(lib):
            _copy(os.path.realpath(lib), root)


def build_rootfs(root: str | os.PathLike, programs: tuple[str, ...] = (*COREUTILS, *EXTRA, *ATTACKER_TOOLS),
                 python: bool = True) -> Path:
    """Fill ``root`` with ``programs`` from the host (in /bin, resolved through PATH) and their
    libraries, and with the host's system Python unless ``python`` is false; returns ``root``.
    Programs the host lacks are skipped, except bash."""
    root = Path(root)
    for d in ("bin", "etc", "tmp", "var/tmp", "var/cache/distfiles", "proc", "sys", "dev", "run", "root",
              "usr/bin", "var/db/repos"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    add_programs(root, programs, required=("bash",))
    if python:
        add_python(root)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "portage:x:250:250:portage:/var/lib/portage/home:/bin/false\n"
                                     "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nportage:x:250:portage\nnobody:x:65534:\n")
    (root / "var/lib/portage/home").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('NAME="AutotuA test stage3"\nID=gentoo\n')
    (root / "etc/portage").mkdir(exist_ok=True)
    return root
