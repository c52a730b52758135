"""What a maintainer does to a jobtage checkout: new jobuilds, Manifests, signatures and checks.

The ``autotua-jobuild`` command is a thin layer over these functions; the demo and the tests build
their signed sample tree with them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from autotua.atom import JobuildId
from autotua.cache import DigestCache
from autotua.depgraph import Problem, Resolver
from autotua.fetch import fetch
from autotua.manifest import Manifest
from autotua.metadata import MetadataReader
from autotua.signature import Signer, UnknownMaintainer, UntrustedKey, Verifier, normalise_fingerprint
from autotua.srcuri import Mirrors, parse_src_uri
from autotua.tree import DirTree, Tree

SKELETON = """\
# {cpv}: describe in one line what this jobuild tests.
DESCRIPTION=""

# Files fetched before the job's container is entered, verified against the Manifest:
#   SRC_URI="https://example.org/suite-${{PV}}.tar.gz -> suite-${{PV}}.tar.gz"
SRC_URI=""
# Tarballs of portage config (etc/portage/...) unpacked into the container.
PORTCONF_URI=""
# Jobuilds to run first in the same container, and jobuilds that must have passed somewhere.
DEPEND=""
SIDEPEND=""
# Keywords of the machines it may run on; empty means any.
ARCH=""
{inherit}
src_test() {{
	einfo "Testing ${{P}}"
}}
"""


def new_jobuild(tree_dir: str | os.PathLike, cpv: str, template: str | None = None) -> Path:
    """Write a skeleton jobuild; refuses to overwrite one."""
    jid = JobuildId.parse(cpv)
    path = Path(tree_dir) / jid.path
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    inherit = f"\ninherit {template}\n" if template else ""
    path.write_text(SKELETON.format(cpv=jid, inherit=inherit))
    return path


def write_manifest(jobuild_dir: str | os.PathLike, *, distdir: str | os.PathLike, mirrors: Mirrors,
                   reader: MetadataReader, log: Callable[[str], None] = print) -> Path:
    """Fetch every SRC_URI/PORTCONF_URI file of every version in ``jobuild_dir`` into ``distdir``
    (a file already there is used as it is, as ``ebuild manifest`` does) and write its Manifest
    (DIST lines) with AUX lines for ``files/``. Metadata is read in the sandbox; signatures are not
    needed for the maintainer's own work in progress."""
    jdir = Path(jobuild_dir).resolve()
    user, name = jdir.parent.name, jdir.name
    tree = DirTree(jdir.parent.parent)
    ids = tree.jobuilds(user, name)
    if not ids:
        raise FileNotFoundError(f"{jdir}: no {name}-<version>.jobuild here")
    templates = unsigned_templates(tree)
    dist: dict[str, str] = {}
    for jid in ids:
        md = reader.get(jid, tree.read_bytes(jid.path), templates)
        for var, text in (("SRC_URI", md.src_uri), ("PORTCONF_URI", md.portconf_uri)):
            for df in parse_src_uri(text, var):
                dest = os.path.join(distdir, df.name)
                if df.name not in dist and not os.path.exists(dest):
                    log(f">>> fetching {df.name}")
                    fetch(mirrors.resolve(df.url), dest)
                dist[df.name] = dest
    files_dir = jdir / "files"
    aux = {}
    if files_dir.is_dir():
        for p in sorted(files_dir.rglob("*")):
            if p.is_file() and not p.is_symlink():
                aux[p.relative_to(files_dir).as_posix()] = str(p)
    manifest = Manifest.build(dist, aux)
    out = jdir / "Manifest"
    out.write_text(manifest.to_text())
    return out


def unsigned_templates(tree: Tree):
    from autotua.metadata import Templates

    return Templates(sources={name: tree.read_bytes(path) for name, path in tree.templates().items()})


def sign_paths(paths: Iterable[str | os.PathLike], signer: Signer, *, log: Callable[[str], None] = print) -> int:
    """Sign jobuilds and templates (detached ``.asc``) and clearsign Manifests, in files or below
    directories (``overlays/`` and dot-directories skipped). Returns how many files were signed."""
    n = 0
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(root) if root.is_dir() else Path(f.name)
            if any(part == "overlays" or part.startswith(".") for part in rel.parts[:-1]):
                continue
            if f.suffix in (".jobuild", ".jtemplate"):
                Path(str(f) + ".asc").write_bytes(signer.detached(f.read_bytes()))
            elif f.name == "Manifest":
                data = f.read_bytes()
                if b"-----BEGIN PGP SIGNED MESSAGE-----" in data:
                    continue  # already signed; rewrite it with `manifest` to re-sign
                f.write_bytes(signer.clearsign(data))
            else:
                continue
            log(f">>> signed {f}")
            n += 1
    return n


