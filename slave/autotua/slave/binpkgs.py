"""The binary package cache: one PKGDIR per what makes a binary package reusable, and per signers.

A job's ``/var/cache/binpkgs`` (portage's PKGDIR; ``FEATURES=buildpkg``, ``emerge --usepkg``,
:mod:`autotua.slave.makeconf`) is a directory of ``<cache>/binpkgs/`` bound read-write into it,
chosen by :func:`key`:

* what a binary package was built against: the arch, the stage3 flavour and its timestamp, the
  profile the stage3 points at, and the Gentoo repository (the snapshot date, or the host's
  repository's ``timestamp.chk``) — so a package built against other libraries is never offered;
* **the set of the job's signers** (every maintainer whose jobuild is in its plan, by key
  fingerprint): a job can write anything into its PKGDIR — it is root in its container and its
  jobuilds are code —, so a binary package it leaves there is trusted exactly as far as those
  signers are. Jobs whose plans are signed by the same set share a cache; a job of any other set
  (a subset included: Alice alone never gets what a job signed by Alice *and* Bob built) gets
  another. docs/security.md, "Binary packages", says it for the volunteer.

Portage itself then only installs a binary package whose USE flags and dependencies match the
job's (``--binpkg-respect-use=y --binpkg-changed-deps=y``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from autotua.signature import normalise_fingerprint

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def signers(maintainers: dict[str, str]) -> list[str]:
    """The job's signers: its maintainers' key fingerprints, normalised, sorted, once each."""
    out = set()
    for fpr in maintainers.values():
        try:
            out.add(normalise_fingerprint(fpr))
        except ValueError:
            out.add(str(fpr).upper())
    return sorted(out)


def stage3_profile(lower: str | os.PathLike) -> str:
    """The profile of a stage3 root: where ``etc/portage/make.profile`` points, below ``profiles/``."""
    try:
        target = os.readlink(os.path.join(lower, "etc/portage/make.profile"))
    except OSError:
        return ""
    return target.split("/profiles/", 1)[1] if "/profiles/" in target else target


def key(*, arch: str, flavour: str, stage3: str, profile: str, repository: str, signers: Iterable[str]) -> dict:
    """What a binary package cache is for (kept beside it as ``key.json``)."""
    return {"arch": arch, "flavour": flavour, "stage3": stage3, "profile": profile, "repository": repository,
            "signers": sorted(signers)}


def directory_name(k: dict) -> str:
    """``<arch>-<flavour>-<stage3>-<digest of the whole key>``: readable, and one per key."""
    digest = hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:16]
    return _SAFE.sub("_", f"{k['arch']}-{k['flavour']}-{k['stage3']}-{digest}")


class BinpkgCache:
    """``<cache>/binpkgs/<name>/{key.json,pkgdir/}``; ``pkgdir`` is what a job gets as its PKGDIR."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir) / "binpkgs"

    def get(self, k: dict, owner: tuple[int, int] | None = None) -> Path:
        """The PKGDIR for ``k``, made when new; ``owner``: the job root's host ids, where the slave
        cannot idmap the bind mount (the job's root then writes as those ids)."""
        base = self.dir / directory_name(k)
        pkgdir = base / "pkgdir"
        pkgdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # like the jobs' disks: what jobs wrote is no host user's business
        stamp = base / "key.json"
        if not stamp.exists():  # a temporary name of its own: slaves sharing a cache may both be here
            fd, tmp = tempfile.mkstemp(dir=base, prefix="key.json.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(k, indent=1, sort_keys=True) + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, stamp)
        if owner is not None and os.stat(pkgdir).st_uid != owner[0]:
            os.chown(pkgdir, *owner)
        return pkgdir
