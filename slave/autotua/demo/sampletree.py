"""Build the signed sample jobtage tree: fresh keys, distfiles, Manifests, signatures, a bzr branch.

Private keys are never committed: the demo, the tests and the benchmarks all make theirs here, at
run time, in a GnuPG home of their own. The distfiles are built reproducibly (fixed mtimes, owners
and order), so their digests are the same on every machine.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import gnupg

from autotua.maintainer import export_key, sign_paths, write_manifest
from autotua.metadata import MetadataReader
from autotua.signature import Signer
from autotua.srcuri import Mirrors

HERE = Path(__file__).resolve().parent
DISTFILE_SOURCES = HERE / "distfiles"
REPO_ROOT = HERE.parents[2]
JOBTAGE = REPO_ROOT / "jobtage"
HELLO_VERSIONS = ("1.0", "1.1", "2.0")


def make_key(gnupghome: str | os.PathLike, user: str, *, expire: str | int = 0,
             fake_time: str | None = None) -> str:
    """Generate an ed25519 key for ``user`` (fast) and return its fingerprint.

    ``expire`` is gpg's expire-date (0: never, '1d', ...); ``fake_time`` (gpg's
    ``--faked-system-time``, e.g. '20200101T000000') makes keys that are already expired.
    """
    os.makedirs(gnupghome, mode=0o700, exist_ok=True)
    opts = ["--faked-system-time", fake_time + "!"] if fake_time else None
    gpg = gnupg.GPG(gnupghome=str(gnupghome), options=opts)
    inp = gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", name_real=user,
                            name_email=f"{user}@jobtage.example", no_protection=True, expire_date=expire)
    key = gpg.gen_key(inp)
    if not key.fingerprint:
        raise RuntimeError(f"gpg could not make a key for {user}: {key.stderr}")
    return key.fingerprint


def revoke_key(gnupghome: str | os.PathLike, fingerprint: str) -> bytes:
    """Revoke a key with the certificate gpg made beside it; returns the revoked public key."""
    rev = Path(gnupghome, "openpgp-revocs.d", f"{fingerprint}.rev").read_text()
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    gpg.import_keys(rev.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"))
    return gpg.export_keys(fingerprint).encode()


def stop_agent(gnupghome: str | os.PathLike) -> None:
    subprocess.run(["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"], capture_output=True)


def reproducible_tar(out: Path, members: list[tuple[str, bytes, int]]) -> None:
    """A .tar.gz whose bytes depend only on ``members`` (name, data, mode)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = sorted({str(Path(n).parent) for n, _, _ in members} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data, mode in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


def _members(src: Path, prefix: str) -> list[tuple[str, bytes, int]]:
    out = []
    for p in sorted(src.rglob("*")):
        if p.is_file():
            mode = 0o755 if os.access(p, os.X_OK) or p.suffix == ".sh" else 0o644
            out.append((f"{prefix}{p.relative_to(src).as_posix()}", p.read_bytes(), mode))
    return out


def build_distfiles(distdir: str | os.PathLike) -> dict[str, Path]:
    """The sample tree's SRC_URI and PORTCONF_URI files, under the names its jobuilds use."""
    distdir = Path(distdir)
    distdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for v in HELLO_VERSIONS:
        members = _members(DISTFILE_SOURCES / "hello-suite", f"hello-suite-{v}/")
        members.append((f"hello-suite-{v}/VERSION", f"{v}\n".encode(), 0o644))
        name = f"hello-suite-{v}.tar.gz"
        reproducible_tar(distdir / name, members)
        out[name] = distdir / name
    # 2.0 is fetched as hello-suite-2.0.tar.gz and stored as alice-hello-suite-2.0.tar.gz (SRC_URI '->')
    shutil.copyfile(distdir / "hello-suite-2.0.tar.gz", distdir / "alice-hello-suite-2.0.tar.gz")
    out["alice-hello-suite-2.0.tar.gz"] = distdir / "alice-hello-suite-2.0.tar.gz"
    reproducible_tar(distdir / "bob-portconf-1.tar.gz", _members(DISTFILE_SOURCES / "bob-portconf", ""))
    out["bob-portconf-1.tar.gz"] = distdir / "bob-portconf-1.tar.gz"
    return out


@dataclass
class SampleTree:
    """A signed jobtage branch with a working tree, its maintainers' keys, and its distfiles."""

    branch: Path
    gnupghome: Path
    distdir: Path
    fingerprints: dict[str, str] = field(default_factory=dict)

    def sign(self, *paths: str | os.PathLike, user: str) -> None:
        sign_paths(paths, Signer(self.fingerprints[user], str(self.gnupghome)), log=lambda _m: None)

    def manifest(self, user: str, name: str, reader: MetadataReader) -> None:
        path = write_manifest(self.branch / user / name, distdir=self.distdir, mirrors=Mirrors(), reader=reader,
                              log=lambda _m: None)
        self.sign(path, user=user)

    def commit(self, message: str) -> str:
        """Add everything new and commit; returns the new revision id."""
        from breezy.workingtree import WorkingTree

        wt = WorkingTree.open(str(self.branch))
        with wt.lock_write():
            wt.smart_add([str(self.branch)])
            return wt.commit(message, committer="AutotuA sample <sample@jobtage.example>").decode()

    def close(self) -> None:
        stop_agent(self.gnupghome)


def build_sample_tree(workdir: str | os.PathLike, *, source: str | os.PathLike = JOBTAGE,
                      reader: MetadataReader | None = None, users: dict[str, str] | None = None) -> SampleTree:
    """Copy ``source`` into a new bzr branch at ``workdir/jobtage``, make a key per maintainer
    (or use ``users``: user -> fingerprint already in ``workdir/gnupg``), write and sign every
    Manifest, sign every jobuild and template, and commit revision 1."""
    import breezy.bzr  # noqa: F401
    from breezy import controldir

    workdir = Path(workdir)
    branch = workdir / "jobtage"
    gnupghome = workdir / "gnupg"
    sample = SampleTree(branch, gnupghome, workdir / "distfiles")
    build_distfiles(sample.distdir)
    fmt = controldir.format_registry.make_controldir("2a")
    controldir.ControlDir.create_standalone_workingtree(str(branch), format=fmt)
    shutil.copytree(source, branch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("overlays", "*.asc"))
    sample.fingerprints = dict(users or {})
    own_reader = reader is None
    reader = reader or MetadataReader()
    try:
        for user_dir in sorted(p for p in branch.iterdir() if p.is_dir() and not p.name.startswith(".")):
            user = user_dir.name
            if user not in sample.fingerprints:
                sample.fingerprints[user] = make_key(gnupghome, user)
            export_key(branch, user, Signer(sample.fingerprints[user], str(gnupghome)), sample.fingerprints[user])
            for jdir in sorted(p for p in user_dir.iterdir() if p.is_dir() and p.name != "templates"):
                sample.manifest(user, jdir.name, reader)
            sample.sign(user_dir, user=user)
    finally:
        if own_reader:
            reader.close()
    sample.commit("The AutotuA sample jobtage tree")
    return sample