def export_key(tree_dir: str | os.PathLike, user: str, signer: Signer, fingerprint: str) -> Path:
    """Write ``<user>/<user>.asc`` from the maintainer's keyring."""
    path = Path(tree_dir) / user / f"{user}.asc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signer.export_public(fingerprint))
    return path


def tree_fingerprints(tree: Tree) -> dict[str, str]:
    """Trust on first use, for local checks only: each maintainer's key as the tree has it."""
    from autotua.signature import Keyring

    out = {}
    for user in tree.users():
        path = tree.key_path(user)
        if tree.is_file(path):
            with Keyring() as ring:
                held = ring.import_key(tree.read_bytes(path))
            if len(held) == 1:
                out[user] = next(iter(held))
    return out


def load_trust(spec: Iterable[str]) -> dict[str, str]:
    """``user=FPR`` items or files of ``user FPR`` lines."""
    out = {}
    for item in spec:
        if "=" in item and not os.path.exists(item):
            pairs = [item.split("=", 1)]
        else:
            with open(item) as f:
                pairs = [line.split("#", 1)[0].split() for line in f]
        for pair in pairs:
            if not pair:
                continue
            if len(pair) != 2:
                raise ValueError(f"{item}: expected 'user FINGERPRINT', got {' '.join(pair)!r}")
            out[pair[0].strip()] = normalise_fingerprint(pair[1])
    return out


@dataclass
class CheckReport:
    jobuilds: int
    errors: list[Problem]
    warnings: list[Problem]

    def lines(self, where: str) -> list[str]:
        """The report as ``autotua-jobuild check`` prints it (the master's push refusals print it too)."""
        out = problem_lines(self.errors, self.warnings)
        state = "valid" if not self.errors else "INVALID"
        out.append(f">>> {where}: {self.jobuilds} jobuilds, {len(self.errors)} error(s), "
                   f"{len(self.warnings)} warning(s): {state}")
        return out


def problem_lines(errors: Iterable[Problem], warnings: Iterable[Problem]) -> list[str]:
    return [f" * WARNING [{w.kind}] {w.message}" for w in warnings] + \
           [f" * ERROR [{e.kind}] {e.message}" for e in errors]


def ownership_problems(changed: Iterable[str], user: str | None, *, staff: bool = False) -> list[Problem]:
    """What a change (the paths it adds, removes or modifies) does outside ``user``'s own directory.

    A maintainer may change only ``<user>/``; staff may change anything. One problem per top-level
    directory (or top-level file) touched, naming the first path there.
    """
    if staff:
        return []
    out: dict[str, Problem] = {}
    for path in sorted(changed):
        top = path.split("/", 1)[0]
        if top == user or top in out:
            continue
        where = f"{top}/" if "/" in path else path
        who = f"{user} may change only {user}/" if user else "only maintainers and staff may change the tree"
        out[top] = Problem("not-yours", path, f"{who}; this changes {where} ({path})")
    return list(out.values())


def check_tree(tree: Tree, trusted: dict[str, str], *, cache: DigestCache | None = None,
               reader: MetadataReader | None = None) -> CheckReport:
    """Every signature, Manifest and metadata in the tree, and every dependency of every jobuild."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    seen: set[Problem] = set()

    def add(into: list[Problem], problems: Iterable[Problem]) -> None:
        for p in problems:
            if p not in seen:
                seen.add(p)
                into.append(p)

    for path in tree.misnamed_jobuilds():
        add(errors, [Problem("bad-name", path, f"{path}: not <user>/<name>/<name>-<version>.jobuild")])
    own_reader = reader is None
    reader = reader or MetadataReader(cache)
    with Verifier(trusted, cache) as verifier:
        resolver = Resolver(tree, verifier, reader)
        for name, why in resolver.templates().errors.items():
            add(errors, [Problem("template-untrusted", name, why)])
        for user in tree.users():
            if user not in trusted:
                add(errors, [Problem(UnknownMaintainer.kind, user, f"no trusted fingerprint for maintainer {user!r}")])
            elif not tree.is_file(tree.key_path(user)):
                add(errors, [Problem(UntrustedKey.kind, user, f"the tree has no key {tree.key_path(user)}")])
        ids = tree.all_jobuilds()
        used: dict[str, set[str]] = {}
        for jid in ids:
            res = resolver.resolve(f"={jid}", checking=True)
            add(errors, res.errors)
            add(warnings, res.warnings)
            entry = res.plan[-1] if res.plan and res.plan[-1].jobuild == str(jid) else None
            names = used.setdefault(tree.manifest_path(jid.user, jid.name), set())
            if entry is not None:
                names.update(d.name for d in entry.src_uri + entry.portconf_uri)
        for mpath, manifest in sorted(resolver.manifests.items()):
            for name in manifest.names("DIST"):
                if name not in used.get(mpath, ()):
                    add(warnings, [Problem("manifest-unused", mpath, f"{mpath}: DIST {name} is used by no version")])
    if own_reader:
        reader.close()
    return CheckReport(len(ids), errors, warnings)

