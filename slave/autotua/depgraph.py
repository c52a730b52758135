"""Resolve a root atom at one tree revision into a job's plan, SIDEPENDs, warnings and errors.

The plan is the DEPEND closure in dependency order (each jobuild once, the root last); the SIDEPEND
requirements are atoms plus the jobuild and content digest each resolves to now. Resolution goes on
past every fault so that a maintainer sees **every** error at once; the output is deterministic.

Nothing is sourced before its signature verifies: a jobuild with a bad signature is reported and
its dependencies are not read; templates are offered to ``inherit`` only once verified.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from dataclasses import asdict, dataclass, field

from autotua.atom import AllOf, AnyOf, Atom, AtomError, JobuildId, Node, parse_depend
from autotua.manifest import DigestMismatch, Manifest, ManifestError, verify_data
from autotua.metadata import Metadata, MetadataError, MetadataReader, Templates
from autotua.params import bind, check_in_repository, identity
from autotua.signature import SignatureError, Verifier
from autotua.srcuri import SrcUriError, parse_src_uri
from autotua.tree import Tree


@dataclass(frozen=True)
class Problem:
    """One error or warning: a short ``kind``, the jobuild (or atom) it concerns, and a sentence."""

    kind: str
    jobuild: str
    message: str


@dataclass
class DistfileSpec:
    name: str
    url: str
    size: int
    blake2b: str
    sha512: str


@dataclass
class PlanEntry:
    jobuild: str
    path: str
    digest: str
    description: str
    arch: list[str]
    inherited: list[str]
    depend: str
    sidepend: str
    src_uri: list[DistfileSpec] = field(default_factory=list)
    portconf_uri: list[DistfileSpec] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)  # the values it runs with (defaults filled in)

    @property
    def id(self) -> JobuildId:
        return JobuildId.parse(self.jobuild)


@dataclass
class Sidepend:
    atom: str
    jobuild: str
    digest: str
    required_by: str
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """What must have passed: the content digest and, when it takes any, the parameter values."""
        return identity(self.digest, self.parameters)


@dataclass
class Resolution:
    root: str
    revision: str
    revno: int | None
    arch: str | None
    stage3: str | None = None
    plan: list[PlanEntry] = field(default_factory=list)
    sidepends: list[Sidepend] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        d = asdict(self)
        d["valid"] = self.valid
        return d


@dataclass
class _Loaded:
    """What we know of one jobuild after checking and reading it; ``metadata`` None on failure."""

    jid: JobuildId
    metadata: Metadata | None = None
    digest: str = ""
    entry: PlanEntry | None = None


def content_digest(files: dict[str, bytes]) -> str:
    """SHA-256 over ``path NUL sha256(content)`` lines, sorted: what a jobuild's behaviour depends on."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).hexdigest().encode() + b"\n")
    return h.hexdigest()


