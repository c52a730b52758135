"""Making a group: its rows by columns, filtered, every cell validated, then stored in one transaction.

Every (row, arch) is resolved once, with one tree, verifier and resolver for the whole group
(:func:`~autotua_master.tree.validation.validator`), the parameter values checked against the
pinned snapshot; the flavours of an arch share that validation. One invalid cell and nothing is
stored: the request is answered with every fault, each naming its row and arch. The jobs are then
made in bulk, queued at once when they have no SIDEPEND (arch testing's have none).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from autotua_master.jobs import wakeup
from autotua_master.jobs.models import Job, JobState

from . import matrix
from .models import Group


@dataclass
class RowSpec:
    """One configuration: the root jobuild's values, a label people read, and where it runs."""

    label: str
    parameters: dict[str, str]
    kind: str = "values"  # values; for arch testing: use, rdep
    package: str = ""
    extra: dict = field(default_factory=dict)
    columns: list[tuple[str, str]] | None = None  # None: every column of the group

    def axes(self) -> dict[str, str]:
        out = dict(self.parameters)
        if self.kind in ("use", "rdep"):
            out.update(package=self.package, kind=self.kind, use=self.parameters.get("use", ""))
        return out

    def to_json(self) -> dict:
        return {"label": self.label, "kind": self.kind, "package": self.package, "parameters": self.parameters,
                **self.extra}


class GroupInvalid(Exception):
    """The request makes no group; ``errors`` are ``{"row", "arch", "message"}`` (row and arch "" when the
    fault is the request's)."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(e["message"] for e in errors[:5]))
        self.errors = errors


def new_seed() -> int:
    return secrets.randbelow(2**31)


def cells(rows: list[RowSpec], columns: list[tuple[str, str]], filter_text: str) -> list[tuple[int, str, str]]:
    """The (row index, arch, flavour) the filter keeps. GroupInvalid for a bad filter."""
    try:
        tree = matrix.parse_filter(filter_text or "")
        axes = {"arch", "flavour"} | {k for r in rows for k in r.axes()}
        matrix.check_names(tree, axes)
        out = []
        for i, row in enumerate(rows):
            allowed = columns if row.columns is None else [c for c in columns if c in set(row.columns)]
            for arch, flavour in allowed:
                axes_here = {name: "" for name in axes} | row.axes() | {"arch": arch, "flavour": flavour}
                if matrix.evaluate(tree, axes_here):
                    out.append((i, arch, flavour))
    except matrix.FilterError as e:
        raise GroupInvalid([{"row": "", "arch": "", "message": str(e)}]) from None
    return out


def create_group(*, owner, kind: str, title: str, root: str, rows: list[RowSpec], columns: list[tuple[str, str]],
                 filter_text: str = "", revision: str | int | None = None, snapshot: str | None = None,
                 seed: int = 0, second_opinion: bool = True, bug: int | None = None,
                 request: dict | None = None) -> Group:
    """Validate and store a group and its jobs. Raises GroupInvalid (nothing stored), TreeError (an
    unknown revision) or UnknownSnapshot."""
    from autotua_master.snapshots.models import Snapshot
    from autotua_master.tree.validation import validator

    pinned = Snapshot.objects.pin(snapshot or "")
    kept = cells(rows, columns, filter_text)
    if not kept:
        raise GroupInvalid([{"row": "", "arch": "", "message": "the filter keeps no combination: no job to make"}])
    limit = settings.AUTOTUA_MAX_GROUP_JOBS
    if len(kept) > limit:
        raise GroupInvalid([{"row": "", "arch": "", "message": f"{len(kept)} jobs; a group may have {limit} at most "
                                                               "(AUTOTUA_MAX_GROUP_JOBS): fewer values or a filter"}])
    validations = {}
    errors: list[dict] = []
    with validator(revision, pinned) as one:
        for i, arch, _ in kept:
            if (i, arch) in validations:
                continue
            v = validations[(i, arch)] = one(root, arch, rows[i].parameters)
            errors += [{"row": rows[i].label, "arch": arch, "message": p.message} for p in v.resolution.errors]
    if errors:
        raise GroupInvalid(errors)
    revision_row = next(iter(validations.values())).revision
    now = timezone.now()
    with transaction.atomic():
        group = Group.objects.create(owner=owner, kind=kind, title=title[:200], bug=bug, root=root,
                                     revision=revision_row, snapshot=pinned, seed=seed, request=request or {},
                                     rows=[r.to_json() for r in rows], columns=[list(c) for c in columns],
                                     second_opinion=second_opinion, created=now)
        jobs = []
        turns = Turns(owner)
        for i, arch, flavour in kept:
            job = Job(root=root, arch=arch, owner=owner, stage3_asked=flavour, snapshot=pinned,
                      snapshot_asked=pinned if snapshot else "", parameters=dict(rows[i].parameters), group=group,
                      row=i, max_attempts=settings.AUTOTUA_MAX_ATTEMPTS, created=now)
            job.apply(validations[(i, arch)])
            if not job.sidepends:  # nothing to wait for: queued as it is stored, with its fair turn
                job.state, job.queued, job.turn = JobState.QUEUED, now, turns.next(job)
            jobs.append(job)
        Job.objects.bulk_create(jobs, batch_size=500)
        announced = set()
        for job in jobs:
            if job.state == JobState.WAITING:
                job.hold_or_queue()
            elif (job.arch, job.stage3) not in announced:  # one wake-up per queue is enough for its claims
                announced.add((job.arch, job.stage3))
                wakeup.announce_job(job)
    return group


class Turns:
    """The fair turns (docs/master.md) of many jobs of one owner queued at once, as
    :meth:`Job.queue <autotua_master.jobs.models.job.Job.queue>` gives them one at a time: each one past
    the owner's latest, and not behind the head of its own queue."""

    def __init__(self, owner):
        from django.db.models import Max

        self.last = Job.objects.filter(state=JobState.QUEUED, owner=owner).aggregate(t=Max("turn"))["t"] or 0
        self.heads: dict[tuple[str, str], int] = {}

    def next(self, job) -> int:
        key = (job.arch, job.stage3)
        if key not in self.heads:
            self.heads[key] = Job.objects.claimable(key[0], [key[1]]).values_list("turn", flat=True).first() or 1
        self.last = max(self.last + 1, self.heads[key])
        return self.last
