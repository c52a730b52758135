"""A tiny stage3, published in Gentoo's autobuilds layout and signed by a release key made at run time.

Gentoo's mirrors publish, under ``releases/<arch>/autobuilds/``::

    latest-stage3-<arch>-<flavour>.txt            clearsigned: "# Latest as of <date>", "# ts=<epoch>",
                                                  then "<timestamp>/<file> <size>"
    <timestamp>/stage3-<arch>-<flavour>-<timestamp>.tar.xz
    <timestamp>/<tarball>.asc                     detached signature of the tarball
    <timestamp>/<tarball>.CONTENTS.gz             the listing (``tar tv``), gzipped
    <timestamp>/<tarball>.DIGESTS                 clearsigned; catalyst's "# BLAKE2B HASH" / "# SHA512 HASH"
                                                  blocks, "<hex>  <file>", for the tarball and CONTENTS.gz
    <timestamp>/<tarball>.sha256                  clearsigned "# SHA256 HASH" block for the tarball

all signed by the release key (Gentoo's is in ``/usr/share/openpgp-keys/gentoo-release.asc``). The
tests and the demo have no internet and no Gentoo key, so they publish the host's own bash and
coreutils (:func:`autotua.demo.rootfs.build_rootfs`) this way, signed by a test release key, and
the slave handles it exactly as it handles Gentoo's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gnupg

from autotua.demo.rootfs import build_rootfs
from autotua.signature import Signer

RELEASE_NAME = "AutotuA test release engineering (automated weekly release key)"
RELEASE_EMAIL = "releng@autotua.example"
COMPRESSORS = {"xz": ["xz", "-T1", "-0", "-c"], "bz2": ["bzip2", "-c"], "gz": ["gzip", "-c", "-n"]}


@dataclass
class ReleaseKey:
    """A release signing key in a GnuPG home of its own, and its public key file.

    Made as Gentoo makes its release and snapshot keys: a primary key that only certifies, and a
    signing subkey that makes every signature (so a key file that is not kept up to date holds an
    expired *subkey*). ``sign_expire`` (gpg's ``1d``, ``2y``...) and ``fake_time`` (gpg's
    ``--faked-system-time``) make one whose subkey has already expired.
    """

    gnupghome: Path
    fingerprint: str
    key_file: Path
    fake_time: str | None = None  # sign as of this time (a key that has expired since)

    @classmethod
    def make(cls, gnupghome: str | os.PathLike, *, name: str = RELEASE_NAME, email: str = RELEASE_EMAIL,
             sign_expire: str = "0", fake_time: str | None = None) -> ReleaseKey:
        home = Path(gnupghome)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        faked = ["--faked-system-time", fake_time + "!"] if fake_time else []

        def gpg(*args: str) -> None:
            proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                                   "--passphrase", "", *faked, *args], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"gpg {args[0]}: {proc.stderr.strip()}")

        gpg("--quick-gen-key", f"{name} <{email}>", "ed25519", "cert", "0")
        listing = gnupg.GPG(gnupghome=str(home)).list_keys()
        fingerprint = next(k["fingerprint"] for k in listing if any(u.endswith(f"<{email}>") for u in k["uids"]))
        gpg("--quick-add-key", fingerprint, "ed25519", "sign", sign_expire)
        key_file = home / "release.asc"
        key_file.write_bytes(Signer(fingerprint, str(home)).export_public(fingerprint))
        return cls(home, fingerprint, key_file, fake_time)

    def revoke_signing_subkey(self) -> bytes:
        """Revoke the signing subkey (as a key's owner does when it is compromised); returns the key
        as now exported, and writes it to :attr:`key_file`."""
        script = "key 1\nrevkey\ny\n0\n\ny\nsave\n"
        proc = subprocess.run(["gpg", "--homedir", str(self.gnupghome), "--batch", "--pinentry-mode", "loopback",
                               "--passphrase", "", "--command-fd", "0", "--edit-key", self.fingerprint],
                              input=script, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"gpg --edit-key revkey: {proc.stderr.strip()}")
        data = Signer(self.fingerprint, str(self.gnupghome)).export_public(self.fingerprint)
        self.key_file.write_bytes(data)
        return data

    @property
    def signer(self) -> Signer:
        return self.signer_at(self.fake_time)

    def signer_at(self, when: str | None) -> Signer:
        """A Signer whose signatures are made at ``when`` (gpg's ``20261117T004600``; None: now)."""
        signer = Signer(self.fingerprint, str(self.gnupghome))
        if when:
            signer.gpg.options = ["--faked-system-time", when + "!"]
        return signer


@dataclass
class Stage3Release:
    """What :func:`publish_stage3` wrote. ``mirror`` is the directory to serve (it holds ``releases/``)."""

    mirror: Path
    arch: str
    flavour: str
    timestamp: str
    path: str  # "<timestamp>/<file>", relative to the autobuilds directory
    tarball: Path

    @property
    def autobuilds(self) -> Path:
        return self.mirror / "releases" / self.arch / "autobuilds"

    @property
    def latest(self) -> Path:
        return self.autobuilds / f"latest-stage3-{self.arch}-{self.flavour}.txt"


def timestamp_now() -> str:
    """Gentoo's release stamp, ``20261117T170000Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def digests_block(path: Path, names: Iterable[str] = ("blake2b", "sha512")) -> str:
    """catalyst's DIGESTS entries for one file: ``# <NAME> HASH`` then ``<hex>  <file>``, per hash."""
    out = []
    for name in names:
        h = hashlib.new(name)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        out.append(f"# {name.upper()} HASH\n{h.hexdigest()}  {path.name}\n")
    return "".join(out)


def _add_tree(tar: tarfile.TarFile, root: Path) -> None:
    """Add ``root`` as ``./...`` entries in a stable order, as ``tar -C root .`` names them."""
    tar.add(root, arcname=".", recursive=False)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            arc = "./" + (name if rel == "." else f"{rel}/{name}")
            tar.add(full, arcname=arc, recursive=False)


def write_tarball(out: Path, root: Path, compression: str = "xz",
                  extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = ()) -> None:
    """Tar ``root`` (plus ``extra`` raw members, for tests of hostile tarballs) and compress it."""
    fd, raw = tempfile.mkstemp(dir=out.parent, prefix=".tar-")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_tree(tar, root)
            for info, data in extra:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        with open(raw, "rb") as src, open(out, "wb") as dst:
            subprocess.run(COMPRESSORS[compression], stdin=src, stdout=dst, check=True)
    finally:
        os.unlink(raw)


def _contents(tarball: Path, out: Path) -> None:
    listing = subprocess.run(["tar", "-tvf", str(tarball), "--numeric-owner"], capture_output=True, check=True).stdout
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(listing)


def publish_stage3(mirror: str | os.PathLike, key: ReleaseKey, *, arch: str = "amd64", flavour: str = "openrc",
                   rootfs: str | os.PathLike | None = None, timestamp: str | None = None, compression: str = "xz",
                   extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = ()) -> Stage3Release:
    """Publish a stage3 of ``rootfs`` (default: a fresh :func:`build_rootfs`) under ``mirror``, signed
    by ``key``, and point ``latest-stage3-<arch>-<flavour>.txt`` at it."""
    mirror = Path(mirror)
    timestamp = timestamp or timestamp_now()
    autobuilds = mirror / "releases" / arch / "autobuilds"
    release_dir = autobuilds / timestamp
    release_dir.mkdir(parents=True, exist_ok=True)
    name = f"stage3-{arch}-{flavour}-{timestamp}.tar.{compression}"
    tarball = release_dir / name
    with tempfile.TemporaryDirectory(prefix="autotua-stage3-") as tmp:
        root = Path(rootfs) if rootfs else build_rootfs(Path(tmp) / "root")
        write_tarball(tarball, root, compression, extra)
    signer = key.signer
    Path(f"{tarball}.asc").write_bytes(signer.detached(tarball.read_bytes()))
    contents = Path(f"{tarball}.CONTENTS.gz")
    _contents(tarball, contents)
    digests = digests_block(tarball) + digests_block(contents)
    Path(f"{tarball}.DIGESTS").write_bytes(signer.clearsign(digests.encode()))
    Path(f"{tarball}.sha256").write_bytes(signer.clearsign(digests_block(tarball, ("sha256",)).encode()))
    now = time.time()
    latest = (f"# Latest as of {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(now))}\n# ts={int(now)}\n"
              f"{timestamp}/{name} {tarball.stat().st_size}\n")
    release = Stage3Release(mirror, arch, flavour, timestamp, f"{timestamp}/{name}", tarball)
    release.latest.write_bytes(signer.clearsign(latest.encode()))
    return release


def copy_release(release: Stage3Release, mirror: str | os.PathLike) -> Stage3Release:
    """A copy of a published release under another mirror root (to spoil one copy in a test)."""
    mirror = Path(mirror)
    shutil.copytree(release.mirror / "releases", mirror / "releases", dirs_exist_ok=True)
    return Stage3Release(mirror, release.arch, release.flavour, release.timestamp, release.path,
                         mirror / "releases" / release.arch / "autobuilds" / release.path)
