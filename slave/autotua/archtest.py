"""Arch testing as Gentoo's arch testers do it: a bug's package list, USE combinations, reverse dependencies.

* :func:`parse_package_list` reads the package list of a keywording or stabilisation bug exactly as
  NATTkA does (``nattka/package.py``, ``match_package_list``; NATTkA itself needs pkgcore, which does
  not import here): one package spec per line, ``=cat/pkg-ver`` or the bare ``cat/pkg-ver``, then
  keywords (``~`` ignored); ``^`` copies the line above's, ``*`` takes the other versions' keywords,
  ``-`` skips the line, no keywords means the arches the tester named (NATTkA's CC'd arch teams); a
  stabilisation takes only ``=`` specs of one version, a keywording the best match of any spec.
  Every fault of every line is reported, not only the first.
* :func:`use_combinations` follows tatt (``tatt/usecombis.py``): the package's IUSE without tatt's
  ignored prefixes; every combination when there are at most N, else N random ones; each must
  satisfy REQUIRED_USE (portage's ``check_required_use``, every flag not named off); after 10,000
  failed draws the USE_EXPAND flags are left to the profile, after 10,000 more it stops. Beside
  them, as the issue asks, all-off and all-on when they are valid, and (as tatt's first run) the
  profile's defaults. The draws come from a seed recorded on the group, so a group is made again
  exactly.
* :func:`reverse_dependencies` lists the packages whose DEPEND/RDEPEND/BDEPEND/PDEPEND/IDEPEND match
  the version (portage's ``use_reduce`` and ``match_from_list`` over the md5-cache), keyworded on
  the arch, and draws up to M of them, each with the USE flags that make it pull the version in (as
  tatt's tinderbox lists give them).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from autotua import AutotuaError
from autotua.ebuildrepo import EbuildRepository
from autotua.params import ParameterError, check_atom

#: tatt's defaults (``ignoreprefix`` in tatt/dot-tatt-spec): flags an arch tester does not vary
IGNORE_PREFIXES = ("elibc_", "video_cards_", "linguas_", "python_targets_", "python_single_target_",
                   "kdeenablefinal", "test", "debug")
COMBINATIONS = 12  # tatt's usecombis
RDEPS = 10  # tatt's rdeps
MAX_DRAWS = 10_000  # tatt gives up on USE_EXPAND, then on everything, after this many invalid draws
MAX_LINES = 200
COMMENT_RE = re.compile(r"(^|\s)#.*$")  # NATTkA's


class PackageListError(AutotuaError):
    """A package list with faults; ``errors`` holds one sentence per fault, each naming its line."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Listed:
    """One line of a package list: the spec as written, the version it names, and its arches."""

    line: int
    spec: str
    cpv: str
    arches: tuple[str, ...]

    @property
    def atom(self) -> str:
        return "=" + self.cpv


def suggested_keywords(repo: EbuildRepository, cpv: str, stable: bool) -> list[str]:
    """NATTkA's ``*``: the keywords of the package's other versions (for a stabilisation, the stable
    ones this version has as ``~arch``), without prefix keywords."""
    from portage.versions import cpv_getkey

    others = [k for c in repo.cpvs(cpv_getkey(cpv)) for k in repo.keywords(c)]
    disallow = ("-", "~") if stable else ("-",)
    found = {k.lstrip("~") for k in others if not k.startswith(disallow)}
    mine = repo.keywords(cpv)
    if stable:
        found &= {k[1:] for k in mine if k.startswith("~")}
    else:
        found -= {k.lstrip("~-") for k in mine}
    return sorted(k for k in found if "-" not in k)


