"""A Gentoo ebuild repository as its ``metadata/md5-cache`` describes it, read with portage's own code.

The master reads the pinned snapshot (unpacked by :class:`autotua.slave.snapshot.SnapshotStore`) to
check job parameters (an atom must match an ebuild; a USE flag must be in its IUSE) and to sample
what arch testing builds (:mod:`autotua.archtest`). Nothing is sourced: egencache wrote the cache
when the snapshot was made, and portage reads it (``portage.cache.flat_hash.md5_database``). Atoms,
versions, slots and dependency strings are portage's too (``portage.dep.Atom``, ``match_from_list``,
``use_reduce``, ``portage.versions.best``), so an atom means here what it means to emerge.

Entries are read when first asked for (a category's listing, then one file per version); a search for
reverse dependencies needs every entry's dependency strings, so those are read once per repository
and kept beside it in a JSON file (:meth:`EbuildRepository.dependency_texts`); a search then parses
only the entries whose strings name the package.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from autotua import AutotuaError

DEP_KEYS = ("DEPEND", "RDEPEND", "BDEPEND", "PDEPEND", "IDEPEND")
_READ_KEYS = ("EAPI", "SLOT", "KEYWORDS", "IUSE", "REQUIRED_USE", "PROPERTIES", "RESTRICT", *DEP_KEYS)
INDEX_VERSION = 2


class RepositoryError(AutotuaError):
    pass


class EbuildRepository:
    """One unpacked repository (read-only); thread-safe (entries are cached under a lock)."""

    def __init__(self, path: str | os.PathLike, *, label: str = "", index_dir: str | os.PathLike | None = None):
        from portage.cache.flat_hash import md5_database

        self.path = Path(path)
        self.label = label or os.fspath(self.path)
        cache = self.path / "metadata" / "md5-cache"
        if not cache.is_dir():
            raise RepositoryError(f"{self.label}: no metadata/md5-cache (a snapshot always has one)")
        self._db = md5_database(os.fspath(self.path), "metadata/md5-cache", list(_READ_KEYS), readonly=True)
        self._cache = cache
        self._entries: dict[str, dict] = {}
        self._listing: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._index: dict[str, list[list[str]]] | None = None
        self._index_dir = Path(index_dir) if index_dir else None

    def describe(self) -> str:
        return self.label

    # -- what there is -------------------------------------------------------------------------------
    @functools.cached_property
    def arches(self) -> tuple[str, ...]:
        """``profiles/arch.list``: the keywords an arch tester may name."""
        try:
            text = (self.path / "profiles" / "arch.list").read_text(errors="replace")
        except OSError:
            return ()
        return tuple(w for line in text.splitlines() for w in line.split("#", 1)[0].split()[:1])

    def _versions(self, category: str) -> list[str]:
        if category not in self._listing:
            d = self._cache / category
            names = sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() and "/" not in category \
                and not category.startswith(".") else []
            with self._lock:
                self._listing[category] = names
        return self._listing[category]

    def cpvs(self, cp: str) -> list[str]:
        """Every version of ``cat/pkg``, as ``cat/pkg-ver`` strings."""
        from portage.versions import catpkgsplit

        category, _, package = cp.partition("/")
        out = []
        for pf in self._versions(category):
            split = catpkgsplit(f"{category}/{pf}")
            if split and split[1] == package:
                out.append(f"{category}/{pf}")
        return out

    def all_cpvs(self) -> Iterable[str]:
        for cat in sorted(p.name for p in self._cache.iterdir() if p.is_dir()):
            for pf in self._versions(cat):
                yield f"{cat}/{pf}"

    def metadata(self, cpv: str) -> dict[str, str]:
        """The md5-cache entry of ``cpv`` (KeyError when there is none)."""
        hit = self._entries.get(cpv)
        if hit is None:
            raw = self._db[cpv]
            hit = {k: raw.get(k, "") for k in _READ_KEYS}
            with self._lock:
                self._entries[cpv] = hit
        return hit

    def pkg(self, cpv: str):
        """``cpv`` as portage's ``_pkg_str``, with its SLOT, so that slot dependencies match it."""
        from portage.versions import _pkg_str

        md = self.metadata(cpv)
        return _pkg_str(cpv, slot=md["SLOT"] or "0", eapi=md["EAPI"] or "0", repo="gentoo")

    def match(self, atom) -> list:
        """The versions ``atom`` (text or portage Atom) matches, lowest first."""
        from portage.dep import Atom, match_from_list
        from portage.versions import cpv_sort_key

        atom = atom if isinstance(atom, Atom) else Atom(atom, allow_wildcard=False, allow_repo=False)
        found = match_from_list(atom, [self.pkg(c) for c in self.cpvs(atom.cp)])
        return sorted(found, key=cpv_sort_key())

    def best(self, matched: list) -> str:
        """NATTkA's choice among matches (``select_best_version``): the newest with any keywords, else
        the newest that is not live (``PROPERTIES=live``), else the newest."""
        newest_first = [str(m) for m in reversed(matched)]
        for cpv in newest_first:
            if self.keywords(cpv):
                return cpv
        for cpv in newest_first:
            if "live" not in self.metadata(cpv)["PROPERTIES"].split():
                return cpv
        if not newest_first:
            raise RepositoryError("no version to choose from")
        return newest_first[0]

    def keywords(self, cpv: str) -> list[str]:
        return self.metadata(cpv)["KEYWORDS"].split()

    def iuse(self, cpv: str) -> set[str]:
        """IUSE without its ``+``/``-`` defaults."""
        return {f.lstrip("+-") for f in self.metadata(cpv)["IUSE"].split()}

    def iuse_defaults(self, cpv: str) -> dict[str, bool]:
        """Each IUSE flag and whether the ebuild turns it on by default (``+flag``)."""
        return {f.lstrip("+-"): f.startswith("+") for f in self.metadata(cpv)["IUSE"].split()}

    def required_use(self, cpv: str) -> str:
        return self.metadata(cpv)["REQUIRED_USE"]

    def check_required_use(self, cpv: str, enabled: Iterable[str]) -> bool:
        """Whether the flags ``enabled`` (all others off) satisfy the package's REQUIRED_USE."""
        from portage.dep import check_required_use

        md = self.metadata(cpv)
        if not md["REQUIRED_USE"]:
            return True
        iuse = self.iuse(cpv)
        return bool(check_required_use(md["REQUIRED_USE"], frozenset(enabled), iuse.__contains__,
                                       eapi=md["EAPI"] or None))

    # -- reverse dependencies ------------------------------------------------------------------------
    def dependency_texts(self) -> dict[str, list]:
        """``cpv -> [EAPI, {variable: dependency string}]`` for every entry with dependencies: what a
        search for reverse dependencies reads. Read once (every md5-cache entry, by portage's reader),
        then kept in ``index_dir``, whence another process loads it whole in a fraction of the time."""
        if self._index is not None:
            return self._index
        with self._lock:
            if self._index is not None:
                return self._index
            stored = self._index_file()
            if stored and stored.exists():
                try:
                    data = json.loads(stored.read_text())
                    if data.get("version") == INDEX_VERSION:
                        self._index = data["entries"]
                        return self._index
                except (OSError, ValueError):
                    pass
        entries: dict[str, list] = {}
        for cpv in self.all_cpvs():
            try:
                md = self.metadata(cpv)
            except KeyError:
                continue
            deps = {var: md[var] for var in DEP_KEYS if md[var]}
            if deps:
                entries[cpv] = [md["EAPI"], deps]
        with self._lock:
            self._index = entries
            if stored:
                stored.parent.mkdir(parents=True, exist_ok=True)
                tmp = stored.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps({"version": INDEX_VERSION, "entries": entries}))
                os.replace(tmp, stored)
        return entries

    def _index_file(self) -> Path | None:
        if self._index_dir is None:
            return None
        return self._index_dir / f"{self.path.name}.deps.json"

    def reverse_dependencies(self, cpv: str) -> dict[str, list[str]]:
        """Packages (each its versions, ``cat/pkg-ver``) with a dependency ``cpv`` satisfies, the
        package itself left out: ``rdep cpv -> [variables]``. Only entries whose dependency strings
        name the package at all are parsed (portage's ``use_reduce``, every conditional taken) and
        matched (``match_from_list``, slots included)."""
        from portage.dep import Atom, match_from_list, use_reduce
        from portage.exception import InvalidDependString
        from portage.versions import cpv_getkey

        target = [self.pkg(cpv)]
        cp = cpv_getkey(cpv)
        found: dict[str, list[str]] = {}
        for rdep, (eapi, deps) in self.dependency_texts().items():
            if not any(cp in text for text in deps.values()) or cpv_getkey(rdep) == cp:
                continue
            for var, text in deps.items():
                if cp not in text:
                    continue
                try:
                    atoms = use_reduce(text, matchall=True, flat=True, eapi=eapi or None, token_class=Atom)
                except InvalidDependString:
                    continue  # egencache wrote it; portage itself would refuse the ebuild
                if any(isinstance(a, Atom) and not a.blocker and a.cp == cp and match_from_list(a, target)
                       for a in atoms):
                    found.setdefault(rdep, []).append(var)
        return found

    def flags_pulling(self, rdep: str, cpv: str) -> list[str] | None:
        """The USE flags of ``rdep`` that must be on for one of its dependencies to pull in ``cpv``
        (``[]``: none, it is unconditional; None: no combination of its conditional flags does).
        Portage's ``use_reduce`` evaluates the dependency strings; the flags are found by starting from
        every conditional flag on and turning off each one that is not needed."""
        from portage.dep import Atom, match_from_list, use_reduce

        md = self.metadata(rdep)
        target = [self.pkg(cpv)]
        text = " ".join(md[v] for v in DEP_KEYS if md[v])
        eapi = md["EAPI"] or None

        def pulls(flags: list[str]) -> bool:
            atoms = use_reduce(text, uselist=flags, flat=True, eapi=eapi, token_class=Atom)
            return any(isinstance(a, Atom) and not a.blocker and match_from_list(a, target) for a in atoms)

        if pulls([]):
            return []
        conditional = sorted({w[:-1].lstrip("!") for w in text.split() if w.endswith("?")})
        flags = [f for f in conditional if f in self.iuse(rdep)]
        if not pulls(flags):
            return None
        for f in list(flags):
            rest = [g for g in flags if g != f]
            if pulls(rest):
                flags = rest
        return flags
