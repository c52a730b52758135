"""Gentoo Manifest2 files: ``DIST``/``AUX`` lines with sizes and BLAKE2B + SHA512 digests.

A jobuild directory's Manifest lists every SRC_URI and PORTCONF_URI file (``DIST <file> ...``) and
every file under ``files/`` (``AUX <path-below-files> ...``), exactly as Gentoo's thick Manifests
did. It is clearsigned by the maintainer; :mod:`autotua.signature` checks that signature and hands
the signed body here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from autotua import AutotuaError

KINDS = ("DIST", "AUX")
REQUIRED_HASHES = ("BLAKE2B", "SHA512")
_HASHERS = {"BLAKE2B": hashlib.blake2b, "SHA512": hashlib.sha512, "SHA256": hashlib.sha256}
_CHUNK = 1 << 20


class ManifestError(AutotuaError):
    """A malformed Manifest; the message carries the file and line number."""


class DigestMismatch(AutotuaError):
    """A file whose size or digest is not what its Manifest (or DIGESTS file) says."""


@dataclass(frozen=True)
class ManifestEntry:
    kind: str
    name: str
    size: int
    hashes: Mapping[str, str] = field(hash=False)

    def line(self) -> str:
        digests = " ".join(f"{h} {self.hashes[h]}" for h in REQUIRED_HASHES)
        return f"{self.kind} {self.name} {self.size} {digests}"


def _check_name(kind: str, name: str) -> str | None:
    """Why ``name`` is not acceptable for an entry of ``kind``, or None."""
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "a path with an empty, '.' or '..' component"
    if kind == "DIST" and len(parts) > 1:
        return "a distfile name with a '/'"
    return None


class Manifest:
    """The entries of one Manifest, keyed by (kind, name)."""

    def __init__(self, entries: Iterable[ManifestEntry] = ()):
        self.entries: dict[tuple[str, str], ManifestEntry] = {}
        for e in entries:
            self.entries[(e.kind, e.name)] = e

    @classmethod
    def parse(cls, text: str, source: str = "Manifest") -> Manifest:
        if "-----BEGIN PGP" in text:
            raise ManifestError(f"{source}: still clearsigned; verify its signature to get the body first")
        entries: list[ManifestEntry] = []
        seen: set[tuple[str, str]] = set()
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{source}, line {lineno}"
            words = line.split()
            if words[0] not in KINDS:
                raise ManifestError(f"{where}: unknown entry type {words[0]!r} (expected one of {', '.join(KINDS)})")
            if len(words) < 3 or len(words) % 2 == 0:
                raise ManifestError(f"{where}: expected '<TYPE> <file> <size> (<HASH> <hex>)...', got {line!r}")
            kind, name, size = words[:3]
            why = _check_name(kind, name)
            if why:
                raise ManifestError(f"{where}: {name!r} is {why}")
            if not size.isdigit():
                raise ManifestError(f"{where}: size {size!r} is not a number")
            hashes: dict[str, str] = {}
            for hname, hexval in zip(words[3::2], words[4::2], strict=True):
                if hname in hashes:
                    raise ManifestError(f"{where}: hash {hname} given twice")
                if not all(c in "0123456789abcdef" for c in hexval):
                    raise ManifestError(f"{where}: {hname} value is not lower-case hex")
                want = _HASHERS[hname]().digest_size * 2 if hname in _HASHERS else None
                if want and len(hexval) != want:
                    raise ManifestError(f"{where}: {hname} has {len(hexval)} hex digits, not {want}")
                hashes[hname] = hexval
            missing = [h for h in REQUIRED_HASHES if h not in hashes]
            if missing:
                raise ManifestError(f"{where}: {name} lacks the {' and '.join(missing)} digest")
            if (kind, name) in seen:
                raise ManifestError(f"{where}: {kind} {name} is listed twice")
            seen.add((kind, name))
            entries.append(ManifestEntry(kind, name, int(size), hashes))
        return cls(entries)

    def get(self, kind: str, name: str) -> ManifestEntry | None:
        return self.entries.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.entries if k == kind)

    def to_text(self) -> str:
        """Gentoo's order: by type, then name."""
        return "".join(e.line() + "\n" for _, e in sorted(self.entries.items()))

    @classmethod
    def build(cls, dist: Mapping[str, str | os.PathLike], aux: Mapping[str, str | os.PathLike]) -> Manifest:
        """A Manifest for the given files (distfile name -> path, path below files/ -> path)."""
        entries = []
        for kind, files in (("DIST", dist), ("AUX", aux)):
            for name, path in files.items():
                why = _check_name(kind, name)
                if why:
                    raise ManifestError(f"cannot list {name!r}: it is {why}")
                size, hashes = file_digests(path)
                entries.append(ManifestEntry(kind, name, size, hashes))
        return cls(entries)


def data_digests(data: bytes) -> tuple[int, dict[str, str]]:
    return len(data), {h: _HASHERS[h](data).hexdigest() for h in REQUIRED_HASHES}


def file_digests(path: str | os.PathLike, hashes: Iterable[str] = REQUIRED_HASHES) -> tuple[int, dict[str, str]]:
    """Size and digests of a file, read once in chunks."""
    hashers = {h: _HASHERS[h]() for h in hashes}
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            for h in hashers.values():
                h.update(chunk)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


def check_digests(label: str, size: int, hashes: Mapping[str, str], want_size: int | None,
                  want: Mapping[str, str]) -> None:
    """Raise :class:`DigestMismatch` unless size and every expected digest we can compute agree."""
    if want_size is not None and size != want_size:
        raise DigestMismatch(f"{label}: size is {size} bytes, expected {want_size}")
    for name, value in want.items():
        if name in hashes and hashes[name] != value:
            raise DigestMismatch(f"{label}: {name} digest mismatch (got {hashes[name][:16]}…, expected {value[:16]}…)")


def verify_file(path: str | os.PathLike, entry: ManifestEntry) -> None:
    """Check a file against its Manifest entry (size first: a short file is not hashed)."""
    label = f"{entry.name}"
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DigestMismatch(f"{label}: missing") from None
    if size != entry.size:
        raise DigestMismatch(f"{label}: size is {size} bytes, expected {entry.size}")
    known = [h for h in entry.hashes if h in _HASHERS]
    size, hashes = file_digests(path, known)
    check_digests(label, size, hashes, entry.size, {h: entry.hashes[h] for h in known})


def verify_data(data: bytes, entry: ManifestEntry) -> None:
    size, hashes = data_digests(data)
    check_digests(entry.name, size, hashes, entry.size, entry.hashes)
