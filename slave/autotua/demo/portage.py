"""Real portage in the test stage3: portage from PyPI layered into the root's Python, as Gentoo installs it.

A real stage3 carries ``sys-apps/portage``; the test stage3 (:func:`autotua.demo.rootfs.build_rootfs`:
the host's Python and tools) gets the same portage release from PyPI instead, installed the way
Gentoo's ebuild installs it: a *system* install (``EPREFIX`` empty: configuration in
``/etc/portage``, the repository at ``/var/db/repos/gentoo``, the database in ``/var/db/pkg``), its
modules in the root's ``site-packages``, its programs in ``/usr/lib/portage/python3.11`` (Gentoo's
``PORTAGE_BIN_PATH``), ``emerge``, ``ebuild``... in ``/usr/bin``. The wheel is a pip install's
(``installation.TYPE`` MODULE: everything below ``sys.prefix``); its two meson slots for a system
install are filled as meson fills them. Beside it: the programs ``ebuild.sh`` and ``emerge`` call
(sed, find, xargs, awk, patch, xz, zstd, wget...), ``/etc/portage/make.profile`` pointing into the
repository (dangling until one is mounted, as in a real stage3), and a ``make.conf`` with what this
root lacks: no ``sys-apps/sandbox``, so ``FEATURES="-sandbox -usersandbox"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from autotua.demo.rootfs import add_programs, system_python

PORTAGE_VERSION = "3.0.83"
#: where the wheel is kept between runs (``var/`` of the checkout, as the demo's cache)
WHEEL_CACHE = Path(__file__).resolve().parents[3] / "var" / "cache" / "wheels"
#: what portage's ebuild.sh, its helpers and emerge run, beyond the test stage3's own tools
TOOLS = ("sed", "find", "xargs", "awk", "cmp", "diff", "patch", "xz", "bzip2", "zstd", "wget", "hostname",
         "getent", "scanelf")
ENTRY_POINTS = ("archive-conf", "dispatch-conf", "ebuild", "egencache", "emaint", "emerge", "emirrordist",
                "env-update", "fixpackages", "glsa-check", "gpkg-sign", "portageq", "quickpkg", "regenworld")
REPOSITORY = "/var/db/repos/gentoo"
MAKE_CONF = '''# The test stage3's portage configuration (autotua.demo.portage). A real stage3 has sys-apps/sandbox;
# this one does not, so portage's sandbox and usersandbox are off. The slave's own make.conf
# (DISTDIR, PKGDIR, MAKEOPTS, FEATURES) and a job's PORTCONF come on top of this.
FEATURES="test buildpkg -sandbox -usersandbox"
'''


def portage_wheel(cache_dir: str | os.PathLike = WHEEL_CACHE, version: str = PORTAGE_VERSION) -> Path:
    """``portage-<version>-py3-none-any.whl``, downloaded from PyPI once into ``cache_dir``."""
    cache_dir = Path(cache_dir)
    wheel = cache_dir / f"portage-{version}-py3-none-any.whl"
    if not wheel.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
                               ":all:", "--dest", str(cache_dir), f"portage=={version}"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.exists():
            raise RuntimeError(f"pip could not download portage {version}: {proc.stderr.strip()[-2000:]}")
    return wheel


def _python_name(root: Path) -> str:
    """The root's interpreter, ``python3.11`` (what :func:`autotua.demo.rootfs.add_python` copied)."""
    names = sorted(p.name for p in (root / "usr/lib").glob("python3.*") if (p / "os.py").exists())
    if not names:
        raise FileNotFoundError(f"{root} has no Python standard library in /usr/lib: build it with python=True")
    return names[-1]


