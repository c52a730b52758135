"""A second opinion: a configuration of a group that failed runs once more, on another slave, before the
group calls it failed. A slave with a broken toolchain, a full disk or bad memory fails everything;
one run elsewhere tells such a failure from the package's own ("failed on 2 slaves" versus "failed
on X only, passed on Y", :mod:`.cells`).

The second job is a copy of the failed one (same plan, pins and values, no validation again: it was
frozen when the first slave took it) that is never handed to the slave that failed it
(``Job.avoid_slave``). It is made only when another active slave serves the arch and flavour; when
none does, the cell says so. A second opinion gets no third.
"""

from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger(__name__)


def other_slaves(arch: str, flavour: str, but) -> list:
    from autotua_master.slaves.models import Slave, SlaveState

    return [s for s in Slave.objects.filter(state=SlaveState.ACTIVE, arch=arch).exclude(pk=but.pk)
            if flavour in (s.flavours or [])]


def on_job_ended(sender, job, **kwargs) -> None:
    """The jobs app's ``job_ended`` (connected in :mod:`.apps`): a group's failed job may ask again."""
    if job.state == "failed" and job.group_id:
        ask_again(job)


def ask_again(job) -> None:
    """``job`` (of a group) just failed, under its row lock: queue its second opinion if one is due."""
    from autotua_master.jobs.models import Job

    from .models import Group

    if job.second_opinion_of_id or not settings.AUTOTUA_SECOND_OPINION:
        return
    if not Group.objects.filter(pk=job.group_id, second_opinion=True).exists():
        return
    run = job.runs.select_related("slave").order_by("-claimed").first()
    if run is None or Job.objects.filter(second_opinion_of=job).exists():
        return  # failed without running (a SIDEPEND failed): nothing to ask another slave about
    if not other_slaves(job.arch, job.stage3, run.slave):
        log.info("job #%s failed on %s; no other slave serves %s %s for a second opinion", job.pk, run.slave,
                 job.arch, job.stage3)
        return
    copy = Job(root=job.root, parameters=job.parameters, arch=job.arch, stage3=job.stage3,
               stage3_asked=job.stage3_asked, revision=job.revision, snapshot=job.snapshot,
               snapshot_asked=job.snapshot_asked, plan=job.plan, sidepends=job.sidepends, warnings=job.warnings,
               errors=[], maintainers=job.maintainers, signers=job.signers, priority=job.priority,
               owner=job.owner, group_id=job.group_id, row=job.row, second_opinion_of=job,
               avoid_slave=run.slave, max_attempts=job.max_attempts, validated=job.validated,
               state="waiting", reason="")
    copy.save()
    copy.hold_or_queue()
    log.info("job #%s failed on %s: job #%s asks another slave", job.pk, run.slave, copy.pk)
