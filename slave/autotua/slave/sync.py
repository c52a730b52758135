"""The tree: a cached bzr branch of the master's ``/tree/``, pulled, and the plan's files verified.

The branch is kept under ``<cache>/tree`` and pulled before each job (only new revisions travel);
the job's pinned revision is then read straight from the repository. Of that revision, exactly
the files the plan uses are checked and written into the job directory, and nothing else:

* each jobuild and each template it inherits, with a detached signature by its maintainer's key,
  whose fingerprint must be the one the job names for that maintainer (the tree's own
  ``<user>/<user>.asc`` is only the carrier of the key);
* each jobuild's clearsigned Manifest, its ``files/`` (every one listed as AUX, with matching
  digests), and a DIST entry for every SRC_URI/PORTCONF_URI file that agrees with the plan;
* the content digest over all of it, which must equal the one the master validated.

So what runs is what the master validated and what the maintainer signed, and nothing is sourced
before that is known.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from autotua import faults
from autotua.atom import AtomError, JobuildId
from autotua.depgraph import content_digest
from autotua.manifest import DigestMismatch, Manifest, ManifestError, verify_data
from autotua.params import ParameterError, environment
from autotua.signature import SignatureError, Verifier
from autotua.slave import SlaveError
from autotua.slave.locks import locked
from autotua.tree import BzrTree, TreeError

log = logging.getLogger("autotua.slave.sync")


def _err(msg: str) -> SlaveError:
    return SlaveError(msg, "sync")


@dataclass
class Distfile:
    """One SRC_URI or PORTCONF_URI file, with the digests its signed Manifest gives."""

    name: str
    url: str
    size: int
    hashes: dict[str, str]
    portconf: bool = False


@dataclass
class Prepared:
    """One plan entry after verification: where its files are and what it needs."""

    index: int
    jid: JobuildId
    path: str
    digest: str
    distfiles: list[Distfile] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)  # PARAM_<NAME> in its phases

    @property
    def src_uri(self) -> list[Distfile]:
        return [d for d in self.distfiles if not d.portconf]

    @property
    def portconf(self) -> list[Distfile]:
        return [d for d in self.distfiles if d.portconf]


class TreeCache:
    """The cached branch under ``<cache>/tree``; one writer at a time (a flock)."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.path = Path(cache_dir) / "tree"

    def update(self, url: str, revision: str) -> BzrTree:
        """Pull ``url`` into the cache until it holds ``revision``; returns the tree at that revision."""
        import breezy.bzr  # noqa: F401  (registers the formats)
        from breezy import errors as bzr_errors
        from breezy.branch import Branch

        t = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(f"{self.path}.lock"):
            try:
                remote = Branch.open(url)
                fresh = not (self.path / ".bzr").is_dir()
                if fresh:
                    remote.controldir.sprout(str(self.path), create_tree_if_local=False)
                local = Branch.open(str(self.path))
                with local.lock_write():
                    faults.point("sync:pull")  # the branch's write lock is held
                    pulled = local.pull(remote, overwrite=True)
                    how = (f"branched from {url}" if fresh else
                           f"pulled from {url}, revno {pulled.old_revno} -> {pulled.new_revno}")
                    if not local.repository.has_revision(revision.encode()):
                        # pinned, but no longer on the master's mainline: fetch it by id
                        try:
                            local.repository.fetch(remote.repository, revision_id=revision.encode())
                        except bzr_errors.NoSuchRevision:
                            raise _err(f"the tree at {url} has no revision {revision!r} (unknown revision)") \
                                from None
            except bzr_errors.BzrError as e:
                raise _err(f"cannot pull the tree from {url}: {e}") from None
            try:
                tree = BzrTree(self.path, revision)
            except TreeError as e:
                raise _err(str(e)) from None
        log.info("tree at revision %s (%s) in %.2f s: %s", tree.revno, revision, time.monotonic() - t, how)
        return tree


