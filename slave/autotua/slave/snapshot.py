"""The Gentoo ebuild repository a job sees: a snapshot from Gentoo's ``snapshots/``, verified and
cached unpacked, or (a volunteer on Gentoo who chooses it) the host's own repository.

Gentoo publishes, in each mirror's ``snapshots/`` directory::

    gentoo-<YYYYMMDD>.tar.xz            the repository as of that day, in one top directory
    gentoo-<YYYYMMDD>.tar.xz.gpgsig     its detached signature by the snapshot key
    gentoo-<YYYYMMDD>.tar.xz.md5sum     "<md5>  <file>"
    gentoo-latest.tar.xz{,.gpgsig,.md5sum}   the newest of them

signed by the snapshot key (Gentoo's ``DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D``, "Gentoo
ebuild repository signing key", in ``/usr/share/openpgp-keys/gentoo-release.asc`` from
``sec-keys/openpgp-keys-gentoo-release``). The slave does what ``emerge-webrsync`` does, and no
less: the download (resumed, shown on a terminal) must match the ``.md5sum`` and its signature
must verify against that one key of the key file, or it is deleted; every tarball entry is then
checked (one top directory, files, directories and links only, no link out of the tree, no
setuid file) and it is unpacked once per date into ``<cache>/repos/gentoo-<date>/``, which
jobs use read-only and hold with a shared lock; the oldest beyond ``keep`` are pruned when no job
holds them. ``gentoo-latest`` is dated by its signature's creation time (signed, unlike the
mirror's file times), so it lands in the same place as the dated file of that day; and a dated
file must be signed on its day (or the next), so a mirror cannot serve an older signed snapshot
under a newer name.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from autotua.signature import KeyFileVerifier, Signed
from autotua.slave import SlaveError
from autotua.slave.config import GENTOO_SNAPSHOT_KEY
from autotua.slave.fsutil import UnsafePath, read_regular
from autotua.slave.locks import locked
from autotua.slave.tarball import unpack_repository
from autotua.slave.unpacked import UnpackedCache
from autotua.slave.verified import SignedSource, is_verified, read_stamp, write_stamp

log = logging.getLogger("autotua.slave.snapshot")

#: the most a snapshot download may be (Gentoo's is about 45 MiB as .tar.xz)
MAX_SNAPSHOT_BYTES = 4 << 30
LATEST = "latest"
_DATE_RE = re.compile(r"\A\d{8}\Z")
_MD5_RE = re.compile(r"\A[0-9a-fA-F]{32}\Z")


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "repository")


def check_date(date: str) -> str:
    """``YYYYMMDD`` of a real day, or SlaveError: a date from the master is never a path."""
    if not isinstance(date, str) or not _DATE_RE.match(date):
        raise _err(f"{date!r} is not a snapshot date (YYYYMMDD)")
    try:
        datetime.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    except ValueError:
        raise _err(f"{date!r} is not a snapshot date (no such day)") from None
    return date


def snapshot_name(date: str) -> str:
    """``gentoo-<date>.tar.xz`` (``gentoo-latest.tar.xz`` for :data:`LATEST`)."""
    return f"gentoo-{date if date == LATEST else check_date(date)}.tar.xz"


def parse_md5sum(body: bytes, label: str) -> str:
    """The MD5 of a ``.md5sum`` file, read as emerge-webrsync reads it: the first word of the first line."""
    words = body.decode("ascii", errors="replace").split()
    if not words or not _MD5_RE.match(words[0]):
        raise _err(f"{label}: not an MD5 sum ('<md5>  <file>')")
    return words[0].lower()


def _day(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y%m%d")


def _next_day(date: str) -> str:
    return (datetime.datetime.strptime(date, "%Y%m%d") + datetime.timedelta(days=1)).strftime("%Y%m%d")


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_timestamp(tree: Path) -> str:
    """The first line of ``metadata/timestamp.chk`` (``Sun, 17 Nov 2024 00:45:01 +0000``), or ``""``;
    read without following links."""
    try:
        data = read_regular(tree / "metadata" / "timestamp.chk", 4096)
    except (UnsafePath, OSError):
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[0].strip()[:100] if lines else ""


@dataclass(frozen=True)
class Repository:
    """The repository a job gets: where it is on the host, and what to record about it."""

    path: Path
    source: str  # "snapshot" or "host"
    snapshot: str = ""  # the date, for a snapshot
    timestamp: str = ""  # metadata/timestamp.chk's first line
    cache: UnpackedCache | None = None

    @property
    def name(self) -> str:
        return snapshot_name(self.snapshot) if self.snapshot else ""

    def hold(self) -> int | None:
        """A shared lock that keeps the tree from being pruned for the life of the job (close it to
        release); None for the host's repository, which is not ours to prune."""
        return self.cache.hold(self.path) if self.cache else None

    def inputs(self) -> dict:
        """What a run records of it (docs/protocol.md, Inputs)."""
        out = {"source": self.source, "timestamp_chk": self.timestamp}
        if self.source == "snapshot":
            out.update(snapshot=self.snapshot, name=self.name)
        else:
            out["path"] = os.fspath(self.path)
        return out


