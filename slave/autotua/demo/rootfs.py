"""A tiny root filesystem made from the host's own bash, coreutils, tar and gzip, with their libraries.

No internet here, so no real stage3: the tests and the demo build this one instead, and the slave
treats it exactly like Gentoo's (see :mod:`autotua.demo.stage3`). It holds what a jobuild's phases
need (bash, coreutils, tar, gzip, uname) and the files a chroot expects (``/etc/passwd``...).
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


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return [m[1] for m in re.finditer(r"(/\S+)\s+\(0x", out) if os.path.exists(m[1])]


def _copy(src: str, root: Path) -> None:
    dest = root / src.lstrip("/")
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)


def build_rootfs(root: str | os.PathLike, programs: tuple[str, ...] = (*COREUTILS, *EXTRA)) -> Path:
    """Fill ``root`` with ``programs`` from the host (in /bin, resolved through PATH) and their
    libraries; returns ``root``. Programs the host lacks are skipped, except bash."""
    root = Path(root)
    for d in ("bin", "etc", "tmp", "var/tmp", "var/cache/distfiles", "proc", "sys", "dev", "run", "root",
              "usr/bin", "var/db/repos"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    libs: set[str] = set()
    for prog in programs:
        path = shutil.which(prog, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if path is None:
            if prog == "bash":
                raise FileNotFoundError("bash is not installed on this host")
            continue
        real = os.path.realpath(path)
        shutil.copy2(real, root / "bin" / prog)
        libs.update(_libraries(real))
    for lib in sorted(libs):
        _copy(lib, root)
        # the loader and libraries are also reached through their unresolved names
        if os.path.islink(lib):
            _copy(os.path.realpath(lib), root)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    (root / "etc/os-release").write_text('NAME="AutotuA test stage3"\nID=gentoo\n')
    (root / "etc/portage").mkdir(exist_ok=True)
    return root
