"""The job: one root atom at one pinned revision and Gentoo repository snapshot, its validated plan,
and its state machine.

States are in :mod:`.states`. A job is *frozen* once a slave first accepted it: from then on it is
never re-validated. Every change of state here happens with the job's row locked (callers of the
transitions hold a transaction and the lock); whoever changes a running job locks its live run's row
first (claim, result, finish, sweep, cancel, requeue), so taking them the other way round never
deadlocks.

SIDEPENDs (:mod:`.sidepend` keeps the provisions): a job whose SIDEPENDs have not all passed
*waits*; it is *queued* at once when every SIDEPEND it still needs is being run by another slave
and the first jobuild needing one is not its first (it is *pipelined*: its jobuilds that need none
run meanwhile, and the result before the one that needs it is answered ``wait``).

Fair shares: every queued job gets a ``turn`` when first queued — one past its owner's latest
queued turn, and never behind the turn being served at the head of its queue — and claims take
the highest ``priority`` (staff set it), then the lowest turn, then the oldest. One owner's
thousand jobs take turns 1..1000; another owner's job queued meanwhile takes the head's turn and
goes next.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone

from autotua.params import identity
from autotua_master import rows
from autotua_master.snapshots.models import Snapshot, pin_payload
from autotua_master.tree.validation import validate

from .. import signals, wakeup
from ..errors import JobError
from .lifecycle import JobLifecycle, coverage_warnings, notify_owner
from .sidepend import MAX_DEPTH, Provision, find_cycle
from .states import FINAL, REVALIDATABLE, JobState, ProvisionState, RunEnd

log = logging.getLogger(__name__)

__all__ = ["FINAL", "REVALIDATABLE", "Job", "JobError", "JobState"]


class JobQuerySet(models.QuerySet):
    def claimable(self, arch: str, flavours: list[str], slave=None):
        """Queued jobs a slave of ``arch`` serving ``flavours`` can run, in the order claims take them; a
        second opinion is never handed to the slave whose failure it checks."""
        qs = self.filter(state=JobState.QUEUED, arch=arch, stage3__in=flavours)
        if slave is not None:
            qs = qs.filter(models.Q(avoid_slave__isnull=True) | ~models.Q(avoid_slave=slave))
        return qs.order_by(*CLAIM_ORDER)

    def active(self):
        return self.exclude(state__in=[*FINAL, JobState.INVALID])

    def visible_to(self, user):
        return self  # every job is public to read; changing it is what permissions guard


#: the order claims take queued jobs in (the ``job_queue`` index has it)
CLAIM_ORDER = ("-priority", "turn", "id")


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    def create_job(self, *, root: str, revision: str | int | None = None, arch: str | None = None,
                   stage3: str | None = None, owner=None, snapshot: str | None = None, notify: bool = False,
                   rerun_of: Job | None = None, parameters: dict | None = None) -> Job:
        """Validate ``root`` with its ``parameters`` at ``revision`` (None: the tip) and store the job,
        held, queued or invalid, pinned to the Gentoo repository snapshot ``snapshot`` (None: the newest
        the master knows), whose repository checks the values.

        Raises :class:`~autotua.tree.TreeError` for an unknown revision and
        :class:`~autotua_master.snapshots.models.UnknownSnapshot` for a snapshot the master does not
        know (nothing is stored then).
        """
        arch = arch or settings.AUTOTUA_DEFAULT_ARCH
        pinned = Snapshot.objects.pin(snapshot or "")
        validation = validate(root, revision, arch, parameters=parameters, snapshot=pinned)
        with transaction.atomic():
            job = self.model(root=root, arch=arch, owner=owner, stage3_asked=stage3 or "",
                             snapshot=pinned, snapshot_asked=pinned if snapshot else "",
                             parameters=dict(parameters or {}), max_attempts=settings.AUTOTUA_MAX_ATTEMPTS,
                             notify=notify, rerun_of=rerun_of)
            job.apply(validation)
            job.save()
            job.hold_or_queue()
        return job

    def provide(self, provision: Provision, waiter: Job, depth: int) -> Job:
        """The master's own job for a pending SIDEPEND ``provision`` that ``waiter`` needs: the jobuild
        alone, at the waiter's revision, on the waiter's arch when its ARCH allows. It becomes the
        provision's provider before its own SIDEPENDs are linked, so a waiting cycle is seen."""
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
        job.link(depth + 1)
        log.info("job #%s queued by the master for SIDEPEND %s of job #%s", job.pk, provision.jobuild, waiter.pk)
        return job

    # -- what a SIDEPEND's change does to the jobs that need it --------------------------------------
    def release(self, provision: Provision) -> None:
        """``provision`` passed: every job it held with nothing else to wait for is queued, and every
        run waiting on it is woken."""
        for job_id in provision.waiting_jobs():
            job = self.select_for_update().get(pk=job_id)
            if job.state == JobState.WAITING and not job.unpassed().exists():
                job.queue()
        wakeup.announce_sidepend(provision.pk)

    def fail_waiters(self, provision: Provision, why: str) -> None:
        """``provision`` failed: every job that needs it fails, running ones too (their runs are
        aborted: the slave hears ``abort`` with the reason at its next call)."""
        for job_id in provision.waiting_jobs((JobState.WAITING, JobState.QUEUED, JobState.RUNNING)):
            waiter = self.model(pk=job_id)._lock_runs_then_job()
            if waiter.state in (JobState.WAITING, JobState.QUEUED):
                waiter.end(JobState.FAILED, why)
            elif waiter.state == JobState.RUNNING:
                waiter.end(JobState.FAILED, why, run_end=RunEnd.ABORTED)
        wakeup.announce_sidepend(provision.pk)

    def provider_started(self, provider: Job) -> None:
        """A SIDEPEND's provider was claimed: the jobs waiting on it may be pipelined now."""
        for provision in Provision.objects.filter(provider=provider, state=ProvisionState.PENDING):
            for job_id in provision.waiting_jobs():
                job = self.select_for_update().get(pk=job_id)
                if job.state == JobState.WAITING:
                    job.pipeline()

    def provider_stopped(self, provider: Job, why: str) -> None:
        """A SIDEPEND's provider went back to the queue (or was dropped): jobs queued on its running
        are held again, and runs waiting on it are woken to give their slave back."""
        for provision in Provision.objects.filter(provider=provider, state=ProvisionState.PENDING):
            for job_id in provision.waiting_jobs((JobState.QUEUED,)):
                job = self.select_for_update().get(pk=job_id)
                if job.state == JobState.QUEUED and job.unpassed().exists():
                    job.wait(f"waiting for SIDEPEND {provision.jobuild}: {why}")
            wakeup.announce_sidepend(provision.pk)


