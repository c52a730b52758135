"""What the owner of a group (or staff) does to all of it: cancel it, or rerun what did not pass."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from autotua_master.jobs.models import Job
from autotua_master.jobs.models.job import FINAL, JobError

from . import cells
from .models import Group


def cancel_group(group: Group, by: str, reason: str = "") -> int:
    """Cancel every job of the group that has not ended; returns how many were."""
    done = 0
    for job in Job.objects.filter(group=group).exclude(state__in=FINAL).order_by("id"):
        try:
            job.cancel(by=by, reason=reason or f"group #{group.pk} cancelled")
            done += 1
        except JobError:
            pass  # it ended meanwhile
    return done


#: the verdicts a rerun takes again
RERUN = ("failed", "disputed", "error", "cancelled", "invalid")


def rerun_group(group: Group, by) -> list[Job]:
    """A new job for every cell whose verdict is not passed (and has ended), in the same row and
    column, with the group's pins (revision, snapshot) and the row's values, validated anew. The
    matrix shows the newest job of each cell."""
    from autotua_master.tree.validation import validator

    m = cells.load(group)
    todo = [c for c in m.cells.values() if c.verdict in RERUN]
    if not todo:
        raise JobError(f"group #{group.pk}: every cell passed or is still running; nothing to rerun", "nothing")
    made = []
    with validator(group.revision.revision_id, group.snapshot) as one, transaction.atomic():
        for c in todo:
            old = Job.objects.get(pk=c.first.job)
            v = one(group.root, old.arch, old.parameters or None)
            job = Job(root=group.root, arch=old.arch, owner=by, stage3_asked=old.stage3_asked or old.stage3,
                      snapshot=old.snapshot, snapshot_asked=old.snapshot_asked, parameters=old.parameters,
                      group=group, row=old.row, max_attempts=settings.AUTOTUA_MAX_ATTEMPTS)
            job.apply(v)
            job.save()
            job.hold_or_queue()
            made.append(job)
    return made


def summary(group: Group) -> dict:
    m = cells.load(group)
    return {"state": m.state, "counts": m.counts, "jobs": sum(len(c.attempts) for c in m.cells.values())}