class SnapshotStore:
    """Verified snapshots: tarballs under ``<cache>/snapshots/``, trees under ``<cache>/repos/``."""

    def __init__(self, mirrors: Iterable[str], cache_dir: str | os.PathLike, key_file: str | os.PathLike, *,
                 fingerprint: str = GENTOO_SNAPSHOT_KEY, keep: int = 3, session: requests.Session | None = None):
        self.mirrors = [m.rstrip("/") for m in mirrors if m]
        self.dir = Path(cache_dir) / "snapshots"
        self.trees = UnpackedCache(cache_dir, "repos", unpack_repository, "repository")
        self.keep = keep
        self.source = SignedSource(key_file, step="repository", name="the Gentoo snapshot key",
                                   config_key="snapshot_key", only=[fingerprint] if fingerprint else [],
                                   session=session)

    @classmethod
    def for_config(cls, cfg) -> SnapshotStore:
        return cls([cfg.snapshot_mirror or cfg.stage3_mirror], cfg.cache_dir, cfg.snapshot_key,
                   fingerprint=cfg.snapshot_key_fingerprint, keep=cfg.keep_snapshots)

    def urls(self, name: str, hints: Iterable[str] = ()) -> list[str]:
        """``<mirror>/snapshots/<name>`` for the slave's own mirror first, then the job's hints (base
        URLs of a ``snapshots/`` directory): a signature is checked, so any mirror will do."""
        bases = [f"{m}/snapshots/" for m in self.mirrors] + [h if h.endswith("/") else h + "/" for h in hints if h]
        return list(dict.fromkeys(b + name for b in bases if b.startswith(("http://", "https://"))))

    # -- the tarball -------------------------------------------------------------------------------
    def fetch(self, date: str, hints: Iterable[str] = ()) -> Path:
        """``gentoo-<date>.tar.xz``, verified: from the cache, or fetched (and checked) now."""
        name = snapshot_name(date)
        dest = self.dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / f"{name}.lock"):
            if is_verified(dest):
                return dest
            with self.source.verifier() as verifier:
                signed = self._fetch_verified(self.urls(name, hints), dest, verifier)
            signed_on = _day(signed.created)
            if signed_on not in (date, _next_day(date)):
                dest.unlink()
                raise _err(f"{name} was signed on {signed_on}: it is not the snapshot of {date} (another day's, "
                           "served under this name?); the download was deleted")
            write_stamp(dest, {"date": date, "md5": _md5(dest), "signed": signed.created})
        return dest

    def fetch_latest(self, hints: Iterable[str] = ()) -> str:
        """Fetch ``gentoo-latest.tar.xz``, verify it, and keep it as the dated snapshot its signature
        was made on; returns that date. Nothing is fetched but the signature when it is cached."""
        urls = self.urls(snapshot_name(LATEST), hints)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.source.verifier() as verifier, locked(self.dir / "gentoo-latest.tar.xz.lock"):
            sig_sha = self._latest_signature(urls)
            for dest in self._cached_tarballs():
                if read_stamp(dest).get("signature_sha256") == sig_sha:
                    return read_stamp(dest)["date"]
            part = self.dir / snapshot_name(LATEST)
            signed = self._fetch_verified(urls, part, verifier)
            date = _day(signed.created)
            dest = self.dir / snapshot_name(date)
            with locked(self.dir / f"{dest.name}.lock"):
                if is_verified(dest):  # fetched by its date before: keep that one
                    part.unlink()
                    write_stamp(dest, {**read_stamp(dest), "signature_sha256": sig_sha})
                else:
                    os.replace(part, dest)
                    write_stamp(dest, {"date": date, "md5": _md5(dest), "from": part.name,
                                       "signature_sha256": sig_sha})
        log.info("gentoo-latest.tar.xz is the snapshot of %s (its signature's date)", date)
        return date

    def _latest_signature(self, urls: list[str]) -> str:
        errors = []
        for url in urls:
            try:
                return hashlib.sha256(self.source.small(url + ".gpgsig", "a signature")).hexdigest()
            except SlaveError as e:
                errors.append(str(e).removeprefix("repository: "))
        raise _err("; ".join(errors) or "no snapshot mirror configured (snapshot_mirror)")

    def _fetch_verified(self, urls: list[str], dest: Path, verifier: KeyFileVerifier) -> Signed:
        """Download, check the ``.md5sum`` and the ``.gpgsig``; the Signed (with its creation time)."""
        if not urls:
            raise _err("no snapshot mirror configured (snapshot_mirror)")
        errors, md5 = [], None
        for url in urls:
            try:
                md5 = parse_md5sum(self.source.small(url + ".md5sum", "an MD5 sum"), dest.name + ".md5sum")
                break
            except SlaveError as e:
                errors.append(str(e).removeprefix("repository: "))
        if md5 is None:
            raise _err("; ".join(errors))

        def check(path: Path) -> None:
            got = _md5(path)
            if got != md5:
                raise _err(f"{dest.name}: MD5 {got} is not the {md5} of {dest.name}.md5sum")

        log.info("fetching the repository snapshot %s", dest.name)
        signed = self.source.fetch_verified(urls, dest, verifier, signature_suffix=".gpgsig",
                                            max_size=MAX_SNAPSHOT_BYTES, check=check)
        log.info("snapshot %s verified (MD5 and signature by the snapshot key %s)", dest.name, signed.fingerprint)
        return signed

    def _cached_tarballs(self) -> list[Path]:
        stamps = sorted(self.dir.glob("gentoo-[0-9]*.tar.xz.verified"), reverse=True)
        return [d for d in (Path(str(s)[: -len(".verified")]) for s in stamps) if d.exists()]

    def cached(self) -> list[str]:
        """The dates whose snapshot is verified in the cache (tarball or unpacked tree), newest first."""
        dates = {p.name[len("gentoo-"):-len(".tar.xz")] for p in self._cached_tarballs()}
        dates |= {p.name[len("gentoo-"):] for p in self.trees.trees() if p.name.startswith("gentoo-")}
        return sorted(dates, reverse=True)

    # -- the tree ----------------------------------------------------------------------------------
    def get(self, date: str, hints: Iterable[str] = ()) -> Repository:
        """The repository as of ``date`` (or :data:`LATEST`), unpacked read-only in the cache; older
        snapshots beyond ``keep`` are pruned (those no job holds)."""
        if date == LATEST:
            date = self.fetch_latest(hints)
        tree = self.trees.path_for(snapshot_name(date))
        if not self.trees.is_complete(tree):
            tarball = self.fetch(date, hints)
            try:
                tree = self.trees.get(tarball)
            except SlaveError:
                for p in (Path(f"{tarball}.verified"), tarball):  # signed, but refused: not kept either
                    p.unlink(missing_ok=True)
                raise
        repo = Repository(tree, "snapshot", date, read_timestamp(tree), self.trees)
        self.prune(keep={date})
        return repo

    def prune(self, keep: set[str] = frozenset()) -> list[str]:
        """Keep the newest ``keep`` snapshots (and those named); delete the others' trees and tarballs
        unless a job holds them. Returns the dates deleted."""
        dates = self.cached()
        wanted = set(dates[: self.keep]) | set(keep)
        gone = []
        for date in dates:
            if date in wanted:
                continue
            if not self.trees.remove(self.trees.path_for(snapshot_name(date))):
                continue  # a job holds it
            tarball = self.dir / snapshot_name(date)
            for p in (Path(f"{tarball}.verified"), tarball):
                p.unlink(missing_ok=True)
            gone.append(date)
        return gone