def parse_package_list(text: str, repo: EbuildRepository, *, stable: bool = True,
                       arches: tuple[str, ...] = ()) -> list[Listed]:
    """The packages of a bug's package list (see the module's docstring); PackageListError lists every
    fault. ``arches``: what a line without keywords gets, and what every line is limited to (NATTkA's
    arch teams in CC)."""
    if not isinstance(text, str):
        raise PackageListError(["the package list is text"])
    errors: list[str] = []
    out: list[Listed] = []
    known = set(repo.arches)
    cc = [a for a in arches if a]
    for a in cc:
        if a not in known:
            errors.append(f"arch {a!r} is not in {repo.describe()}'s profiles/arch.list")
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise PackageListError([f"{len(lines)} lines; a package list may have {MAX_LINES} at most"])
    prev: list[str] | None = None
    for n, line in enumerate(lines, 1):
        if "\0" in line:
            errors.append(f"line {n}: holds a NUL character")
            continue
        words = COMMENT_RE.sub("", line).split()
        if not words:
            continue
        spec = words[0]
        dep, why = None, ""
        for prefix in ("=", ""):
            try:
                dep = check_atom(prefix + spec, f"line {n}")
                break
            except ParameterError as e:
                why = str(e)
        if dep is None:
            errors.append(why)
            continue
        if stable and (dep.operator != "=" or dep.slot):
            errors.append(f"line {n}: {spec[:80]}: a stabilisation names one version (=cat/pkg-ver), "
                          "with no other operator or slot")
            continue
        matched = repo.match(dep)
        if not matched:
            errors.append(f"line {n}: {spec[:80]} matches no package in {repo.describe()}")
            continue
        cpv = repo.best(matched)
        keywords = [w.strip().lstrip("~") for w in words[1:]]
        if "-" in keywords:
            continue
        if "*" in keywords:
            keywords = suggested_keywords(repo, cpv, stable) + [k for k in keywords if k != "*"]
        if "^" in keywords:
            if prev is None:
                errors.append(f"line {n}: '^' (the arches of the line above) on the first line")
                continue
            keywords = prev + [k for k in keywords if k != "^"]
        unknown = [k for k in keywords if k not in known]
        if unknown:
            errors.append(f"line {n}: {' '.join(unknown)[:80]}: not an arch of {repo.describe()} "
                          f"({' '.join(sorted(known))})")
            continue
        keywords = list(dict.fromkeys(keywords))
        if not keywords:
            keywords = list(cc)
        elif cc:
            keywords = [k for k in keywords if k in cc]
            if not keywords:
                continue  # not for the arches this tester acts for
        if not keywords:
            errors.append(f"line {n}: {spec[:80]} names no arch, and none were given for such lines")
            continue
        prev = keywords
        out.append(Listed(n, spec, cpv, tuple(keywords)))
    if not out and not errors:
        errors.append("the package list is empty" if not cc else "no package of the list is for the arches given")
    if errors:
        raise PackageListError(errors)
    return out


# -- USE combinations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Combination:
    """A USE setting to build a package with: ``kind`` is ``default`` (the profile's, as tatt's first
    run), ``all-off``, ``all-on`` or ``sample``; ``use`` the use-flags value (empty for default)."""

    kind: str
    use: str

    @property
    def label(self) -> str:
        return {"default": "USE defaults", "all-off": "all USE off", "all-on": "all USE on"}.get(
            self.kind, f"USE='{self.use}'")


def _rng(seed: int, *what: str) -> random.Random:
    """A generator for one package, from the group's seed (a str seed hashes the same on every run)."""
    return random.Random(":".join((str(seed), *what)))


def _use(flags: list[str], mask: int) -> str:
    state = {f: bool(mask >> i & 1) for i, f in enumerate(flags)}
    return " ".join(("" if on else "-") + f for f, on in sorted(state.items()))


def varied_flags(repo: EbuildRepository, cpv: str, ignore: tuple[str, ...] = IGNORE_PREFIXES) -> list[str]:
    """The flags tatt varies: IUSE without the ignored prefixes, sorted."""
    return sorted(f for f in repo.iuse(cpv) if not any(f.startswith(p) for p in ignore))


