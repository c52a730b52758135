"""What a maintainer does to a job besides creating it: delete one that never started, rerun one that
ended (with the same pins), be told by email when it ends; and the warning for a job no slave serves.

:class:`JobLifecycle` is mixed into :class:`~.job.Job`; :func:`rerun_jobs` is the one way to rerun,
for one job or for many (a group reruns its jobs through it, as one request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.apps import apps
from django.db import transaction

from ..errors import JobError
from .states import FINAL, JobState

log = logging.getLogger(__name__)

#: what a rerun copies: the request's pins (the tree revision too, and the Gentoo snapshot it ran against)
PINS = ("root", "arch", "stage3_asked", "snapshot")


class JobLifecycle:
    # -- deleting -----------------------------------------------------------------------------------
    @property
    def deletable(self) -> bool:
        """Invalid, or never started (no slave ever took it): nothing ran, nothing is lost."""
        return not self.automatic and (self.state == JobState.INVALID or not self.runs.exists())

    def remove(self, by) -> None:
        """Delete the job for ``by`` (its owner or staff), if it never started; raises JobError."""
        if not self.can_change(by):
            raise JobError("only the job's owner or staff may delete it", "permission_denied")
        with transaction.atomic():
            job = type(self).objects.select_for_update().get(pk=self.pk)  # a claim takes this row too
            if job.automatic:
                raise JobError(f"job #{job.pk} was queued by the master for a SIDEPEND; it is not deleted", "automatic")
            if not job.deletable:
                raise JobError(f"job #{job.pk} has run on a slave ({job.state}); only invalid or never-started "
                               "jobs are deleted (its results stay on record)", "started")
            job.requirements.all().delete()
            job.delete()
        log.info("job #%s deleted by %s", self.pk, by)

    # -- rerunning ----------------------------------------------------------------------------------
    @property
    def rerunnable(self) -> bool:
        return self.state in FINAL

    def rerun(self, by, *, notify: bool | None = None):
        """A new job for ``by`` with this one's pins (root, arch, flavour, revision, snapshot), validated anew."""
        return rerun_jobs([self], by, notify=notify)[0]


def rerun_jobs(jobs: Iterable, by, *, notify: bool | None = None) -> list:
    """Rerun ended jobs with their pins, as new jobs owned by ``by`` (who must be allowed to create
    jobs); each new job records which it reran. Raises JobError before creating any when one of
    them has not ended."""
    jobs = list(jobs)
    for job in jobs:
        if not job.rerunnable:
            raise JobError(f"job #{job.pk} is {job.state}; only a job that ended (passed, failed, error, "
                           "cancelled) is rerun", "not_ended")
    made = []
    for job in jobs:
        pins = {f: getattr(job, f) for f in PINS}
        new = type(job).objects.create_job(root=pins["root"], revision=job.revision.revision_id, arch=pins["arch"],
                                     stage3=pins["stage3_asked"] or None, snapshot=pins["snapshot"] or None,
                                     owner=by, notify=job.notify if notify is None else notify, rerun_of=job)
        made.append(new)
        log.info("job #%s reran as #%s by %s", job.pk, new.pk, by)
    return made


# -- warnings -----------------------------------------------------------------------------------------
def coverage_warnings(arch: str, stage3: str, root: str) -> list[dict]:
    """A warning when no active slave runs ``arch`` with the ``stage3`` flavour: the job would wait."""
    Slave = apps.get_model("slaves", "Slave")  # the slaves app sits above this one: no import of it
    served = {(a, f) for a, fl in Slave.objects.filter(state="active").values_list("arch", "flavours")
              for f in fl or ()}
    if (arch, stage3) in served:
        return []
    arches = sorted({a for a, _ in served})
    have = ", ".join(f"{a} {f}" for a, f in sorted(served)) or "none yet"
    what = f"the {stage3} flavour on {arch}" if arch in arches else f"arch {arch}"
    return [{"kind": "no-slave", "jobuild": root,
             "message": f"no registered slave serves {what} (they serve: {have}); the job waits until one does"}]


# -- mail ---------------------------------------------------------------------------------------------
def notify_owner(job_id: int) -> None:
    """Email a job's end to its owner, if they asked (the job's ``notify``) and have an address."""
    from django.conf import settings
    from django.core.mail import send_mail

    job = apps.get_model("jobs", "Job").objects.select_related("owner").filter(pk=job_id).first()
    if job is None or not job.notify or job.owner is None or not job.owner.email:
        return
    url = f"{settings.AUTOTUA_SITE_URL.rstrip('/')}/jobs/{job.pk}/" if settings.AUTOTUA_SITE_URL else f"/jobs/{job.pk}/"
    lines = [f"Job #{job.pk} {job.root} ({job.arch}, {job.stage3}, r{job.revision.revno}) is {job.state}.", ""]
    if job.reason:
        lines += [job.reason, ""]
    run = job.runs.order_by("-claimed").first()
    for r in run.results.order_by("index") if run else ():
        lines.append(f"  {r.jobuild:<40} {r.status}")
    lines += ["", url]
    try:
        send_mail(f"[AutotuA] job #{job.pk} {job.root}: {job.state}", "\n".join(lines),
                  settings.DEFAULT_FROM_EMAIL, [job.owner.email])
    except Exception:  # the job ended either way; a mail server down is logged, not the job's problem
        log.exception("could not email job #%s's end to %s", job.pk, job.owner.email)