class Job(JobLifecycle, models.Model):
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
    maintainers = models.JSONField(default=dict, blank=True,
                                   help_text="name -> fingerprint of everyone whose jobuilds or templates the "
                                             "plan uses (slaves verify against these)")
    signers = models.JSONField(default=list, blank=True,
                               help_text="those fingerprints, sorted: a slave that names whom it trusts gets "
                                         "only jobs whose every signer it trusts")
    priority = models.IntegerField(default=0, help_text="set by staff: a higher priority is claimed first")
    turn = models.PositiveBigIntegerField(default=0, help_text="its turn among the queued jobs (fair shares "
                                                               "across owners), given when first queued")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    created = models.DateTimeField(default=timezone.now)
    validated = models.DateTimeField(default=timezone.now)
    accepted = models.DateTimeField(null=True, blank=True, help_text="first claimed by a slave: frozen since")
    queued = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    notify = models.BooleanField(default=False, db_default=False, help_text="email the owner when the job ends")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns",
                                 help_text="the job this one reran, with the same pins")

    objects = JobManager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["arch", "-priority", "turn", "id"], condition=models.Q(state="queued"),
                         name="job_queue"),
            models.Index(fields=["owner", "turn"], condition=models.Q(state="queued"), name="job_queued_turns"),
        ]

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

    def index_of(self, jobuild: str) -> int:
        return next(e["index"] for e in self.plan if e["jobuild"] == jobuild)

    def unpassed(self):
        """Its SIDEPEND requirements that have not passed yet."""
        return self.requirements.exclude(provision__state=ProvisionState.PASSED)

    # -- validation ---------------------------------------------------------------------------------
    def apply(self, validation) -> None:
        """Store a validation's outcome; the state is decided by :meth:`hold_or_queue` after saving."""
        res = validation.resolution
        self.revision = validation.revision
        self.stage3 = self.stage3_asked or res.stage3 or "openrc"
        self.plan = [{"index": i, **_entry(e)} for i, e in enumerate(res.plan)]
        self.sidepends = [{**vars(s), "identity": s.identity} for s in res.sidepends]
        self.warnings = [vars(p) for p in res.warnings] + coverage_warnings(self.arch, self.stage3, self.root)
        self.errors = [vars(p) for p in res.errors]
        self.stamp(validation.keys)
        self.validated = timezone.now()
        self.reason = ""
        self.state = JobState.INVALID if res.errors else JobState.WAITING

    def stamp(self, keys: dict[str, str]) -> None:
        """Record the fingerprints of everyone whose jobuilds or templates the plan uses, from ``keys``
        (the maintainers' recorded keys): what slaves verify against and filter on."""
        users = {e["jobuild"].split("/", 1)[0] for e in self.plan}
        users |= {t.split("/", 1)[0] for e in self.plan for t in e.get("inherited", [])}
        self.maintainers = {u: keys[u] for u in sorted(users) if u in keys}
        self.signers = sorted(set(self.maintainers.values()))

    def hold_or_queue(self) -> None:
        """Link SIDEPENDs and set the state: waiting, queued, or failed when one already failed."""
        if self.state == JobState.INVALID:
            self.reason = f"{len(self.errors)} error(s) in validation"
            self.save(update_fields=["reason"])
            return
        self.link()

    def link(self, depth: int = 0) -> None:
        """Record the job's SIDEPEND requirements and set its state: queued, waiting (with a provider
        for every pending provision; pipelined when they all run), or failed (one already failed, or
        the waiting would never end)."""
        provisions = Provision.objects.require(self)
        failed = [p for p in provisions.values() if p.state == ProvisionState.FAILED]
        if failed:
            self.end(JobState.FAILED, "; ".join(p.why_failed() for p in failed))
            return
        pending = [p for p in provisions.values() if p.state == ProvisionState.PENDING]
        if not pending:
            self.queue()
            return
        self.wait("waiting for SIDEPEND " + ", ".join(p.jobuild for p in pending) + " to pass")
        for p in pending:
            if p.provider_id is None:
                Job.objects.provide(p, self, depth)
        self.refresh_from_db()
        if self.state != JobState.WAITING:
            return  # a provider's own linking already failed it (a cycle through it)
        now = {p.pk: p for p in Provision.objects.filter(pk__in=[p.pk for p in pending])}
        failed = [p for p in now.values() if p.state == ProvisionState.FAILED]
        if failed:
            self.end(JobState.FAILED, "; ".join(p.why_failed() for p in failed))
            return
        if any(p.state == ProvisionState.PASSED for p in now.values()) and not self.unpassed().exists():
            self.queue()
            return
        cycle = find_cycle(self.pk)
        if cycle:
            jobs = Job.objects.in_bulk(cycle)
            names = " -> ".join(jobs[i].root_jobuild or jobs[i].root for i in [*cycle, cycle[0]])
            for job_id in cycle:
                j = Job.objects.select_for_update().get(pk=job_id)
                if j.state == JobState.WAITING:
                    j.end(JobState.FAILED, f"SIDEPEND cycle: {names} (these jobs would wait on each other forever)")
            self.refresh_from_db()
            return
        self.pipeline()

    def pipeline(self) -> bool:
        """Queue this waiting job when every SIDEPEND it still needs is running on a slave and its first
        jobuild needs none of them (docs/protocol.md, Result: ``wait``); True when it was queued."""
        if not settings.AUTOTUA_PIPELINE_SIDEPENDS:
            return False
        pending = list(self.unpassed().values_list("required_by", "provision__jobuild", "provision__provider_id",
                                                   "provision__provider__state"))
        if not pending or any(state != JobState.RUNNING for *_, state in pending):
            return False
        first = min(self.index_of(required_by) for required_by, *_ in pending)
        if first == 0:
            return False
        names = ", ".join(sorted({f"{j} (job #{p})" for _, j, p, _ in pending}))
        self.queue(f"pipelined: SIDEPEND {names} is running; the jobuilds before "
                   f"{self.plan[first]['jobuild']} run meanwhile")
        return True

    def revalidate(self, revision: str | int | None = None, snapshot: str | None = None) -> None:
        """Validate again against ``revision`` (None: the tip) while no slave has accepted the job, and
        pin it again: to ``snapshot`` when given (``""``: the newest), else to the one its maintainer
        named, else to the newest the master knows now."""
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
        """Make the job claimable; the first time, give it its turn (fair shares); wake a claim."""
        self.state = JobState.QUEUED
        self.reason = reason
        self.queued = timezone.now()
        if not self.turn:
            self.turn = self._next_turn()
        self.save(update_fields=["state", "queued", "reason", "turn"])
        wakeup.announce_job(self)

    def _next_turn(self) -> int:
        """One past the owner's latest queued turn, and not behind the head of the job's queue."""
        mine = Job.objects.filter(state=JobState.QUEUED, owner_id=self.owner_id).aggregate(t=Max("turn"))["t"] or 0
        head = (Job.objects.claimable(self.arch, [self.stage3]).values_list("turn", flat=True).first() or 1)
        return max(mine + 1, head)

    def wait(self, reason: str) -> None:
        self.state = JobState.WAITING
        self.reason = reason
        self.save(update_fields=["state", "reason"])

    def end(self, state: str, reason: str = "", *, run_end: str | None = None, run=None, result=None) -> None:
        """Put the job in a final state; close its live run (``run``, when the caller holds it locked);
        tell SIDEPEND waiters if it provided one. ``result``: the new result that decided it, written
        in the same statement."""
        self.state = state
        self.reason = reason
        self.finished = timezone.now()
        lives = [run] if run is not None and run.live else list(self.runs.live().select_for_update())
        rows.update_together((self, ("state", "reason", "finished")),
                             *((live, live.closing(run_end or RunEnd.FINISHED, reason)) for live in lives), new=result)
        if state != JobState.PASSED and self.automatic:
            self.provider_ended()
        if self.notify:
            transaction.on_commit(lambda pk=self.pk: notify_owner(pk))
        signals.job_ended.send(sender=type(self), job=self)
        log.info("job #%s %s%s", self.pk, state, f": {reason}" if reason else "")

    def provider_ended(self) -> None:
        """This job ended without passing: the jobs waiting on the provisions it ran fail with it (a
        provision itself fails only when the job failed; after an error or a cancel, which say nothing
        of the jobuild, a later job tries anew)."""
        for provision, why in Provision.objects.provider_ended(self):
            Job.objects.fail_waiters(provision, why)

    def _lock_runs_then_job(self) -> Job:
        """This job under its row lock, its live runs locked first (see the module's docstring)."""
        list(self.runs.select_for_update().filter(ended__isnull=True).values_list("pk"))
        return Job.objects.select_for_update().get(pk=self.pk)

    def cancel(self, by=None, reason: str = "") -> None:
        with transaction.atomic():
            job = self._lock_runs_then_job()
            if job.state in FINAL:
                raise JobError(f"job #{self.pk} is already {job.state}", "final")
            who = f"cancelled by {by}" if by else "cancelled"
            job.end(JobState.CANCELLED, f"{who}: {reason}" if reason else who, run_end=RunEnd.CANCELLED)
        self.refresh_from_db()

    def requeue(self) -> None:
        """Give a job a fresh start (staff): its run is closed, its attempts reset, SIDEPENDs linked anew."""
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

    # -- the end of a run ---------------------------------------------------------------------------
    def lose_run(self, run, end: str, reason: str) -> None:
        """The run ended before its results decided the job (lease ran out, slave restarted, an error,
        a wait given up): requeue or give up. (A run whose last result, or a failed one, is in was
        finished by that result: :mod:`autotua_master.jobs.protocol`.) A run the master ended because
        its wait for a SIDEPEND could not go on is not counted as a lost attempt.
        """
        run.close(end, reason)
        if self.state != JobState.RUNNING:
            return
        lost = self.attempts - self.runs.filter(end=RunEnd.WAITED).count()
        if end == RunEnd.WAITED or lost < self.max_attempts:
            self.relink(f"attempt {self.attempts} lost ({reason}); queued again" if end != RunEnd.WAITED
                        else f"{reason}; queued again")
            if self.automatic:
                Job.objects.provider_stopped(self, f"its job #{self.pk} was requeued ({reason})")
        else:
            self.end(JobState.ERROR, f"{reason} (attempt {self.attempts} of {self.max_attempts}, the last)")

    def relink(self, reason: str) -> None:
        """Back in the queue after a run: queued when nothing it needs is pending (or it can be
        pipelined again), else waiting for its SIDEPENDs."""
        if not self.sidepends or not self.unpassed().exists():
            self.queue(reason)
        elif not self.pipeline():
            names = ", ".join(sorted(self.unpassed().values_list("provision__jobuild", flat=True)))
            self.wait(f"{reason}; waiting for SIDEPEND {names} to pass")


def _entry(e) -> dict:
    """A plan entry as the payload carries it (docs/protocol.md, Claim)."""
    dist = lambda specs: [vars(s) for s in specs]  # noqa: E731
    return {"jobuild": e.jobuild, "path": e.path, "digest": e.digest, "description": e.description,
            "arch": list(e.arch), "inherited": list(e.inherited), "depend": e.depend, "sidepend": e.sidepend,
            "src_uri": dist(e.src_uri), "portconf_uri": dist(e.portconf_uri), "parameters": dict(e.parameters)}


def restamp(name: str, fingerprint: str | None) -> int:
    """A maintainer's recorded key changed (``None``: removed): the jobs not yet final that use their
    jobuilds carry the new one, as claims hand it to slaves. Returns how many were changed."""
    changed = 0
    with transaction.atomic():
        for job in Job.objects.exclude(state__in=FINAL).filter(maintainers__has_key=name).select_for_update():
            keys = {**job.maintainers}
            if fingerprint:
                keys[name] = fingerprint
            else:
                keys.pop(name, None)
            if keys != job.maintainers:
                job.maintainers = keys
                job.signers = sorted(set(keys.values()))
                job.save(update_fields=["maintainers", "signers"])
                changed += 1
    return changed
