"""A tiny Gentoo ebuild repository, published as a signed snapshot in Gentoo's ``snapshots/`` layout.

No internet here, so no ``gentoo-<date>.tar.xz`` from Gentoo's mirrors: the tests and the demo build
this one and publish it exactly as Gentoo does (see :mod:`autotua.slave.snapshot`)::

    snapshots/gentoo-<date>.tar.xz{,.gpgsig,.md5sum}     one top directory, gentoo-<date>/
    snapshots/gentoo-latest.tar.xz{,.gpgsig,.md5sum}     the newest, again
    distfiles/<file>                                     its packages' SRC_URI files (flat layout)

signed by a snapshot key made at run time, each signature made at the snapshot's own time (00:46 UTC
of its day, as Gentoo's are), so that ``gentoo-latest`` is dated by its signature as a real one is.
It is a real repository, built with real portage
(``egencache`` writes ``metadata/md5-cache``, which the next issue reads IUSE, REQUIRED_USE,
KEYWORDS and dependencies from): ``profiles/repo_name`` (``gentoo``, so that portage's default
``repos.conf`` finds it at ``/var/db/repos/gentoo``), ``profiles/categories``, one profile
(:data:`PROFILE`: ``make.defaults`` with ARCH, ACCEPT_KEYWORDS, CHOST, ELIBC, KERNEL, USERLAND, and
``eapi``), ``metadata/layout.conf``, ``metadata/timestamp.chk`` and thin Manifests (``DIST`` lines),
and these eclass-free EAPI 8 packages, each with a ``src_test``:

* ``dev-libs/slowlib-1.0`` (``amd64 x86``): its ``src_compile`` is a loop of real work for
  ``SLOWLIB_SECONDS`` seconds (default 3, from the environment or make.conf): the package whose
  compile dominates, for the binary package cache's bench;
* ``app-misc/hello-1.0`` (``amd64 x86 ~arm64``): ``IUSE="+english french broken-test"``,
  ``REQUIRED_USE="^^ ( english french )"``, depends on ``dev-libs/slowlib``, and its ``src_test``
  fails on purpose with ``USE=broken-test``;
* ``app-misc/tiny-1.0`` (``amd64``) and ``app-misc/tiny-1.1`` (``~amd64``): quick, no dependencies;
* for arch testing (:mod:`autotua.archtest`), quick too: ``dev-libs/libgreet-0.9`` (``amd64 x86``)
  and ``-1.0`` (``~amd64 ~x86``, ``IUSE="doc static-libs +unicode"``, no REQUIRED_USE, so all-on
  and all-off are both valid), and its reverse dependencies ``app-misc/greeter-1.0``
  (``RDEPEND=">=dev-libs/libgreet-0.9"``), ``app-misc/greeter-extras-1.0`` (only with
  ``USE=fancy``: ``fancy? ( >=dev-libs/libgreet-1.0[unicode] )``) and ``app-misc/oldgreet-1.0``
  (``<dev-libs/libgreet-1.0``: an reverse dependency of 0.9, not of 1.0).

Their SRC_URI is ``https://autotua.example.org/distfiles/...``, a host that does not exist: portage
fetches every file from ``GENTOO_MIRRORS`` first (``<mirror>/distfiles/<file>``), which points at the
local mirror, exactly as a Gentoo machine fetches from Gentoo's mirrors.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autotua.demo.sampletree import reproducible_tar
from autotua.demo.stage3 import COMPRESSORS, ReleaseKey
from autotua.manifest import Manifest

SNAPSHOT_NAME = "AutotuA test repository signing key (automated snapshot key)"
SNAPSHOT_EMAIL = "infrastructure@autotua.example"
REPO_NAME = "gentoo"
PROFILE = "default/linux/amd64/autotua"
SRC_BASE = "https://autotua.example.org/distfiles"
HEADER = ("# Copyright 2026 AutotuA test repository\n"
          "# Distributed under the terms of the GNU General Public License v2\n\n")

# -- the packages: ebuilds and the sources their distfiles hold --------------------------------------
EBUILDS = {
    "dev-libs/slowlib/slowlib-1.0.ebuild": '''EAPI=8

DESCRIPTION="A library whose build is slow on purpose: the binary package cache's bench"
HOMEPAGE="https://autotua.example.org/"
SRC_URI="%(src)s/${P}.tar.gz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="amd64 x86"

src_compile() {
	# real work, as a compiler's, for SLOWLIB_SECONDS seconds (default 3)
	local end=$(( SECONDS + ${SLOWLIB_SECONDS:-3} )) rounds=0
	while (( SECONDS < end )); do
		sha256sum data.txt > /dev/null || die "sha256sum failed"
		rounds=$(( rounds + 1 ))
	done
	./build.sh "${rounds}" > libslow.txt || die "build.sh failed"
}

src_test() {
	./test.sh || die "slowlib's tests failed"
}

src_install() {
	insinto /usr/share/slowlib
	doins libslow.txt
	dobin slowlib-info
}
''',
    "app-misc/hello/hello-1.0.ebuild": '''EAPI=8

DESCRIPTION="Says hello in the language of its USE flags; its tests fail on purpose with USE=broken-test"
HOMEPAGE="https://autotua.example.org/"
SRC_URI="%(src)s/${P}.tar.gz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="amd64 x86 ~arm64"
IUSE="+english french broken-test"
REQUIRED_USE="^^ ( english french )"

RDEPEND="dev-libs/slowlib"
DEPEND="${RDEPEND}"

src_compile() {
	./make-hello.sh "$(usex french french english)" > hello || die "make-hello.sh failed"
	chmod +x hello || die
}

src_test() {
	if use broken-test; then
		die "src_test fails on purpose: USE=broken-test"
	fi
	./run-tests.sh "$(usex french french english)" || die "hello's tests failed"
}

src_install() {
	dobin hello
}
''',
    "app-misc/tiny/tiny-1.0.ebuild": '''EAPI=8

DESCRIPTION="A quick package with no dependencies"
HOMEPAGE="https://autotua.example.org/"
SRC_URI="%(src)s/${P}.tar.gz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="amd64"

src_test() {
	[[ $(cat VERSION) == "${PV}" ]] || die "VERSION is not ${PV}"
}

src_install() {
	insinto /usr/share/tiny
	doins VERSION
}
''',
}
EBUILDS["app-misc/tiny/tiny-1.1.ebuild"] = EBUILDS["app-misc/tiny/tiny-1.0.ebuild"].replace(
    'KEYWORDS="amd64"', 'KEYWORDS="~amd64"')

_GREET = '''EAPI=8

DESCRIPTION="%(description)s"
HOMEPAGE="https://autotua.example.org/"
SRC_URI="%%(src)s/${P}.tar.gz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="%(keywords)s"
IUSE="%(iuse)s"
%(deps)s
src_test() {
	[[ $(cat VERSION) == "${PV}" ]] || die "VERSION is not ${PV}"
}

src_install() {
	insinto /usr/share/${PN}
	doins VERSION
}
'''
for _path, _fields in {
    "dev-libs/libgreet/libgreet-0.9.ebuild": ("A greeting library, the stable version", "amd64 x86", "", ""),
    "dev-libs/libgreet/libgreet-1.0.ebuild": ("A greeting library, the version being stabilised", "~amd64 ~x86",
                                              "doc static-libs +unicode", ""),
    "app-misc/greeter/greeter-1.0.ebuild": ("Greets, with libgreet", "amd64 x86", "nls",
                                            'RDEPEND=">=dev-libs/libgreet-0.9"\nDEPEND="${RDEPEND}"\n'),
    "app-misc/greeter-extras/greeter-extras-1.0.ebuild": (
        "Fancy greetings: needs libgreet 1.0 with USE=fancy only", "amd64", "fancy",
        'RDEPEND="fancy? ( >=dev-libs/libgreet-1.0[unicode] )"\n'),
    "app-misc/oldgreet/oldgreet-1.0.ebuild": ("Greets with the libgreet before 1.0", "amd64", "",
                                              'DEPEND="<dev-libs/libgreet-1.0"\nRDEPEND="${DEPEND}"\n'),
}.items():
    EBUILDS[_path] = _GREET % dict(zip(("description", "keywords", "iuse", "deps"), _fields, strict=True))

SOURCES = {
    "slowlib-1.0": {
        "data.txt": ("slowlib test data\n" * 4096, 0o644),
        "build.sh": ('#!/bin/sh\necho "slowlib 1.0, built in $1 rounds"\n', 0o755),
        "test.sh": ('#!/bin/sh\n[ -s libslow.txt ] && grep -q "^slowlib 1.0" libslow.txt\n', 0o755),
        "slowlib-info": ('#!/bin/sh\ncat /usr/share/slowlib/libslow.txt\n', 0o755),
    },
    "hello-1.0": {
        "make-hello.sh": ('#!/bin/sh\ncase "$1" in french) w=Bonjour ;; *) w=Hello ;; esac\n'
                      'printf \'#!/bin/sh\\necho "%s from hello 1.0"\\n\' "$w"\n', 0o755),
        "run-tests.sh": ('#!/bin/sh\ncase "$1" in french) want=Bonjour ;; *) want=Hello ;; esac\n'
                         './hello | grep -q "^$want from hello 1.0"\n', 0o755),
    },
    "tiny-1.0": {"VERSION": ("1.0\n", 0o644)},
    "tiny-1.1": {"VERSION": ("1.1\n", 0o644)},
    **{p: {"VERSION": (p.rsplit("-", 1)[1] + "\n", 0o644)}
       for p in ("libgreet-0.9", "libgreet-1.0", "greeter-1.0", "greeter-extras-1.0", "oldgreet-1.0")},
}

METADATA_XML = '''<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE pkgmetadata SYSTEM "https://www.gentoo.org/dtd/metadata.dtd">
<pkgmetadata>
	<maintainer type="person">
		<email>alice@jobtage.example</email>
	</maintainer>
%s</pkgmetadata>
'''
USE_FLAGS = {"app-misc/hello": {"english": "Say hello in English", "french": "Say hello in French",
                                "broken-test": "Make src_test fail, on purpose"},
             "dev-libs/libgreet": {"doc": "Install the documentation", "static-libs": "Build static libraries",
                                   "unicode": "Greet in Unicode"},
             "app-misc/greeter": {"nls": "Translated greetings"},
             "app-misc/greeter-extras": {"fancy": "Fancy greetings, with libgreet 1.0"}}


def timestamp_of(date: str) -> datetime.datetime:
    """When Gentoo makes the snapshot of ``date``: 00:45 UTC that day."""
    return datetime.datetime.strptime(date + "0045", "%Y%m%d%H%M").replace(tzinfo=datetime.UTC)


def build_distfiles(distdir: str | os.PathLike) -> dict[str, Path]:
    """The packages' SRC_URI files (reproducible: the same bytes on every machine)."""
    distdir = Path(distdir)
    distdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for p, files in SOURCES.items():
        name = f"{p}.tar.gz"
        reproducible_tar(distdir / name, [(f"{p}/{f}", text.encode(), mode) for f, (text, mode) in files.items()])
        out[name] = distdir / name
    return out


