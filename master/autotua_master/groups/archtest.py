"""From a bug's package list to an arch-testing group of ``gentoo/arch-test`` jobs.

For each package of the list (:func:`autotua.archtest.parse_package_list`, against the pinned
snapshot): its USE combinations (:func:`~autotua.archtest.use_combinations`), each a row; and up
to M reverse dependencies per arch (:func:`~autotua.archtest.reverse_dependencies`), each a row
built with the package's version (``with``). Every job unmasks the whole list (``unmask``), as an
arch tester's ``package.accept_keywords`` would. The columns are the arches the list names times
the flavours asked for. The jobuild's parameters: ``atom``, ``use``, ``unmask``, ``with``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from autotua.archtest import (
    COMBINATIONS,
    RDEPS,
    PackageListError,
    parse_package_list,
    reverse_dependencies,
    use_combinations,
)

from .create import GroupInvalid, RowSpec, create_group, new_seed
from .models import Group, GroupKind


@dataclass
class ArchTestRequest:
    packages: str
    bug: int | None = None
    stable: bool = True
    arches: tuple[str, ...] = ()
    flavours: tuple[str, ...] = ("openrc",)
    combinations: int = COMBINATIONS
    rdeps: int = RDEPS
    seed: int | None = None
    filter: str = ""
    revision: str | None = None
    snapshot: str | None = None
    second_opinion: bool = True
    jobuild: str = ""

    def to_json(self, seed: int) -> dict:
        return {"packages": self.packages, "bug": self.bug, "stable": self.stable, "arches": list(self.arches),
                "flavours": list(self.flavours), "combinations": self.combinations, "rdeps": self.rdeps,
                "seed": seed, "filter": self.filter, "second_opinion": self.second_opinion}


def rows_for(repo, packages, *, flavours, combinations: int, rdeps: int, seed: int
             ) -> tuple[list[RowSpec], list[tuple[str, str]]]:
    """The rows and columns of an arch-testing group for the listed ``packages``."""
    unmask = " ".join(p.atom for p in packages)
    listed = tuple(p.cpv for p in packages)
    rows: list[RowSpec] = []
    arches: list[str] = []
    for pkg in packages:
        arches += [a for a in pkg.arches if a not in arches]
        here = [(a, f) for a in pkg.arches for f in flavours]
        for c in use_combinations(repo, pkg.cpv, combinations, seed):
            rows.append(RowSpec(f"{pkg.atom} {c.label}", {"atom": pkg.atom, "use": c.use, "unmask": unmask},
                                kind="use", package=pkg.atom, extra={"use_kind": c.kind}, columns=here))
        found: dict[tuple[str, str], list[str]] = {}
        for arch in pkg.arches:
            for r in reverse_dependencies(repo, pkg.cpv, arch, rdeps, seed, exclude=listed):
                found.setdefault((r.cpv, r.use), []).append(arch)
        for (cpv, use), on in sorted(found.items()):
            label = f"{pkg.atom} reverse dependency ={cpv}" + (f" USE='{use}'" if use else "")
            rows.append(RowSpec(label, {"atom": "=" + cpv, "use": use, "unmask": unmask, "with": pkg.atom},
                                kind="rdep", package=pkg.atom, extra={"rdep": "=" + cpv},
                                columns=[(a, f) for a in on for f in flavours]))
    return rows, [(a, f) for a in arches for f in flavours]


def create_archtest(req: ArchTestRequest, owner) -> Group:
    """The group for ``req``; GroupInvalid lists every fault (of the list, of a cell), nothing stored."""
    from autotua_master.snapshots.models import Snapshot
    from autotua_master.snapshots.repository import SnapshotUnavailable, configured, repository_for

    pinned = Snapshot.objects.pin(req.snapshot or "")
    if not pinned or not configured():
        raise GroupInvalid([{"row": "", "arch": "", "message":
                             "arch testing reads the pinned Gentoo snapshot, and this master reads none (it needs "
                             "AUTOTUA_SNAPSHOT_MIRROR, AUTOTUA_SNAPSHOT_KEY and a snapshot refreshsnapshots found)"}])
    try:
        repo = repository_for(pinned)
    except SnapshotUnavailable as e:
        raise GroupInvalid([{"row": "", "arch": "", "message": str(e)}]) from None
    try:
        packages = parse_package_list(req.packages, repo, stable=req.stable, arches=tuple(req.arches))
    except PackageListError as e:
        raise GroupInvalid([{"row": "", "arch": "", "message": m} for m in e.errors]) from None
    seed = new_seed() if req.seed is None else req.seed
    rows, columns = rows_for(repo, packages, flavours=list(req.flavours), combinations=req.combinations,
                             rdeps=req.rdeps, seed=seed)
    what = "stabilisation" if req.stable else "keywording"
    title = (f"bug {req.bug}: " if req.bug else "") + f"{what} of " + ", ".join(p.atom for p in packages)
    return create_group(owner=owner, kind=GroupKind.ARCHTEST, title=title[:200],
                        root=req.jobuild or settings.AUTOTUA_ARCHTEST_JOBUILD, rows=rows, columns=columns,
                        filter_text=req.filter, revision=req.revision, snapshot=pinned, seed=seed,
                        second_opinion=req.second_opinion, bug=req.bug, request=req.to_json(seed))
