"""Stage3 tarballs from Gentoo's autobuilds, exactly as Gentoo publishes them, verified before use.

``releases/<arch>/autobuilds/latest-stage3-<arch>-<flavour>.txt`` (clearsigned) names
``<timestamp>/<file> <size>``; beside the tarball are its detached ``.asc`` and its clearsigned
``.DIGESTS`` (catalyst's ``# BLAKE2B HASH`` / ``# SHA512 HASH`` blocks). All of them must verify
against the release key file (Gentoo's ``/usr/share/openpgp-keys/gentoo-release.asc``, or the
configured one): the pointer, so a mirror cannot choose an old or foreign tarball; the digests,
so the download is checked while it is fetched (resumed with HTTP Range, shown on a terminal, and
deleted on a mismatch); the tarball's own signature, as the Handbook does. Only then is it kept
in the cache, next to a ``.verified`` stamp (the shared steps are :mod:`autotua.slave.verified`'s).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from autotua.signature import KeyFileVerifier
from autotua.slave import SlaveError
from autotua.slave.locks import locked
from autotua.slave.verified import SMALL_LIMIT, SignedSource, is_verified, write_stamp

log = logging.getLogger("autotua.slave.stage3")

_STAMP_RE = re.compile(r"\A\d{8}(T\d{6}Z)?\Z")
_FILE_RE = re.compile(r"\Astage3-[A-Za-z0-9_.+-]+\.tar\.(xz|bz2|gz|zst)\Z")
_HASH_LINE_RE = re.compile(r"\A([0-9a-f]+)\s+\*?(\S+)\Z")
__all__ = ["SMALL_LIMIT", "Latest", "Stage3Store", "parse_digests", "parse_latest"]


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "stage3")


@dataclass(frozen=True)
class Latest:
    path: str  # "<timestamp>/<file>"
    size: int

    @property
    def timestamp(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def parse_latest(body: str, label: str, arch: str | None = None, flavour: str | None = None) -> Latest:
    """The first ``<timestamp>/<file> <size>`` line of a verified ``latest-stage3-*.txt`` body.

    With ``arch`` and ``flavour``, the file must be that stage3 of that timestamp
    (``<ts>/stage3-<arch>-<flavour>-<ts>.tar.*``): a pointer is signed, but a mirror could still serve
    the signed pointer of another flavour or arch under this one's name.
    """
    for lineno, line in enumerate(body.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != 2 or not (words[1].isascii() and words[1].isdigit() and len(words[1]) <= 18):
            raise _err(f"{label}, line {lineno}: expected '<timestamp>/<file> <size>', got {line!r}")
        parts = words[0].split("/")
        if len(parts) != 2 or not _STAMP_RE.match(parts[0]) or not _FILE_RE.match(parts[1]):
            raise _err(f"{label}, line {lineno}: {words[0]!r} is not '<timestamp>/stage3-....tar.<xz|bz2|gz|zst>'")
        want = f"stage3-{arch}-{flavour}-{parts[0]}.tar."
        if arch and flavour and not parts[1].startswith(want):
            raise _err(f"{label}, line {lineno}: {words[0]!r} is not the {arch} {flavour} stage3 of {parts[0]} "
                       f"({want}*): a pointer for another stage3")
        return Latest(words[0], int(words[1]))
    raise _err(f"{label}: names no stage3")


def parse_digests(body: str, label: str) -> dict[str, dict[str, str]]:
    """catalyst's DIGESTS: ``# <HASH> HASH`` headers, each followed by ``<hex>  <file>`` lines."""
    out: dict[str, dict[str, str]] = {}
    current = None
    for lineno, raw in enumerate(body.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"\A#\s*(\w+)\s+HASH\s*\Z", line)
        if m:
            current = m[1].upper()
            continue
        if line.startswith("#"):
            continue
        hm = _HASH_LINE_RE.match(line)
        if current is None or not hm:
            raise _err(f"{label}, line {lineno}: expected '# <NAME> HASH' or '<hex>  <file>', got {line!r}")
        out.setdefault(hm[2], {})[current] = hm[1]
    return out


class Stage3Store:
    """Verified stage3 tarballs under ``<cache>/stage3/<arch>/<timestamp>/``."""

    def __init__(self, mirror: str, cache_dir: str | os.PathLike, release_key: str | os.PathLike,
                 session: requests.Session | None = None):
        self.mirror = mirror.rstrip("/")
        self.dir = Path(cache_dir) / "stage3"
        self.release_key = os.fspath(release_key)
        self.source = SignedSource(release_key, step="stage3", name="the Gentoo release key",
                                   config_key="release_key", session=session)
        self.session = self.source.session

    def base(self, arch: str) -> str:
        return f"{self.mirror}/releases/{arch}/autobuilds/"

    def latest(self, arch: str, flavour: str, verifier: KeyFileVerifier) -> Latest:
        name = f"latest-stage3-{arch}-{flavour}.txt"
        body = self.source.clearsigned(verifier, self.source.small(self.base(arch) + name), name)
        return parse_latest(body, name, arch, flavour)

    def fetch(self, arch: str, flavour: str) -> Path:
        """The newest stage3 for ``arch``/``flavour``: fetched and verified, or from the cache."""
        with self.source.verifier() as verifier:
            latest = self.latest(arch, flavour, verifier)
            dest_dir = self.dir / arch / latest.timestamp
            dest = dest_dir / latest.name
            dest_dir.mkdir(parents=True, exist_ok=True)
            with locked(dest_dir / ".lock"):
                if is_verified(dest, latest.size):
                    return dest
                self._fetch_verified(arch, latest, dest, verifier)
                write_stamp(dest, {"path": latest.path, "size": latest.size})
            return dest

    def _fetch_verified(self, arch: str, latest: Latest, dest: Path, verifier: KeyFileVerifier) -> None:
        url = self.base(arch) + latest.path
        digests_name = f"{latest.name}.DIGESTS"
        body = self.source.clearsigned(verifier, self.source.small(f"{url}.DIGESTS"), digests_name)
        hashes = parse_digests(body, digests_name).get(latest.name, {})
        missing = [h for h in ("BLAKE2B", "SHA512") if h not in hashes]
        if missing:
            raise _err(f"{digests_name} has no {' and no '.join(missing)} digest for {latest.name}")
        log.info("fetching stage3 %s (%d bytes)", latest.path, latest.size)
        self.source.fetch_verified([url], dest, verifier, signature_suffix=".asc", size=latest.size,
                                   hashes={h: hashes[h] for h in ("BLAKE2B", "SHA512")}, digests_label="DIGESTS")
        log.info("stage3 %s verified (DIGESTS and signature by the release key)", latest.name)

    def cached(self, arch: str, flavour: str) -> list[Path]:
        """Verified tarballs in the cache for ``arch``/``flavour``, newest first."""
        pattern = f"*/stage3-{arch}-{flavour}-[0-9]*.tar.*.verified"
        stamps = sorted((self.dir / arch).glob(pattern), reverse=True)
        return [Path(str(s)[: -len(".verified")]) for s in stamps if Path(str(s)[: -len(".verified")]).exists()]
