"""Validation: resolve a root atom at one revision with the core depgraph and the trusted keys.

One :class:`~autotua.metadata.MetadataReader` per process (its sandboxed daemon costs ~50 ms to
start), and one :class:`~autotua.cache.DigestCache` file in the data dir shared by every process,
so metadata and signature results survive restarts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from autotua.cache import DigestCache
from autotua.depgraph import Resolution, Resolver
from autotua.ebuildrepo import RepositoryError
from autotua.metadata import MetadataReader
from autotua.signature import Verifier

from . import branch
from .models import Maintainer, Revision

_lock = threading.Lock()
_shared: dict[str, tuple[DigestCache, MetadataReader]] = {}


def shared_reader() -> tuple[DigestCache, MetadataReader]:
    """The process's cache and metadata reader for the configured data dir."""
    path = str(settings.AUTOTUA_CACHE or Path(settings.AUTOTUA_DATA_DIR) / "cache.sqlite")
    with _lock:
        if path not in _shared:
            cache = DigestCache(path)
            _shared[path] = (cache, MetadataReader(cache))
        return _shared[path]


def close_shared() -> None:
    with _lock:
        for cache, reader in _shared.values():
            reader.close()
            cache.close()
        _shared.clear()


@dataclass
class Validation:
    revision: Revision
    resolution: Resolution
    #: tree user -> fingerprint: the keys the signatures were verified against
    keys: dict[str, str]


class PinnedRepository:
    """A job's snapshot, opened only when a value has to be checked against it (most jobs take none):
    what :func:`autotua.params.check_in_repository` asks, or RepositoryError saying why it cannot be."""

    def __init__(self, date: str):
        self.date = date
        self._repo = None
        self._error = ""

    def _get(self):
        from autotua_master.snapshots.repository import SnapshotUnavailable, repository_for

        if self._repo is None and not self._error:
            try:
                self._repo = repository_for(self.date)
            except SnapshotUnavailable as e:
                self._error = str(e)
        if self._error:
            raise RepositoryError(self._error)
        return self._repo

    def __getattr__(self, name):
        return getattr(self._get(), name)


def pinned_repository(snapshot: str):
    """The repository a job's values are checked against: None (say so in a warning) when this master
    reads no snapshot or the job has none."""
    from autotua_master.snapshots.repository import configured

    return PinnedRepository(snapshot) if snapshot and configured() else None


@contextlib.contextmanager
def validator(revision: str | int | None, snapshot: str = "") -> Iterator:
    """A function ``(root, arch, parameters) -> Validation`` at one revision and snapshot: one tree,
    one verifier and one resolver for many jobs (a group), each jobuild read and checked once."""
    tree = branch.open_tree(revision)
    cache, reader = shared_reader()
    repository = pinned_repository(snapshot)
    keys = Maintainer.objects.trusted()
    with Verifier(keys, cache) as verifier:
        resolver = Resolver(tree, verifier, reader)
        pinned = Revision.objects.pin(tree.revision_id, tree.revno)

        def one(root: str, arch: str | None, parameters: dict | None = None) -> Validation:
            return Validation(pinned, resolver.resolve(root, arch, parameters=parameters, repository=repository), keys)

        yield one


def validate(root: str, revision: str | int | None, arch: str | None, *, parameters: dict | None = None,
             snapshot: str = "") -> Validation:
    """Resolve ``root`` with ``parameters`` at ``revision`` (None: the tip), their values checked
    against ``snapshot``'s repository. Raises TreeError for an unknown revision."""
    with validator(revision, snapshot) as one:
        return one(root, arch, parameters)


def index_revision(revision: str | int | None = None) -> Revision:
    """Read every jobuild of a revision (warming the cache) and record what was found."""
    from django.utils import timezone

    tree = branch.open_tree(revision)
    cache, reader = shared_reader()
    found = []
    with Verifier(Maintainer.objects.trusted(), cache) as verifier:
        resolver = Resolver(tree, verifier, reader)
        for jid in tree.all_jobuilds():
            loaded, problems, warnings = resolver.load(jid)
            md = loaded.metadata
            found.append({
                "jobuild": str(jid),
                "path": jid.path,
                "digest": loaded.digest,
                "description": md.description if md else "",
                "arch": list(md.arch) if md else [],
                "stage3": md.stage3 if md else "",
                "sidepend": md.sidepend if md else "",
                "depend": md.depend if md else "",
                "errors": [p.message for p in problems],
                "warnings": [p.message for p in warnings],
            })
    rev = Revision.objects.pin(tree.revision_id, tree.revno)
    rev.jobuilds = found
    rev.indexed = timezone.now()
    rev.save(update_fields=["jobuilds", "indexed"])
    return rev