def site_packages(python: str | None = None) -> str:
    """Where the root's interpreter (the host's system Python, copied) looks for packages: asked of
    that interpreter itself (Gentoo's is ``/usr/lib/python3.11/site-packages``; Debian's
    ``/usr/lib/python3/dist-packages``), the first below ``/usr/lib``."""
    python = python or system_python()
    if not python:
        raise FileNotFoundError("no system Python (/usr/bin/python3) on this host")
    out = subprocess.run([python, "-I", "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
                         capture_output=True, text=True, check=True).stdout.split()
    found = [d for d in out if d.startswith("/usr/lib/")]
    if not found:
        raise RuntimeError(f"{python} has no site-packages directory below /usr/lib ({out})")
    return found[0]


def _fill(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise RuntimeError(f"{path}: {old!r} not found: not the portage release this expects")
    path.write_text(text.replace(old, new))


def install_portage(root: str | os.PathLike, wheel: str | os.PathLike) -> str:
    """Install the portage ``wheel`` into ``root`` as a system install; returns PORTAGE_BIN_PATH."""
    root = Path(root)
    python = _python_name(root)
    site = root / site_packages().lstrip("/")
    base = "/usr/lib/portage"
    bin_path = f"{base}/{python}"
    with zipfile.ZipFile(wheel) as zf:
        data = next(n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".data"))
        for info in zf.infolist():
            if info.is_dir():
                continue
            name, kind = info.filename, ""
            if name.startswith(f"{data}/"):
                kind, rest = name[len(data) + 1:].split("/", 1)
                if kind == "data":  # lib/portage/bin/..., share/portage/..., etc/...
                    top, _, below = rest.partition("/")
                    if top == "etc":
                        dest = root / "etc" / below
                    elif rest.startswith("lib/portage/bin/"):
                        dest = root / bin_path.lstrip("/") / rest[len("lib/portage/bin/"):]
                    else:
                        dest = root / "usr" / rest
                elif kind == "scripts":
                    dest = root / "usr/bin" / rest
                else:
                    raise RuntimeError(f"{wheel}: unexpected {name}")
            else:
                dest = site / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dest, mode or 0o644)
            if kind == "scripts" and name.startswith(f"{data}/scripts/"):
                text = dest.read_bytes()
                if text.startswith(b"#!python"):
                    dest.write_bytes(b"#!/usr/bin/" + python.encode() + text[len(b"#!python"):])
                os.chmod(dest, 0o755)
    # a system install, as meson configures one for Gentoo (the wheel is a MODULE install)
    _fill(site / "portage/installation.py", 'if "MODULE" == "MODULE":', 'if "SYSTEM" == "MODULE":')
    _fill(site / "portage/installation.py", 'elif "MODULE" == "SYSTEM":', 'elif "SYSTEM" == "SYSTEM":')
    const = site / "portage/const.py"
    _fill(const, '    PORTAGE_BASE_PATH = """"""', f'    PORTAGE_BASE_PATH = """{base}"""')
    _fill(const, '    PORTAGE_BIN_PATH = """"""', f'    PORTAGE_BIN_PATH = """{bin_path}"""')
    for name in ENTRY_POINTS:
        wrapper = root / "usr/bin" / name
        wrapper.write_text(f"#!/usr/bin/{python}\nimport sys\nfrom portage.util.bin_entry_point import "
                           "bin_entry_point\nif __name__ == '__main__':\n    sys.exit(bin_entry_point())\n")
        os.chmod(wrapper, 0o755)
    return bin_path


def add_portage(root: str | os.PathLike, wheel: str | os.PathLike, profile: str) -> Path:
    """Layer portage into a root made by :func:`autotua.demo.rootfs.build_rootfs` (with Python):
    the tools portage runs, portage itself, ``make.profile`` -> ``<repository>/profiles/<profile>``,
    the directories portage keeps its state in, and the base ``make.conf``. Returns ``root``."""
    root = Path(root)
    add_programs(root, TOOLS)
    # portage calls GNU tar as gtar (Gentoo's app-arch/tar installs the name)
    if not (root / "bin/gtar").exists():
        os.symlink("tar", root / "bin/gtar")
    # scripts say #!/usr/bin/env bash, as on a merged-/usr stage3: every /bin program in /usr/bin too
    for prog in sorted((root / "bin").iterdir()):
        alias = root / "usr/bin" / prog.name
        if not (alias.exists() or alias.is_symlink()):
            os.symlink(f"../../bin/{prog.name}", alias)
    install_portage(root, wheel)
    etc = root / "etc/portage"
    etc.mkdir(parents=True, exist_ok=True)
    link = etc / "make.profile"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(f"../..{REPOSITORY}/profiles/{profile}", link)
    (etc / "make.conf").write_text(MAKE_CONF)
    for d in ("var/db/pkg", "var/cache/binpkgs", "var/cache/distfiles", "var/lib/portage", "var/log/portage",
              REPOSITORY.lstrip("/"), "usr/sbin", "sbin", "usr/local/bin", "etc/env.d", "etc/profile.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # as in a stage3: portage's group may write its logs and distfiles
        for d in ("var/log/portage", "var/cache/distfiles"):
            os.chown(root / d, 250, 250)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    compile_python(root)
    return root


def compile_python(root: str | os.PathLike) -> None:
    """Byte-compile the root's Python modules (portage's and the standard library's), as Gentoo's
    ebuilds do when they install them: a real stage3 ships them compiled, so a job's first ``emerge``
    does not spend seconds compiling portage into the job's layer."""
    python = _python_name(Path(root))
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", "-o", "0", str(Path(root) / "usr/lib" / python)],
                   check=True, stdout=subprocess.DEVNULL)


def build_portage_rootfs(root: str | os.PathLike, wheel: str | os.PathLike, profile: str) -> Path:
    """A fresh test stage3 root with real portage: :func:`build_rootfs` then :func:`add_portage`."""
    from autotua.demo.rootfs import build_rootfs

    return add_portage(build_rootfs(root), wheel, profile)


# the Handbook's chroot, in a mount namespace of its own: nothing stays mounted when it exits
_CHROOT = r'''set -e
root=$1 repo=$2; shift 2
mount --bind "$repo" "$root/var/db/repos/gentoo"
mount -o remount,bind,ro "$root/var/db/repos/gentoo"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
exec chroot "$root" "$@"
'''
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "TERM": "dumb", "LC_ALL": "C"}


def run_in_chroot(root: str | os.PathLike, repository: str | os.PathLike, *argv: str, env: dict | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess:
    """``argv`` in a plain chroot of ``root`` (as root), ``repository`` bind-mounted read-only at
    /var/db/repos/gentoo, with proc, /dev and /dev/shm: the Handbook's chroot, in a private mount
    namespace (util-linux ``unshare``) that takes every mount with it when it ends. For the tests and
    the bench; a job runs in the job container instead."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CHROOT, "chroot",
                           os.fspath(root), os.fspath(repository), *argv], env={**CHROOT_ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
