"""The jobtage tree, read at one revision of the bzr branch or from a plain directory.

Layout (see docs/jobuild-format.md)::

    <user>/<user>.asc                     the maintainer's public key
    <user>/<name>/<name>-<ver>.jobuild    a jobuild, with <...>.jobuild.asc beside it
    <user>/<name>/Manifest                DIST and AUX lines, clearsigned
    <user>/<name>/files/...               files the jobuild may use ($FILESDIR)
    <user>/templates/<t>.jtemplate        a template, with <...>.jtemplate.asc beside it
    overlays/                             local experiments: never read here

A :class:`BzrTree` reads straight from the branch's repository (no working tree, any revision); a
:class:`DirTree` reads a maintainer's checkout. Both refuse symlinks, so nothing outside the tree is
ever read through them.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterable

from autotua import AutotuaError
from autotua.atom import _NAME_VERSION_RE, AtomError, JobuildId

IGNORED_TOP = frozenset({"overlays"})
_TEMPLATE_RE = re.compile(r"\A([A-Za-z0-9_][A-Za-z0-9_+-]*)\.jtemplate\Z")


class TreeError(AutotuaError):
    """The tree or revision cannot be opened."""


class TreeFileMissing(TreeError, FileNotFoundError):
    """A path that is not a regular file in the tree at this revision."""


def _ignored(path: str) -> bool:
    first = path.split("/", 1)[0]
    return first in IGNORED_TOP or first.startswith(".")


class Tree:
    """What every tree offers: files by path, and the jobuild index built on them."""

    #: a stable label of what is being read (a revision id, or the directory)
    revision: str
    revno: int | None = None

    # -- primitives each kind implements ------------------------------------------------------------
    def _paths(self) -> dict[str, str]:
        """Every path of the tree mapped to its kind: 'file', 'directory' or 'other'."""
        raise NotImplementedError

    def _read(self, path: str) -> bytes:
        raise NotImplementedError

    # -- the shared part ----------------------------------------------------------------------------
    @property
    def paths(self) -> dict[str, str]:
        if self._path_cache is None:
            self._path_cache = {p: k for p, k in self._paths().items() if p and not _ignored(p)}
        return self._path_cache

    _path_cache: dict[str, str] | None = None

    def is_file(self, path: str) -> bool:
        return self.paths.get(path) == "file"

    def read_bytes(self, path: str) -> bytes:
        return self.read_many([path])[path]

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Read several files at once (a bzr tree does this in one pass). What a tree object has read
        it keeps: a revision never changes, and validating many jobs against one tip reads the same
        files again and again."""
        paths = list(paths)
        missing = [p for p in paths if p not in self._contents]
        for p in missing:
            if not self.is_file(p):
                raise TreeFileMissing(f"{p}: no such file in the tree at {self.describe()}")
        if missing:
            self._contents.update(self._read_many(missing))
        return {p: self._contents[p] for p in paths}

    def _read_many(self, paths: list[str]) -> dict[str, bytes]:
        return {p: self._read(p) for p in paths}

    @property
    def _contents(self) -> dict[str, bytes]:
        if self._content_cache is None:
            self._content_cache = {}
        return self._content_cache

    _content_cache: dict[str, bytes] | None = None

    def files_under(self, prefix: str) -> list[str]:
        """Regular files below directory ``prefix``, sorted (a bisection of the sorted file list)."""
        if self._sorted_files is None:
            self._sorted_files = sorted(p for p, k in self.paths.items() if k == "file")
        prefix = prefix.rstrip("/") + "/"
        files = self._sorted_files
        out = []
        for i in range(bisect.bisect_left(files, prefix), len(files)):
            if not files[i].startswith(prefix):
                break
            out.append(files[i])
        return out

    _sorted_files: list[str] | None = None

    def describe(self) -> str:
        return f"revision {self.revno}" if self.revno is not None else self.revision

    def entry(self, path: str) -> tuple[str, str | None] | None:
        """(kind, content digest for a file) of any path, ignored ones included; None if absent."""
        kind = self._paths().get(path)
        if kind is None:
            return None
        return kind, hashlib.sha256(self._read(path)).hexdigest() if kind == "file" else None

    # -- the index ----------------------------------------------------------------------------------
    def users(self) -> list[str]:
        return sorted(p for p, k in self.paths.items() if k == "directory" and "/" not in p)

    def key_path(self, user: str) -> str:
        return f"{user}/{user}.asc"

    def template_path(self, user: str, tname: str) -> str:
        return f"{user}/templates/{tname}.jtemplate"

    def manifest_path(self, user: str, name: str) -> str:
        return f"{user}/{name}/Manifest"

    def files_dir(self, user: str, name: str) -> str:
        return f"{user}/{name}/files"

    def all_jobuilds(self) -> list[JobuildId]:
        """Every well-named jobuild of the tree, sorted."""
        if self._jobuild_cache is None:
            found = []
            for path, kind in self.paths.items():
                parts = path.split("/")
                if kind != "file" or len(parts) != 3 or not parts[2].endswith(".jobuild"):
                    continue
                user, name, fname = parts
                m = _NAME_VERSION_RE.match(fname[: -len(".jobuild")])
                if not m or m["name"] != name:
                    continue
                try:
                    found.append(JobuildId.parse(f"{user}/{fname[: -len('.jobuild')]}"))
                except AtomError:
                    continue
            self._jobuild_cache = sorted(found)
        return self._jobuild_cache

    _jobuild_cache: list[JobuildId] | None = None

    def jobuilds(self, user: str, name: str) -> list[JobuildId]:
        """The versions of ``user/name``, lowest first."""
        if self._by_key is None:
            self._by_key = {}
            for j in self.all_jobuilds():
                self._by_key.setdefault((j.user, j.name), []).append(j)
        return self._by_key.get((user, name), [])

    _by_key: dict[tuple[str, str], list[JobuildId]] | None = None

    def misnamed_jobuilds(self) -> list[str]:
        """``.jobuild`` files the index skipped because their path or name is malformed."""
        known = {j.path for j in self.all_jobuilds()}
        return sorted(
            p for p, k in self.paths.items() if k == "file" and p.endswith(".jobuild") and p not in known
        )

    def templates(self) -> dict[str, str]:
        """``user/tname`` -> path for every template."""
        out = {}
        for path, kind in self.paths.items():
            parts = path.split("/")
            if kind == "file" and len(parts) == 3 and parts[1] == "templates":
                m = _TEMPLATE_RE.match(parts[2])
                if m:
                    out[f"{parts[0]}/{m[1]}"] = path
        return dict(sorted(out.items()))