class Resolver:
    """Resolves atoms against one tree, with the maintainers' trusted fingerprints.

    One resolver may resolve several roots; what it learns about each jobuild (signature, metadata,
    Manifest) is kept, so the second root costs only what is new.
    """

    def __init__(self, tree: Tree, verifier: Verifier, reader: MetadataReader):
        self.tree = tree
        self.verifier = verifier
        self.reader = reader
        self._keys: dict[str, bytes | None] = {}
        self._loaded: dict[JobuildId, _Loaded] = {}
        self._load_problems: dict[JobuildId, tuple[list[Problem], list[Problem]]] = {}
        self._templates: Templates | None = None
        #: every Manifest that verified, by path (``check`` looks for DIST lines no version uses)
        self.manifests: dict[str, Manifest] = {}
        self._manifest_checks: dict[str, tuple[Manifest | None, dict[str, bytes], list[tuple[str, str]]]] = {}
        self._template_files: dict[str, bytes] = {}

    # -- helpers -----------------------------------------------------------------------------------
    def key(self, user: str) -> bytes | None:
        if user not in self._keys:
            path = self.tree.key_path(user)
            self._keys[user] = self.tree.read_bytes(path) if self.tree.is_file(path) else None
        return self._keys[user]

    def _read_optional(self, path: str) -> bytes | None:
        return self.tree.read_bytes(path) if self.tree.is_file(path) else None

    def templates(self) -> Templates:
        """Every template of the tree whose signature verifies; the rest with the reason why not."""
        if self._templates is None:
            t = Templates()
            for name, path in self.tree.templates().items():
                user = name.split("/", 1)[0]
                data = self.tree.read_bytes(path)
                try:
                    self.verifier.verify_detached(user, self.key(user), data, self._read_optional(path + ".asc"),
                                                  path)
                    t.sources[name] = data
                    self._template_files[path] = data
                except SignatureError as e:
                    t.errors[name] = str(e)
            self._templates = t
        return self._templates

    # -- loading one jobuild -----------------------------------------------------------------------
    def load(self, jid: JobuildId) -> tuple[_Loaded, list[Problem], list[Problem]]:
        """Check and read one jobuild once: (what we know, its errors, its warnings)."""
        if jid not in self._loaded:
            problems: list[Problem] = []
            warnings: list[Problem] = []
            self._loaded[jid] = self._load(jid, problems, warnings)
            self._load_problems[jid] = (problems, warnings)
        return (self._loaded[jid], *self._load_problems[jid])

    def _load(self, jid: JobuildId, problems: list[Problem], warnings: list[Problem]) -> _Loaded:
        loaded = _Loaded(jid)
        who = str(jid)

        def problem(kind: str, msg: str) -> None:
            problems.append(Problem(kind, who, msg))

        # one read for what this jobuild's checks need (one pass through a bzr repository)
        mpath = self.tree.manifest_path(jid.user, jid.name)
        wanted = [jid.path, jid.path + ".asc", mpath, self.tree.key_path(jid.user)]
        self.tree.read_many(p for p in wanted if self.tree.is_file(p))
        source = self.tree.read_bytes(jid.path)
        try:
            self.verifier.verify_detached(jid.user, self.key(jid.user), source,
                                          self._read_optional(jid.path + ".asc"), jid.path)
            signed = True
        except SignatureError as e:
            problem(e.kind, str(e))
            signed = False
        # The Manifest and files/ need no sourcing: check them even when the jobuild failed.
        manifest, manifest_files, manifest_problems = self._manifest(jid.user, jid.name)
        for kind, msg in manifest_problems:
            problem(kind, msg)
        if not signed:
            return loaded  # never sourced
        templates = self.templates()
        try:
            md = self.reader.get(jid, source, templates)
        except MetadataError as e:
            kind = e.kind if e.kind.startswith("template-") else "metadata"
            if kind == "template-unverified":
                kind = "template-untrusted"
            problem(kind, str(e))
            return loaded
        loaded.metadata = md

        files: dict[str, bytes] = {jid.path: source, **manifest_files}
        for name in md.inherited:
            files[self.tree.template_path(*name.split("/", 1))] = templates.sources[name]

        dist_entries: dict[str, list[DistfileSpec]] = {"SRC_URI": [], "PORTCONF_URI": []}
        for var, text in (("SRC_URI", md.src_uri), ("PORTCONF_URI", md.portconf_uri)):
            try:
                distfiles = parse_src_uri(text, var)
            except SrcUriError as e:
                problem("bad-src-uri", str(e))
                continue
            if distfiles and mpath not in manifest_files:
                problem("manifest", f"{mpath} is missing, but the jobuild has {var}")
            if manifest is None:
                continue
            for df in distfiles:
                entry = manifest.get("DIST", df.name)
                if entry is None:
                    problem("manifest-missing-entry", f"{var} file {df.name} is not in {mpath}")
                    continue
                dist_entries[var].append(DistfileSpec(df.name, df.url, entry.size, entry.hashes["BLAKE2B"],
                                                      entry.hashes["SHA512"]))

        loaded.digest = content_digest(files)
        loaded.entry = PlanEntry(
            jobuild=who, path=jid.path, digest=loaded.digest, description=md.description, arch=list(md.arch),
            inherited=list(md.inherited), depend=md.depend, sidepend=md.sidepend,
            src_uri=dist_entries["SRC_URI"], portconf_uri=dist_entries["PORTCONF_URI"],
        )
        return loaded

    def _manifest(self, user: str, name: str) -> tuple[Manifest | None, dict[str, bytes], list[tuple[str, str]]]:
        """A jobuild directory's verified Manifest (or None), the files it covers (the Manifest and
        files/, for the content digest) and its problems; checked once per directory."""
        mpath = self.tree.manifest_path(user, name)
        if mpath in self._manifest_checks:
            return self._manifest_checks[mpath]
        problems: list[tuple[str, str]] = []
        prefix = self.tree.files_dir(user, name) + "/"
        aux_data = self.tree.read_many(self.tree.files_under(prefix))
        files = dict(aux_data)
        manifest = None
        mtext = self._read_optional(mpath)
        if mtext is None:
            if aux_data:
                problems.append(("manifest", f"{mpath} is missing, but {prefix} holds files"))
        else:
            files[mpath] = mtext
            try:
                body = self.verifier.verify_clearsigned(user, self.key(user), mtext, mpath)
                manifest = Manifest.parse(body.decode("utf-8", errors="replace"), mpath)
            except SignatureError as e:
                problems.append((e.kind, str(e)))
            except ManifestError as e:
                problems.append(("manifest", str(e)))
        if manifest is not None:
            self.manifests[mpath] = manifest
            for path, data in aux_data.items():
                rel = path[len(prefix):]
                entry = manifest.get("AUX", rel)
                if entry is None:
                    problems.append(("manifest-missing-entry", f"files/{rel} is not in {mpath}"))
                    continue
                try:
                    verify_data(data, entry)
                except DigestMismatch as e:
                    problems.append(("manifest-mismatch", f"files/{e}"))
            for rel in manifest.names("AUX"):
                if prefix + rel not in aux_data:
                    problems.append(("manifest-mismatch", f"{mpath} lists AUX {rel}, but files/{rel} does not exist"))
        self._manifest_checks[mpath] = (manifest, files, problems)
        return self._manifest_checks[mpath]

    # -- resolving ---------------------------------------------------------------------------------
    def select(self, atom: Atom) -> tuple[JobuildId | None, str]:
        """The highest version matching ``atom``, or None and why not."""
        candidates = self.tree.jobuilds(atom.user, atom.name)
        if not candidates:
            return None, "missing"
        best = atom.best(candidates)
        if best is None:
            return None, "no-match"
        return best, ""

    def _why_not(self, atom: Atom, why: str, needed_by: str | None = None) -> str:
        """One sentence naming the atom once (and who needs it, for a dependency)."""
        if why == "missing":
            near = difflib.get_close_matches(atom.key, self._tree_keys(), n=1, cutoff=0.8)
            hint = f" (did you mean {near[0]}?)" if near else ""
            if needed_by:
                return f"{needed_by} needs {atom}, which is not in the tree{hint}"
            return f"there is no jobuild {atom.key} in the tree{hint}"
        have = " ".join(str(j.version) for j in self.tree.jobuilds(atom.user, atom.name))
        return f"{needed_by + ' needs ' if needed_by else ''}{atom}: no version matches (the tree has {have})"

    def _tree_keys(self) -> list[str]:
        if self._key_cache is None:
            self._key_cache = sorted({j.key for j in self.tree.all_jobuilds()})
        return self._key_cache

    _key_cache: list[str] | None = None

    def _satisfiable(self, node: Node) -> bool:
        if isinstance(node, Atom):
            return self.select(node)[0] is not None
        if isinstance(node, AnyOf):
            return any(self._satisfiable(m) for m in node.members)
        return all(self._satisfiable(m) for m in node.members)

    def _bind(self, loaded: _Loaded, values: dict[str, str], repository, partial: bool = False,
              ) -> tuple[dict[str, str], list[Problem], list[Problem]]:
        """A jobuild's parameter values, checked: (canonical values, errors, warnings)."""
        who = str(loaded.jid)
        declared = loaded.metadata.declared if loaded.metadata else ()
        if not declared and not values:
            return {}, [], []

        def match(pattern: str, value: str) -> bool:
            return self.reader.match(pattern, value)

        try:
            bound, messages = bind(declared, values, match=match, partial=partial)
        except MetadataError as e:
            return {}, [Problem("parameter", who, f"{who}: {e}")], []
        errors = [Problem("parameter", who, f"{who}: {m}") for m in messages]
        warnings = []
        repo_kinds = [p.name for p in declared if p.kind in ("atom", "atoms", "use-flags") and bound.get(p.name)]
        if repository is not None:
            errors += [Problem("parameter", who, f"{who}: {m}") for m in check_in_repository(declared, bound,
                                                                                             repository)]
        elif repo_kinds:
            warnings.append(Problem("parameter-unchecked", who, f"{who}: {', '.join(repo_kinds)} not checked against "
                                                                "a Gentoo repository (the job is pinned to no "
                                                                "snapshot)"))
        return bound, errors, warnings

    def resolve(self, root: str, arch: str | None = None, *, parameters: dict | None = None,
                repository=None, checking: bool = False) -> Resolution:
        """Resolve ``root`` (with ``parameters``, the root jobuild's values) at this tree; ``repository``
        (an :class:`autotua.ebuildrepo.EbuildRepository`, the job's pinned snapshot) checks atom and
        USE flag values. ``checking`` (a tree check, no job): the root's required values may be missing."""
        res = Resolution(root=root, revision=self.tree.revision, revno=self.tree.revno, arch=arch or None)
        try:
            root_atom = Atom.parse(root)
        except AtomError as e:
            res.errors.append(Problem("bad-atom", root, str(e)))
            return res
        if root_atom.params and parameters:
            res.errors.append(Problem("parameter", root, f"{root}: give the values in the atom's [...] or as "
                                                         "parameters, not both"))
            return res
        root_values = dict(parameters) if parameters else root_atom.values
        done: dict[JobuildId, _Loaded] = {}
        bound: dict[JobuildId, dict[str, str]] = {}
        plan: list[JobuildId] = []
        reported: set[Problem] = set()

        def report(p: Problem, warning: bool = False) -> None:
            if p not in reported:
                reported.add(p)
                (res.warnings if warning else res.errors).append(p)

        def pick(atom: Atom, needed_by: str) -> JobuildId | None:
            jid, why = self.select(atom)
            if jid is None:
                report(Problem(why, needed_by, self._why_not(atom, why, None if needed_by == root else needed_by)))
            return jid

        def choose(node: Node, needed_by: str, var: str) -> list[tuple[Atom, JobuildId]]:
            """The (atom, jobuild) pairs a dependency node stands for, with any-of resolved."""
            if isinstance(node, Atom):
                jid = pick(node, needed_by)
                return [(node, jid)] if jid else []
            if isinstance(node, AllOf):
                return [pair for m in node.members for pair in choose(m, needed_by, var)]
            for i, member in enumerate(node.members):
                if self._satisfiable(member):
                    if i:
                        skipped = " ".join(str(m) for m in node.members[:i])
                        report(Problem("any-of", needed_by, f"{var} {node}: took {member}, as {skipped} cannot "
                                                            "be satisfied"), warning=True)
                    return choose(member, needed_by, var)
            report(Problem("no-match", needed_by, f"{needed_by}: no member of {var} {node} can be satisfied"))
            return []

        def deps(loaded: _Loaded, var: str, text: str) -> list[tuple[Atom, JobuildId]]:
            try:
                nodes = parse_depend(text, variable=var)
            except AtomError as e:
                report(Problem("bad-atom", str(loaded.jid), f"{loaded.jid}: {e}"))
                return []
            return [pair for n in nodes for pair in choose(n, str(loaded.jid), var)]

        path: list[JobuildId] = []  # the DEPEND chain being walked, for cycles
        on_path: set[JobuildId] = set()

        def values_for(loaded: _Loaded, values: dict[str, str], partial: bool = False) -> dict[str, str]:
            mine, errors, warnings = self._bind(loaded, values, repository, partial)
            for p in errors:
                report(p)
            for w in warnings:
                report(w, warning=True)
            return mine

        def visit(jid: JobuildId, values: dict[str, str], needed_by: str) -> None:
            if jid in done or jid in on_path:
                loaded = self._loaded[jid]
                if jid in bound and values_for(loaded, values) != bound[jid]:
                    report(Problem("parameter", str(jid), f"{needed_by} needs {jid} with other parameter values "
                                                          "than the plan already runs it with (a plan runs each "
                                                          "jobuild once)"))
                if jid in done:
                    return
            if jid in on_path:
                # one cycle, one problem: written from its smallest jobuild, whichever root found it
                ring = path[path.index(jid):]
                first = ring.index(min(ring))
                ring = ring[first:] + ring[:first]
                cycle = " -> ".join(str(j) for j in [*ring, ring[0]])
                report(Problem("cycle", str(ring[0]), f"DEPEND cycle: {cycle}"))
                return
            loaded, problems, warnings = self.load(jid)
            for p in problems:
                report(p)
            for w in warnings:
                report(w, warning=True)
            md = loaded.metadata
            if md is not None:
                bound[jid] = values_for(loaded, values, checking and jid == root_jid)
                path.append(jid)
                on_path.add(jid)
                for atom, dep in deps(loaded, "DEPEND", md.depend):
                    visit(dep, atom.values, str(jid))
                path.pop()
                on_path.discard(jid)
            done[jid] = loaded
            plan.append(jid)

        root_jid = pick(root_atom, root)
        if root_jid is None:
            return res
        visit(root_jid, root_values, root)

        for jid in plan:
            loaded = done[jid]
            if loaded.entry is None:
                continue
            res.plan.append(dataclasses.replace(loaded.entry, parameters=bound.get(jid, {})))
            md = loaded.metadata
            if arch and md.arch and arch not in md.arch:
                keywords = " ".join(md.arch)
                report(Problem("arch", str(jid), f'{jid} has ARCH="{keywords}", which does not include {arch}'))
            for atom, side in deps(loaded, "SIDEPEND", md.sidepend):
                if side == jid:
                    report(Problem("cycle", str(jid), f"{jid} SIDEPENDs on itself"))
                    continue
                if side in done:
                    report(Problem("sidepend-in-plan", str(jid), f"{jid} SIDEPENDs on {side}, which this job runs "
                                                                  "anyway (it is also a DEPEND)"), warning=True)
                side_loaded, problems, _ = self.load(side)
                for p in problems:
                    report(p)
                if side_loaded.entry is not None:
                    res.sidepends.append(Sidepend(str(atom), str(side), side_loaded.digest, str(jid),
                                                  values_for(side_loaded, atom.values)))
        root_md = done[root_jid].metadata if root_jid in done else None
        if root_md is not None:
            res.stage3 = root_md.stage3
        if not res.plan and not res.errors:
            report(Problem("metadata", str(root_jid), f"{root_jid} could not be read"))
        return res


def resolve(tree: Tree, root: str, *, trusted: dict[str, str], arch: str | None = None,
            reader: MetadataReader | None = None, verifier: Verifier | None = None,
            parameters: dict | None = None, repository=None) -> Resolution:
    """One-shot convenience around :class:`Resolver`."""
    own_reader = reader is None
    reader = reader or MetadataReader()
    verifier = verifier or Verifier(trusted)
    try:
        return Resolver(tree, verifier, reader).resolve(root, arch, parameters=parameters, repository=repository)
    finally:
        if own_reader:
            reader.close()
        verifier.close()