def host_repository(path: str | os.PathLike) -> Repository:
    """The host's own repository (a volunteer on Gentoo who chose ``repository = "/var/db/repos/gentoo"``):
    used as it is, and recorded by its ``metadata/timestamp.chk``."""
    path = Path(path)
    if not path.is_absolute():
        raise _err(f"repository = {os.fspath(path)!r}: the host's repository is an absolute path")
    if not (path / "profiles").is_dir():
        raise _err(f"the host's repository {path} has no profiles/ directory: not an ebuild repository "
                   "(set repository = \"snapshot\" to use Gentoo's verified snapshots)")
    timestamp = read_timestamp(path)
    if not timestamp:
        log.warning("the host's repository %s has no metadata/timestamp.chk: the run records no date", path)
    return Repository(path, "host", "", timestamp)


def open_repository(cfg, pin: dict | None) -> Repository | None:
    """The repository a job gets, by the slave's ``repository`` setting and the job's ``snapshot`` pin
    (the claim's ``{"date", "name", "url"}``): the pinned snapshot (``"snapshot"``), the host's
    (a path), or none (``""``, or a snapshot setting and a job the master pinned to none)."""
    if cfg.repository == "snapshot":
        if not pin:
            return None
        return SnapshotStore.for_config(cfg).get(check_date(pin.get("date", "")), [pin.get("url") or ""])
    if cfg.repository:
        return host_repository(cfg.repository)
    return None