class DirTree(Tree):
    """A tree in a plain directory (a maintainer's checkout or an exported revision)."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise TreeError(f"{root}: not a directory")
        self.revision = self.root

    def _paths(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel + "/"
            if rel and _ignored(rel):
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in dirnames + filenames:
                mode = os.lstat(os.path.join(dirpath, name)).st_mode
                kind = "directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
                out[rel + name] = kind
            # never descend through a symlinked directory
            dirnames[:] = [d for d in dirnames if out[rel + d] == "directory"]
        return out

    def _read(self, path: str) -> bytes:
        full = os.path.join(self.root, path)
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            return f.read()


class BzrTree(Tree):
    """A tree at one revision of a bzr branch, read from its repository."""

    def __init__(self, branch_location: str | os.PathLike, revision: str | int | None = None, *,
                 label: str | None = None):
        """``label`` names the branch in error messages (default: its location; the master says "the
        tree", never a path of its own)."""
        from breezy import errors as bzr_errors

        branch = open_branch(branch_location)
        self.branch = branch
        self.revision_id, self.revno = resolve_revision(branch, revision, label=label)
        self.revision = self.revision_id
        try:
            self._tree = branch.repository.revision_tree(self.revision_id.encode())
        except bzr_errors.NoSuchRevision:
            raise TreeError(f"{label or branch_location}: unknown revision {revision!r}") from None
        # One read lock for the tree's life: bzr re-reads its pack list on every lock, and a revision
        # never changes, so locking per file would only cost time.
        self._tree.lock_read()
        self._locked = True

    @classmethod
    def of(cls, branch, revision_id: str | bytes) -> BzrTree:
        """The tree at ``revision_id`` of an open breezy branch, on the mainline or not (the master's push
        checks read a pushed revision before the tip moves to it; ``null:`` is the empty tree)."""
        self = cls.__new__(cls)
        self.branch = branch
        revid = revision_id.encode() if isinstance(revision_id, str) else revision_id
        self.revision_id = self.revision = revid.decode()
        self.revno = None
        self._tree = branch.repository.revision_tree(revid)
        self._tree.lock_read()
        self._locked = True
        return self

    _locked = False

    def close(self) -> None:
        """Release this tree's read lock (once: the repository may be locked by others, a push too)."""
        if self._locked:
            self._locked = False
            self._tree.unlock()

    def __enter__(self) -> BzrTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _paths(self) -> dict[str, str]:
        return {path: entry.kind if entry.kind in ("file", "directory") else "other"
                for path, entry in self._tree.iter_entries_by_dir()}

    def _read(self, path: str) -> bytes:
        return self._tree.get_file_text(path)

    def _read_many(self, paths: list[str]) -> dict[str, bytes]:
        return {path: b"".join(chunks) for path, chunks in self._tree.iter_files_bytes((p, p) for p in paths)}

    def entry(self, path: str) -> tuple[str, str | None] | None:
        if not self._tree.has_filename(path):
            return None
        kind = self._tree.kind(path)
        return kind, self._tree.get_file_sha1(path) if kind == "file" else None

    def export(self, dest: str | os.PathLike) -> None:
        """Write this revision's files into ``dest`` (an empty or new directory)."""
        from breezy.export import export

        export(self._tree, str(dest), format="dir")


def changed_paths(old: Tree, new: Tree) -> set[str]:
    """Every path added, removed or changed (kind or content) from ``old`` to ``new``, ignored ones
    (``overlays/``, dot-files) included: what a change touches, for the master's push checks."""
    if isinstance(old, BzrTree) and isinstance(new, BzrTree):
        out = set()
        for change in new._tree.iter_changes(old._tree):
            out.update(p for p in change.path if p)
        return out
    a, b = old._paths(), new._paths()
    return {p for p in a.keys() | b.keys() if p and old.entry(p) != new.entry(p)}


def open_branch(location: str | os.PathLike):
    """Open a bzr branch by path or URL, with a clear error when there is none."""
    import breezy.bzr  # noqa: F401  (registers the bzr formats)
    from breezy import errors as bzr_errors
    from breezy.branch import Branch
    from breezy.transport import NoSuchFile  # breezy 3.3: no longer in breezy.errors

    try:
        return Branch.open(str(location))
    except (bzr_errors.NotBranchError, NoSuchFile) as e:
        raise TreeError(f"{location}: not a bzr branch ({e})") from None


def resolve_revision(branch, revision: str | int | None, *, label: str | None = None) -> tuple[str, int | None]:
    """Turn a revno, a revision id or None (the tip) into ``(revision_id, revno)``; ``label`` names the
    branch in error messages (default: its URL)."""
    from breezy import errors as bzr_errors

    where = label or branch.base
    with branch.lock_read():
        if revision is None or revision == "" or revision == "-1":
            revno, revid = branch.last_revision_info()
            if revno == 0:
                raise TreeError(f"{where}: the branch has no revisions yet")
            return revid.decode(), revno
        if isinstance(revision, int) or (isinstance(revision, str) and revision.isdigit()):
            if int(revision) < 1:
                raise TreeError(f"{where}: no revision number {revision} (revision numbers start at 1)")
            try:
                revid = branch.get_rev_id(int(revision))
            except (bzr_errors.NoSuchRevision, bzr_errors.RevnoOutOfBounds):
                raise TreeError(f"{where}: no revision number {revision}") from None
            return revid.decode(), int(revision)
        revid = revision.encode() if isinstance(revision, str) else revision
        if not branch.repository.has_revision(revid):
            raise TreeError(f"{where}: unknown revision {revision!r}")
        try:
            revno = branch.revision_id_to_revno(revid)
        except bzr_errors.NoSuchRevision:
            revno = None  # in the repository but not on the mainline
        return revid.decode(), revno


def open_tree(location: str | os.PathLike, revision: str | int | None = None) -> Tree:
    """What a maintainer means by ``--tree``: a :class:`BzrTree` for a branch (a URL, or a directory
    without a working tree) or for a ``revision`` of one; a :class:`DirTree` for a plain directory and
    for a checkout without a revision, whose working files are what is about to be committed.

    A revision given for a plain directory is an error, not silently ignored.
    """
    loc = str(location)
    is_bzr = "://" in loc or os.path.isdir(os.path.join(loc, ".bzr"))
    if is_bzr and revision in (None, "") and "://" not in loc and os.path.isdir(os.path.join(loc, ".bzr", "checkout")):
        return DirTree(loc)
    if is_bzr:
        return BzrTree(loc, revision)
    if revision not in (None, ""):
        raise TreeError(f"{loc}: a revision was asked for, but this is a plain directory, not a bzr branch")
    return DirTree(loc)

