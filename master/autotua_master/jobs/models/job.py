"""The job: one root atom at one pinned revision and Gentoo repository snapshot, its validated plan,
and its state.

States (ARCHITECTURE.md, Jobs): ``invalid`` never reaches a slave; ``waiting`` holds a job until
its SIDEPENDs have passed; ``queued`` can be claimed; ``running`` is under a slave's lease;
``passed``, ``failed``, ``error`` and ``cancelled`` are final. A job is *frozen* once a slave first
accepted it: from then on it is never re-validated.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

log = logging.getLogger(__name__)


class JobState(models.TextChoices):
    INVALID = "invalid"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"


FINAL = (JobState.PASSED, JobState.FAILED, JobState.ERROR, JobState.CANCELLED)
REVALIDATABLE = (JobState.INVALID, JobState.WAITING, JobState.QUEUED)


class JobError(Exception):
    """A change a job's state does not allow; the message says why (an API 400/409)."""

    def __init__(self, message: str, code: str = "invalid_state"):
        super().__init__(message)
        self.code = code


class JobQuerySet(models.QuerySet):
    def claimable(self, arch: str, flavours: list[str], slave=None):
        """Queued jobs a slave of ``arch`` serving ``flavours`` can run, oldest first; a second opinion
        is never handed to the slave whose failure it checks."""
        qs = self.filter(state=JobState.QUEUED, arch=arch, stage3__in=flavours)
        if slave is not None:
            qs = qs.filter(models.Q(avoid_slave__isnull=True) | ~models.Q(avoid_slave=slave))
        return qs.order_by("id")

    def active(self):
        return self.exclude(state__in=[*FINAL, JobState.INVALID])

    def visible_to(self, user):
        return self  # every job is public to read; changing it is what permissions guard


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    def create_job(self, *, root: str, revision: str | int | None = None, arch: str | None = None,
                   stage3: str | None = None, owner=None, snapshot: str | None = None,
                   parameters: dict | None = None) -> Job:
        """Validate ``root`` with its ``parameters`` at ``revision`` (None: the tip) and store the job,
        held, queued or invalid, pinned to the Gentoo repository snapshot ``snapshot`` (None: the newest
        the master knows), whose repository checks the values.

        Raises :class:`~autotua.tree.TreeError` for an unknown revision and
        :class:`~autotua_master.snapshots.models.UnknownSnapshot` for a snapshot the master does not
        know (nothing is stored then).
        """
        from autotua_master.snapshots.models import Snapshot
        from autotua_master.tree.validation import validate

        arch = arch or settings.AUTOTUA_DEFAULT_ARCH
        pinned = Snapshot.objects.pin(snapshot or "")
        validation = validate(root, revision, arch, parameters=parameters, snapshot=pinned)
        with transaction.atomic():
            job = self.model(root=root, arch=arch, owner=owner, stage3_asked=stage3 or "",
                             snapshot=pinned, snapshot_asked=pinned if snapshot else "",
                             parameters=dict(parameters or {}), max_attempts=settings.AUTOTUA_MAX_ATTEMPTS)
            job.apply(validation)
            job.save()
            job.hold_or_queue()
        return job


    def provide(self, provision, waiter: Job, depth: int) -> Job:
        """The master's own job for a pending SIDEPEND ``provision`` that ``waiter`` needs: the jobuild
        alone, at the waiter's revision, on the waiter's arch when its ARCH allows. It becomes the
        provision's provider before its own SIDEPENDs are linked, so a waiting cycle is seen."""
        from autotua.params import identity
        from autotua_master.tree.validation import validate

        from .sidepend import MAX_DEPTH, ProvisionState

        root = "=" + provision.jobuild
        arch = waiter.arch
        values = provision.parameters or None
        validation = validate(root, waiter.revision.revision_id, arch, parameters=values, snapshot=waiter.snapshot)
        res = validation.resolution
        keywords = res.plan[-1].arch if res.plan else []
        if keywords and arch not in keywords:
            arch = keywords[0]
            validation = validate(root, waiter.revision.revision_id, arch, parameters=values,
                                  snapshot=waiter.snapshot)
        # the waiter's repository too: the SIDEPEND is run against what the waiter will see
        job = self.model(root=root, arch=arch, owner=None, max_attempts=settings.AUTOTUA_MAX_ATTEMPTS,
                         snapshot=waiter.snapshot, snapshot_asked=waiter.snapshot, parameters=dict(values or {}))
        job.apply(validation)
        got = identity(job.plan[-1]["digest"], job.plan[-1].get("parameters") or {}) if job.plan else ""
        if job.plan and got != provision.digest:
            job.errors.append({"kind": "digest", "jobuild": provision.jobuild,
                               "message": f"{provision.jobuild} has digest {got} at "
                                          f"{job.revision}, not {provision.digest}"})
            job.state = JobState.INVALID
        if depth >= MAX_DEPTH:
            job.errors.append({"kind": "cycle", "jobuild": provision.jobuild,
                               "message": f"SIDEPENDs nest deeper than {MAX_DEPTH} levels"})
            job.state = JobState.INVALID
        job.save()
        provision.provider = job
        if job.state == JobState.INVALID:
            first = job.errors[0]["message"] if job.errors else "invalid"
            provision.state = ProvisionState.FAILED
            provision.reason = f"the master's job #{job.pk} for it is invalid: {first}"
            provision.save(update_fields=["provider", "state", "reason"])
            job.reason = f"{len(job.errors)} error(s) in validation"
            job.save(update_fields=["reason"])
            return job
        provision.save(update_fields=["provider"])
        from .sidepend import Provision

        Provision.objects.link(job, depth + 1)
        log.info("job #%s queued by the master for SIDEPEND %s of job #%s", job.pk, provision.jobuild, waiter.pk)
        return job