def use_combinations(repo: EbuildRepository, cpv: str, n: int = COMBINATIONS, seed: int = 0, *,
                     ignore: tuple[str, ...] = IGNORE_PREFIXES) -> list[Combination]:
    """The USE settings to build ``cpv`` with (see the module's docstring), in a stable order:
    defaults, all-off, all-on, then the samples by their bits."""
    flags = varied_flags(repo, cpv, ignore)

    def valid(fl: list[str], mask: int) -> bool:
        return repo.check_required_use(cpv, [f for i, f in enumerate(fl) if mask >> i & 1])

    out = [Combination("default", "")]
    if not flags:
        return out
    full = (1 << len(flags)) - 1
    for kind, mask in (("all-off", 0), ("all-on", full)):
        if valid(flags, mask):
            out.append(Combination(kind, _use(flags, mask)))
    if n <= 0:
        return out
    found: list[tuple[int, str]] = []
    if (1 << len(flags)) <= n:  # few enough to try them all, as tatt does
        found = [(m, _use(flags, m)) for m in range(full + 1) if valid(flags, m)]
    else:
        # all-off and all-on are there already: the N draws are other combinations
        rng, drawn, failed, fl = _rng(seed, cpv, "use"), {0, full}, 0, flags
        while len(found) < n and len(drawn) < (1 << len(fl)):
            if failed >= MAX_DRAWS:
                if any("_" in f for f in fl) and fl is flags:
                    fl = [f for f in flags if "_" not in f]  # leave USE_EXPAND to the profile, as tatt
                    drawn, failed = {0, (1 << len(fl)) - 1}, 0
                    continue
                break
            mask = rng.randrange(1 << len(fl))
            if mask in drawn:
                continue
            drawn.add(mask)
            if not valid(fl, mask):
                failed += 1
                continue
            found.append((mask, _use(fl, mask)))
        found.sort()
    have = {c.use for c in out}
    out += [Combination("sample", use) for _, use in found if use not in have]
    return out


# -- reverse dependencies ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReverseDependency:
    cpv: str  # the version to build
    use: str  # the USE flags it needs to pull the package in ("" none)
    variables: tuple[str, ...] = field(default=())  # DEPEND, RDEPEND, ...


def version_for(repo: EbuildRepository, cp_versions: list[str], arch: str) -> str | None:
    """The newest version stable on ``arch``, else the newest keyworded ``~arch``; None when neither."""
    from portage.versions import cpv_sort_key

    ordered = sorted(cp_versions, key=cpv_sort_key())
    for want in (arch, "~" + arch):
        for cpv in reversed(ordered):
            if want in repo.keywords(cpv):
                return cpv
    return None


def reverse_dependencies(repo: EbuildRepository, cpv: str, arch: str, m: int = RDEPS, seed: int = 0, *,
                         exclude: tuple[str, ...] = ()) -> list[ReverseDependency]:
    """Up to ``m`` reverse dependencies of ``cpv`` to build on ``arch``: drawn from every package
    with a version matching a dependency on it (``exclude``: packages already being tested, e.g. the
    bug's own), each at :func:`version_for`, in a stable order."""
    from portage.versions import cpv_getkey

    found = repo.reverse_dependencies(cpv)
    by_package: dict[str, list[str]] = {}
    for rdep in found:
        by_package.setdefault(cpv_getkey(rdep), []).append(rdep)
    skip = {cpv_getkey(c) for c in exclude}
    packages = sorted(p for p in by_package if p not in skip)
    _rng(seed, cpv, "rdeps").shuffle(packages)
    out: list[ReverseDependency] = []
    for package in packages:
        if len(out) >= m:
            break
        chosen = version_for(repo, by_package[package], arch)
        if chosen is None:
            continue
        flags = repo.flags_pulling(chosen, cpv)
        if flags is None:
            continue
        out.append(ReverseDependency(chosen, " ".join(flags), tuple(found[chosen])))
    return sorted(out, key=lambda r: r.cpv)