def egencache(repo: Path) -> None:
    """Write ``metadata/md5-cache`` with real portage (the one installed beside this Python)."""
    exe = Path(sys.executable).with_name("egencache")
    if not exe.exists():
        exe = Path(shutil.which("egencache") or "egencache")
    env = {"PATH": f"{exe.parent}:/usr/bin:/bin", "HOME": tempfile.gettempdir(), "LC_ALL": "C"}
    conf = f"[{REPO_NAME}]\nlocation = {repo}\n"
    proc = subprocess.run([str(exe), "--update", f"--repo={REPO_NAME}", f"--repositories-configuration={conf}",
                           "--jobs=1"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"egencache failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def build_repository(root: str | os.PathLike, date: str, distdir: str | os.PathLike, *,
                     extra: dict[str, str] | None = None) -> Path:
    """Write the repository as of ``date`` (``YYYYMMDD``) into ``root``, its distfiles into ``distdir``;
    ``extra`` (path -> ebuild text, no SRC_URI) adds packages (the group bench's)."""
    root = Path(root)
    dist = build_distfiles(distdir)
    ebuilds = {**EBUILDS, **(extra or {})}
    files = {
        "profiles/repo_name": f"{REPO_NAME}\n",
        "profiles/categories": "".join(f"{c}\n" for c in sorted({k.split("/")[0] for k in ebuilds})),
        "profiles/arch.list": "amd64\narm64\nx86\n",
        "profiles/profiles.desc": f"amd64\t{PROFILE}\tstable\n",
        "profiles/use.desc": "test - Run the package's tests (FEATURES=test)\n",
        f"profiles/{PROFILE}/eapi": "8\n",
        f"profiles/{PROFILE}/make.defaults": ('ARCH="amd64"\nACCEPT_KEYWORDS="amd64"\nCHOST="x86_64-pc-linux-gnu"\n'
                                              'ELIBC="glibc"\nKERNEL="linux"\nUSERLAND="GNU"\n'
                                              'USE_EXPAND_IMPLICIT="ARCH ELIBC KERNEL USERLAND"\n'
                                              'USE_EXPAND_UNPREFIXED="ARCH"\nUSE_EXPAND_VALUES_ARCH="amd64 arm64 x86"\n'
                                              'USE_EXPAND_VALUES_ELIBC="glibc musl"\n'
                                              'USE_EXPAND_VALUES_KERNEL="linux"\nUSE_EXPAND_VALUES_USERLAND="GNU"\n'),
        "metadata/layout.conf": (f"repo-name = {REPO_NAME}\nmasters =\nthin-manifests = true\n"
                                 "sign-manifests = false\nprofile-formats = portage-2\ncache-formats = md5-dict\n"
                                 "manifest-hashes = BLAKE2B SHA512\nmanifest-required-hashes = BLAKE2B\n"),
    }
    for path, ebuild in EBUILDS.items():
        files[path] = HEADER + ebuild % {"src": SRC_BASE}
    for path, ebuild in (extra or {}).items():
        files[path] = HEADER + ebuild
    for pkg in {"/".join(p.split("/")[:2]) for p in ebuilds}:
        flags = USE_FLAGS.get(pkg, {})
        use = "".join(f'\t\t<flag name="{f}">{d}</flag>\n' for f, d in flags.items())
        files[f"{pkg}/metadata.xml"] = METADATA_XML % (f"\t<use>\n{use}\t</use>\n" if use else "")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for pkg in sorted({"/".join(p.split("/")[:2]) for p in ebuilds}):
        mine = {n: dist[n] for n in dist if n.rsplit("-", 1)[0] == pkg.split("/")[1]}
        (root / pkg / "Manifest").write_text(Manifest.build(mine, {}).to_text())
    egencache(root)
    when = timestamp_of(date)
    (root / "metadata/timestamp.chk").write_text(when.strftime("%a, %d %b %Y %H:%M:%S +0000") + "\n")
    (root / "metadata/timestamp.x").write_text(f"{int(when.timestamp())} {when:%a %b %d %H:%M:%S %Y}\n")
    (root / "metadata/timestamp").write_text(when.strftime("%a %b %d %H:%M:%S UTC %Y") + "\n")
    return root


# -- publishing ---------------------------------------------------------------------------------
@dataclass
class SnapshotRelease:
    """What :func:`publish_snapshot` wrote. ``mirror`` is the directory to serve."""

    mirror: Path
    date: str
    tarball: Path

    @property
    def snapshots(self) -> Path:
        return self.mirror / "snapshots"

    @property
    def signature(self) -> Path:
        return Path(f"{self.tarball}.gpgsig")

    @property
    def md5sum(self) -> Path:
        return Path(f"{self.tarball}.md5sum")

    @property
    def latest(self) -> Path:
        return self.snapshots / "gentoo-latest.tar.xz"


def make_snapshot_key(gnupghome: str | os.PathLike, **kw) -> ReleaseKey:
    """A snapshot signing key made as Gentoo's is (certify-only primary key, signing subkey), in 2020
    so that it can sign the snapshots of any later day at their own time."""
    kw.setdefault("fake_time", "20200101T000000")
    return ReleaseKey.make(gnupghome, name=SNAPSHOT_NAME, email=SNAPSHOT_EMAIL, **kw)


def signing_time(date: str) -> str:
    """gpg's ``--faked-system-time`` for a snapshot's signature: a minute after it was made."""
    return (timestamp_of(date) + datetime.timedelta(minutes=1)).strftime("%Y%m%dT%H%M%S")


def write_snapshot_tarball(out: Path, tree: Path, top: str,
                           extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> None:
    """``tree`` as ``<top>/...`` entries owned by portage (250), in a stable order, xz-compressed;
    ``extra`` raw members are appended (tests of hostile snapshots)."""
    raw = io.BytesIO()

    def add(path: Path, arc: str) -> None:
        info = tarfile.TarInfo(arc)
        st = path.lstat()
        info.mtime, info.uid, info.gid, info.uname, info.gname = int(st.st_mtime), 250, 250, "portage", "portage"
        if path.is_symlink():
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
            tar.addfile(info)
        elif path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        else:
            data = path.read_bytes()
            info.size, info.mode = len(data), st.st_mode & 0o755
            tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add(tree, top)
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = Path(dirpath, name)
                add(full, f"{top}/{full.relative_to(tree).as_posix()}")
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        subprocess.run(COMPRESSORS["xz"], input=raw.getvalue(), stdout=f, check=True)


def sign_snapshot(tarball: Path, key: ReleaseKey, date: str) -> None:
    """Gentoo's ``.gpgsig`` (a detached signature, made at the snapshot's time) and ``.md5sum``
    (``<md5>  <file>``) for ``tarball``."""
    data = tarball.read_bytes()
    Path(f"{tarball}.gpgsig").write_bytes(key.signer_at(signing_time(date)).detached(data))
    Path(f"{tarball}.md5sum").write_text(f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}  {tarball.name}\n")


def publish_snapshot(mirror: str | os.PathLike, key: ReleaseKey, date: str, *, latest: bool = True,
                     repository: str | os.PathLike | None = None,
                     extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> SnapshotRelease:
    """Publish the repository as of ``date`` under ``mirror/snapshots/`` (and its distfiles under
    ``mirror/distfiles/``), signed by ``key``; with ``latest``, also as ``gentoo-latest.tar.xz``."""
    mirror = Path(mirror)
    tarball = mirror / "snapshots" / f"gentoo-{date}.tar.xz"
    with tempfile.TemporaryDirectory(prefix="autotua-repo-") as tmp:
        tree = Path(repository) if repository else build_repository(Path(tmp) / "gentoo", date, mirror / "distfiles")
        write_snapshot_tarball(tarball, tree, f"gentoo-{date}", extra)
    sign_snapshot(tarball, key, date)
    release = SnapshotRelease(mirror, date, tarball)
    if latest:
        for suffix in ("", ".gpgsig"):
            shutil.copyfile(f"{tarball}{suffix}", f"{release.latest}{suffix}")
        Path(f"{release.latest}.md5sum").write_text(Path(f"{tarball}.md5sum").read_text())
    return release