class Job(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="jobs", help_text="empty for the jobs the master queued for a SIDEPEND")
    root = models.CharField(max_length=255, help_text="the root atom, as asked for")
    arch = models.CharField(max_length=32)
    stage3 = models.CharField(max_length=32, help_text="the stage3 flavour")
    stage3_asked = models.CharField(max_length=32, blank=True,
                                    help_text="the flavour asked for; empty: the root jobuild's STAGE3")
    revision = models.ForeignKey("tree.Revision", on_delete=models.PROTECT, related_name="jobs")
    snapshot = models.CharField(max_length=8, blank=True,
                                help_text="the Gentoo repository snapshot (YYYYMMDD) it runs against; empty: none")
    snapshot_asked = models.CharField(max_length=8, blank=True,
                                      help_text="the snapshot its maintainer named; empty: the newest at validation")
    parameters = models.JSONField(default=dict, blank=True,
                                  help_text="the root jobuild's parameter values, as asked (the plan holds them "
                                            "checked, defaults filled in)")
    group = models.ForeignKey("groups.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs",
                              help_text="the group (a matrix, an arch-testing bug) it was made in")
    row = models.PositiveIntegerField(null=True, blank=True, help_text="its configuration: a row of the group")
    second_opinion_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                                          related_name="second_opinions",
                                          help_text="the failed job of its group it runs again, on another slave")
    avoid_slave = models.ForeignKey("slaves.Slave", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="never handed to this slave (a second opinion)")
    state = models.CharField(max_length=10, choices=JobState.choices, db_index=True)
    reason = models.TextField(blank=True, help_text="why it failed, errored, was cancelled or is waiting")
    plan = models.JSONField(default=list, blank=True)
    sidepends = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    created = models.DateTimeField(default=timezone.now)
    validated = models.DateTimeField(default=timezone.now)
    accepted = models.DateTimeField(null=True, blank=True, help_text="first claimed by a slave: frozen since")
    queued = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = JobManager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["arch", "stage3", "id"], condition=models.Q(state="queued"),
                                name="job_queued")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.root}"

    # -- properties ---------------------------------------------------------------------------------
    @property
    def automatic(self) -> bool:
        """Queued by the master for a SIDEPEND, not by a person."""
        return self.owner_id is None

    @property
    def frozen(self) -> bool:
        return self.accepted is not None

    @property
    def snapshot_pin(self) -> dict | None:
        """The pinned snapshot as the claim and the API carry it: ``{"date", "name", "url"}``, or None."""
        from autotua_master.snapshots.models import pin_payload

        return pin_payload(self.snapshot)

    @property
    def root_jobuild(self) -> str | None:
        return self.plan[-1]["jobuild"] if self.plan else None

    @property
    def values(self) -> dict[str, str]:
        """The root jobuild's parameter values: checked ones from the plan, else (invalid) as asked."""
        if self.plan and not self.errors:
            return self.plan[-1].get("parameters") or {}
        return self.parameters or {}

    @property
    def label(self) -> str:
        """The root with its values, as people read a job: ``gentoo/arch-test-1[atom==app-misc/hello-1.0]``."""
        from autotua.params import label

        return label(self.root_jobuild or self.root, self.values)

    def can_change(self, user) -> bool:
        return bool(user and user.is_authenticated and (user.is_staff or user.pk == self.owner_id))

    def maintainers(self) -> dict[str, str]:
        """Fingerprints of every maintainer whose jobuilds or templates the plan uses."""
        from autotua_master.tree.models import Maintainer

        users = {e["jobuild"].split("/", 1)[0] for e in self.plan}
        users |= {t.split("/", 1)[0] for e in self.plan for t in e.get("inherited", [])}
        return dict(Maintainer.objects.filter(name__in=users).values_list("name", "fingerprint"))

    # -- validation ---------------------------------------------------------------------------------
    def apply(self, validation) -> None:
        """Store a validation's outcome; the state is decided by :meth:`hold_or_queue` after saving."""
        res = validation.resolution
        self.revision = validation.revision
        self.stage3 = self.stage3_asked or res.stage3 or "openrc"
        self.plan = [{"index": i, **_entry(e)} for i, e in enumerate(res.plan)]
        self.sidepends = [{**vars(s), "identity": s.identity} for s in res.sidepends]
        self.warnings = [vars(p) for p in res.warnings]
        self.errors = [vars(p) for p in res.errors]
        self.validated = timezone.now()
        self.reason = ""
        self.state = JobState.INVALID if res.errors else JobState.WAITING

    def hold_or_queue(self) -> None:
        """Link SIDEPENDs and set the state: waiting, queued, or failed when one already failed."""
        from .sidepend import Provision

        if self.state == JobState.INVALID:
            self.reason = f"{len(self.errors)} error(s) in validation"
            self.save(update_fields=["reason"])
            return
        Provision.objects.link(self)

    def revalidate(self, revision: str | int | None = None, snapshot: str | None = None) -> None:
        """Validate again against ``revision`` (None: the tip) while no slave has accepted the job, and
        pin it again: to ``snapshot`` when given (``""``: the newest), else to the one its maintainer
        named, else to the newest the master knows now."""
        from autotua_master.snapshots.models import Snapshot
        from autotua_master.tree.validation import validate

        self._check_revalidatable()
        asked = self.snapshot_asked if snapshot is None else snapshot
        pinned = Snapshot.objects.pin(asked)
        validation = validate(self.root, revision, self.arch, parameters=self.parameters or None, snapshot=pinned)
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=self.pk)
            locked._check_revalidatable()
            locked.requirements.all().delete()
            locked.snapshot, locked.snapshot_asked = pinned, pinned if asked else ""
            locked.apply(validation)
            locked.save()
            locked.hold_or_queue()
        self.refresh_from_db()

    def _check_revalidatable(self) -> None:
        if self.frozen:
            raise JobError(f"job #{self.pk} was accepted by a slave at {self.accepted:%Y-%m-%d %H:%M:%S}Z; "
                           "it is frozen and cannot be re-validated", "frozen")
        if self.state not in REVALIDATABLE:
            raise JobError(f"job #{self.pk} is {self.state}; only invalid, waiting or queued jobs are re-validated")
        if self.automatic:
            raise JobError(f"job #{self.pk} was queued by the master for a SIDEPEND; it is not re-validated")

    # -- transitions (callers hold a transaction and the row lock) ---------------------------------
    def queue(self, reason: str = "") -> None:
        self.state = JobState.QUEUED
        self.reason = reason
        self.queued = timezone.now()
        self.save(update_fields=["state", "queued", "reason"])

    def wait(self, reason: str) -> None:
        self.state = JobState.WAITING
        self.reason = reason
        self.save(update_fields=["state", "reason"])

    def end(self, state: str, reason: str = "", *, run_end: str | None = None) -> None:
        """Put the job in a final state; close its live run; tell SIDEPEND waiters if it provided one."""
        from autotua_master.slaves.models import RunEnd

        from .sidepend import Provision

        self.state = state
        self.reason = reason
        self.finished = timezone.now()
        self.save(update_fields=["state", "reason", "finished"])
        for run in self.runs.live().select_for_update():
            run.close(run_end or RunEnd.FINISHED, reason)
        if state != JobState.PASSED:
            Provision.objects.provider_ended(self)
        if state == JobState.FAILED and self.group_id:
            from autotua_master.groups.secondopinion import ask_again

            ask_again(self)
        log.info("job #%s %s%s", self.pk, state, f": {reason}" if reason else "")

    def _lock_runs_then_job(self) -> Job:
        """This job under its row lock, its live runs locked first: every writer takes a run before its
        job (finish, result, sweep, claim), so taking them the other way round would deadlock with them."""
        from autotua_master.slaves.models import Run

        list(Run.objects.select_for_update().filter(job_id=self.pk, ended__isnull=True).values_list("pk"))
        return Job.objects.select_for_update().get(pk=self.pk)

    def cancel(self, by=None, reason: str = "") -> None:
        from autotua_master.slaves.models import RunEnd

        with transaction.atomic():
            job = self._lock_runs_then_job()
            if job.state in FINAL:
                raise JobError(f"job #{self.pk} is already {job.state}", "final")
            who = f"cancelled by {by}" if by else "cancelled"
            job.end(JobState.CANCELLED, f"{who}: {reason}" if reason else who, run_end=RunEnd.CANCELLED)
        self.refresh_from_db()

    def requeue(self) -> None:
        """Give a job a fresh start (staff): its run is closed, its attempts reset, SIDEPENDs linked anew."""
        from autotua_master.slaves.models import RunEnd

        from .sidepend import Provision

        with transaction.atomic():
            job = self._lock_runs_then_job()
            if job.state == JobState.INVALID:
                raise JobError(f"job #{self.pk} is invalid; re-validate it instead")
            for run in job.runs.live().select_for_update():
                run.close(RunEnd.REQUEUED, "requeued by staff")
            job.attempts = 0
            job.finished = None
            job.reason = ""
            job.state = JobState.WAITING
            job.save()
            job.requirements.all().delete()
            Provision.objects.adopt(job)
            job.hold_or_queue()
        self.refresh_from_db()

    def outcome_of(self, run) -> tuple[str, str] | None:
        """(state, reason) when ``run``'s results decide the job: every jobuild passed, or one failed
        (nothing runs after a failed jobuild); None while results are missing."""
        results = list(run.results.order_by("index"))
        failed = [r for r in results if r.status == "failed"]
        if failed:
            return JobState.FAILED, _failed_in(failed[0])
        if self.plan and [r.index for r in results] == [e["index"] for e in self.plan]:
            return JobState.PASSED, ""
        return None

    def lose_run(self, run, end: str, reason: str) -> None:
        """The run ended without a finish (lease ran out, slave restarted): requeue or give up.

        A run lost after every result was in (the slave died in its teardown, or before its finish)
        did the job: the job ends as those results say, instead of running a second time.
        """
        from autotua_master.slaves.models import RunEnd

        run.close(end, reason)
        if self.state != JobState.RUNNING:
            return
        done = self.outcome_of(run) if end in (RunEnd.EXPIRED, RunEnd.SUPERSEDED) else None
        if done:
            state, why = done
            self.end(state, f"{why} (every result was in; {reason})" if why else f"every result was in; {reason}")
            return
        if self.attempts < self.max_attempts:
            self.queue(f"attempt {self.attempts} lost ({reason}); queued again")
        else:
            self.end(JobState.ERROR, f"{reason} (attempt {self.attempts} of {self.max_attempts}, the last)")


def _failed_in(result) -> str:
    phase = next((p.get("name") for p in result.phases if p.get("status") == "failed"), None)
    return f"{result.jobuild} failed" + (f" in {phase}" if phase else "")


def _entry(e) -> dict:
    """A plan entry as the payload carries it (docs/protocol.md, Claim)."""
    dist = lambda specs: [vars(s) for s in specs]  # noqa: E731
    return {"jobuild": e.jobuild, "path": e.path, "digest": e.digest, "description": e.description,
            "arch": list(e.arch), "inherited": list(e.inherited), "depend": e.depend, "sidepend": e.sidepend,
            "src_uri": dist(e.src_uri), "portconf_uri": dist(e.portconf_uri), "parameters": dict(e.parameters)}
