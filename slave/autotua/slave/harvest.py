"""After a job: the distfiles portage fetched into the job's DISTDIR layer, into the shared cache
only when they are what the job's Gentoo repository says they are.

The job's ``/var/cache/distfiles`` is an overlay: the slave's verified cache read-only below, the
job's own ``dist-upper/`` (on its disk) above. Whatever portage — or a hostile jobuild — left in
that upper layer is read here, from the slave's side, before the container is torn down:

* only regular files directly in it (no links, directories, devices or overlay whiteouts, nothing
  below a subdirectory: a name is one path component, so nothing can land outside the cache);
* only names some ``DIST`` line of the repository's Manifests lists (``<repo>/<cat>/<pkg>/Manifest``
  of the pinned snapshot, whose signature the slave verified), and only when the size and every
  digest (BLAKE2B and SHA512) match every such line;
* copied into a temporary file of the cache while hashing, checked, then renamed into place under
  the distfile's lock, and stamped verified as :mod:`autotua.slave.distfiles` stamps its own downloads.

Everything else is dropped with the job's disk. The Manifests are read with the project's own
Manifest code (:mod:`autotua.manifest`), the same that checks every SRC_URI file: a distfile needs
its DIST line's size and digests, nothing of gemato's tree-wide Manifest verification (the
snapshot's signature already covers the whole tree), and one copy of the digest logic serves both.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autotua.cache import DigestCache
from autotua.manifest import _HASHERS, REQUIRED_HASHES, ManifestEntry, ManifestError
from autotua.manifest import Manifest as ManifestFile
from autotua.slave.distfiles import Distfiles
from autotua.slave.fsutil import DIR_FLAGS
from autotua.slave.locks import locked

log = logging.getLogger("autotua.slave.harvest")
_CHUNK = 1 << 20


@dataclass
class Harvest:
    """What the harvest did: names kept, and names dropped with why."""

    kept: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


def manifest_entries(repository: str | os.PathLike, names: Iterable[str]) -> dict[str, list[ManifestEntry]]:
    """Every DIST line of the repository's package Manifests for ``names``; a Manifest that does
    not parse is skipped (its distfiles are then not harvested)."""
    wanted, out = set(names), {}
    if not wanted:
        return out
    repo = Path(repository)
    for manifest in repo.glob("*/*/Manifest"):
        try:
            text = manifest.read_text(errors="replace")
        except OSError:
            continue
        lines = [ln for ln in text.splitlines() if ln.startswith("DIST ") and ln.split(None, 2)[1] in wanted]
        if not lines:
            continue
        try:
            parsed = ManifestFile.parse("\n".join(lines), str(manifest.relative_to(repo)))
        except ManifestError as e:
            log.warning("harvest: %s", e)
            continue
        for e in parsed.entries.values():
            out.setdefault(e.name, []).append(e)
    return out


def _copy_hashing(src_fd: int, dest_dir: Path, name: str) -> tuple[Path, int, dict[str, str]]:
    tmp = dest_dir / ".autotua" / "harvest" / f"{name}.{os.getpid()}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    hashers = {h: _HASHERS[h]() for h in _HASHERS}
    size = 0
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644),
                   "wb") as out:
        while chunk := os.read(src_fd, _CHUNK):
            size += len(chunk)
            for h in hashers.values():
                h.update(chunk)
            out.write(chunk)
    return tmp, size, {n: h.hexdigest() for n, h in hashers.items()}


def _matches(size: int, hashes: dict[str, str], entries: list[ManifestEntry]) -> str | None:
    """Why the file is not what every entry says, or None."""
    for e in entries:
        if size != e.size:
            return f"{size} bytes, the Manifest says {e.size}"
        for h in REQUIRED_HASHES:
            if hashes[h] != e.hashes[h]:
                return f"its {h} is not the Manifest's"
    return None


def harvest(upper: str | os.PathLike, distdir: str | os.PathLike, repository: str | os.PathLike | None) -> Harvest:
    """Move the verified new distfiles of a job's DISTDIR layer ``upper`` into ``distdir``."""
    done = Harvest()
    try:
        upper_fd = os.open(upper, DIR_FLAGS)
    except OSError as e:
        log.warning("harvest: cannot open the job's DISTDIR layer: %s", e.strerror)
        return done
    try:
        found = {}
        for entry in os.scandir(upper_fd):
            st = entry.stat(follow_symlinks=False)
            if entry.name.startswith(".") and stat.S_ISDIR(st.st_mode):
                continue  # portage's .locks and the like: nothing to harvest, not worth a word
            if not stat.S_ISREG(st.st_mode):
                done.dropped[entry.name] = "not a regular file"
            else:
                found[entry.name] = st
        entries = manifest_entries(repository, found) if repository and found else {}
        dest_dir = Path(distdir)
        stamps = DigestCache(dest_dir / ".autotua" / "verified.sqlite") if found else None
        try:
            for name in sorted(found):
                why = _harvest_one(upper_fd, name, entries.get(name), dest_dir, stamps)
                if why:
                    done.dropped[name] = why
                else:
                    done.kept.append(name)
        finally:
            if stamps:
                stamps.close()
    finally:
        os.close(upper_fd)
    return done


def _harvest_one(upper_fd: int, name: str, entries: list[ManifestEntry] | None, dest_dir: Path,
                 stamps: DigestCache) -> str | None:
    if not entries:
        return "no Manifest of the repository lists it"
    if name.startswith(".") or "/" in name:
        return "not a distfile name"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=upper_fd)
    except OSError as e:
        return f"cannot open it ({e.strerror})"
    tmp = None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size != entries[0].size:  # no need to read a file of the wrong size
            return f"{st.st_size} bytes, the Manifest says {entries[0].size}"
        with locked(dest_dir / ".autotua" / "locks" / f"{name}.lock"):
            tmp, size, hashes = _copy_hashing(fd, dest_dir, name)
            why = _matches(size, hashes, entries)
            if why:
                return why
            dest = dest_dir / name
            os.replace(tmp, dest)
            tmp = None
            stamps.put("verified", Distfiles._key(dest), {"size": size, **{h: hashes[h] for h in REQUIRED_HASHES}})
        return None
    finally:
        os.close(fd)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