class _Plan:
    """Verifies a job's plan against one tree revision; collects the files to write."""

    def __init__(self, tree: BzrTree, maintainers: dict[str, str]):
        self.tree = tree
        try:
            self.verifier = Verifier(maintainers)
        except ValueError as e:
            raise _err(f"the job's maintainer fingerprints: {e}") from None
        self.files: dict[str, bytes] = {}
        self._keys: dict[str, bytes | None] = {}

    def close(self) -> None:
        self.verifier.close()

    def read(self, path: str) -> bytes | None:
        return self.tree.read_bytes(path) if self.tree.is_file(path) else None

    def key(self, user: str) -> bytes | None:
        if user not in self._keys:
            self._keys[user] = self.read(self.tree.key_path(user))
        return self._keys[user]

    def signed(self, user: str, path: str) -> bytes:
        data = self.read(path)
        if data is None:
            raise _err(f"{path} is not in the tree at revision {self.tree.describe()}")
        try:
            self.verifier.verify_detached(user, self.key(user), data, self.read(path + ".asc"), path)
        except SignatureError as e:
            raise _err(str(e)) from None
        return data

    def entry(self, index: int, item: dict) -> Prepared:
        try:
            jid = JobuildId.parse(item["jobuild"])
        except (AtomError, KeyError, TypeError) as e:
            raise _err(f"plan entry {index}: not a jobuild ({e})") from None
        if item.get("path") != jid.path:
            raise _err(f"plan entry {index}: {jid} should be at {jid.path}, not {item.get('path')!r}")
        files = {jid.path: self.signed(jid.user, jid.path)}
        for name in item.get("inherited") or []:
            user, _, tname = name.partition("/")
            if not user or not tname:
                raise _err(f"plan entry {index}: {name!r} is not <user>/<template>")
            tpath = self.tree.template_path(user, tname)
            files[tpath] = self.signed(user, tpath)
        distfiles = self._manifest(jid, item, files)
        digest = content_digest(files)
        if digest != item.get("digest"):
            raise _err(f"{jid}: the tree at revision {self.tree.describe()} does not match the plan the master "
                       f"validated (content digest {digest[:16]}…, expected {str(item.get('digest'))[:16]}…)")
        self.files.update(files)
        values = item.get("parameters") or {}
        try:
            environment(values if isinstance(values, dict) else {"": ""})
        except ParameterError as e:
            raise _err(f"plan entry {index}: parameters: {e}") from None
        return Prepared(index, jid, jid.path, digest, distfiles, dict(values))

    def _manifest(self, jid: JobuildId, item: dict, files: dict[str, bytes]) -> list[Distfile]:
        mpath = self.tree.manifest_path(jid.user, jid.name)
        aux_prefix = self.tree.files_dir(jid.user, jid.name) + "/"
        aux_paths = self.tree.files_under(aux_prefix)
        wanted = [(d, False) for d in item.get("src_uri") or []] + [(d, True) for d in item.get("portconf_uri") or []]
        text = self.read(mpath)
        if text is None:
            if wanted or aux_paths:
                raise _err(f"{jid}: {mpath} is missing, but the jobuild has SRC_URI, PORTCONF_URI or files/")
            return []
        files[mpath] = text
        try:
            body = self.verifier.verify_clearsigned(jid.user, self.key(jid.user), text, mpath)
            manifest = Manifest.parse(body.decode("utf-8", errors="replace"), mpath)
        except (SignatureError, ManifestError) as e:
            raise _err(str(e)) from None
        aux = self.tree.read_many(aux_paths)
        for path, data in aux.items():
            entry = manifest.get("AUX", path[len(aux_prefix):])
            if entry is None:
                raise _err(f"{jid}: files/{path[len(aux_prefix):]} is not in {mpath}")
            try:
                verify_data(data, entry)
            except DigestMismatch as e:
                raise _err(f"{jid}: files/{e}") from None
        for rel in manifest.names("AUX"):
            if aux_prefix + rel not in aux:
                raise _err(f"{jid}: {mpath} lists AUX {rel}, but files/{rel} is not in the tree")
        files.update(aux)
        out = []
        for spec, portconf in wanted:
            name = spec.get("name", "")
            entry = manifest.get("DIST", name)
            if entry is None:
                raise _err(f"{jid}: {name!r} is not in {mpath}")
            if (entry.size, entry.hashes.get("BLAKE2B"), entry.hashes.get("SHA512")) != (
                    spec.get("size"), spec.get("blake2b"), spec.get("sha512")):
                raise _err(f"{jid}: the plan's size or digests for {name} differ from {mpath}")
            out.append(Distfile(name, spec.get("url", ""), entry.size,
                                {"BLAKE2B": entry.hashes["BLAKE2B"], "SHA512": entry.hashes["SHA512"]}, portconf))
        return out


def prepare(tree: BzrTree, job: dict, dest: str | os.PathLike) -> list[Prepared]:
    """Verify every plan entry of ``job`` against ``tree`` and write exactly those files into ``dest``."""
    plan = _Plan(tree, job.get("maintainers") or {})
    try:
        prepared = [plan.entry(i, item) for i, item in enumerate(job.get("plan") or [])]
    finally:
        plan.close()
    if not prepared:
        raise _err("the job's plan is empty")
    for i, p in enumerate(prepared):
        if p.index != (job["plan"][i].get("index", i)):
            raise _err(f"plan entry {i} has index {job['plan'][i].get('index')}")
    write_files(dest, plan.files)
    return prepared


def write_files(dest: str | os.PathLike, files: dict[str, bytes]) -> None:
    """The plan's files (tree path -> content) below ``dest``, readable by the job, as the job's tree."""
    dest = Path(dest)
    for path, data in sorted(files.items()):
        full = dest / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        full.chmod(0o644)
