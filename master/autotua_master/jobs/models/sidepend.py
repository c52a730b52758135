"""SIDEPEND tracking: a *provision* is one jobuild at one content digest that must pass somewhere.

A job's SIDEPEND requirements point at provisions. A provision is passed by any passed result of that
jobuild with that digest, on any slave; until then the master runs one job of its own for it (the
*provider*, shared by every job that waits on it), and when that job fails, the waiters fail too.

This module keeps the provisions' own records; what their changes do to the jobs that need them is
the job's business (:mod:`.job`), which calls in here.

Race-freedom: every change of a provision happens with its row locked (``SELECT ... FOR UPDATE``;
on SQLite every write transaction is IMMEDIATE, so they are serial), and a waiting job is queued
only under its own row lock, after its provisions were updated. Two results that pass two SIDEPENDs
of one job at once therefore serialise on that job, and the second sees the first's provision as
passed: the job is queued exactly once and never left waiting.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .states import JobState, ProvisionState

#: how deep the master's own SIDEPEND jobs may nest before it calls it a cycle
MAX_DEPTH = 32


class ProvisionQuerySet(models.QuerySet):
    def lock(self, keys: list[tuple[str, str]], values: dict | None = None) -> dict[tuple[str, str], Provision]:
        """The provisions for ``(jobuild, identity)`` keys, made when missing (with the parameter
        ``values`` of each key, if any), locked, in key order."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        values = values or {}
        self.bulk_create([Provision(jobuild=j, digest=d, parameters=values.get((j, d)) or {}) for j, d in keys],
                         ignore_conflicts=True)
        query = models.Q()
        for j, d in keys:
            query |= models.Q(jobuild=j, digest=d)
        rows = self.select_for_update().filter(query).order_by("jobuild", "digest")
        return {(p.jobuild, p.digest): p for p in rows}

    def require(self, job) -> dict[tuple[str, str], Provision]:
        """Record ``job``'s SIDEPEND requirements; their provisions (keyed by jobuild and identity), locked."""
        keys = [(s["jobuild"], sidepend_identity(s)) for s in job.sidepends]
        provisions = self.lock(keys, {k: s.get("parameters") or {} for k, s in zip(keys, job.sidepends, strict=True)})
        Requirement.objects.bulk_create([
            Requirement(job=job, provision=provisions[k], atom=s["atom"], required_by=s["required_by"])
            for k, s in zip(keys, job.sidepends, strict=True)
        ])
        return provisions

    def mark_passed(self, jobuild: str, digest: str, result) -> Provision | None:
        """A passed result of ``jobuild`` at ``digest`` that had not passed before: its provision (made
        when missing) is passed. Returns it when that changed anything, None when another result
        passed it meanwhile. ``passed`` is a final state of a provision (nothing turns it back)."""
        provision = self.lock([(jobuild, digest)])[(jobuild, digest)]
        if provision.state == ProvisionState.PASSED:
            return None
        provision.state = ProvisionState.PASSED
        provision.passed_by = result
        provision.reason = ""
        provision.updated = timezone.now()
        provision.save()
        return provision

    def provider_ended(self, job) -> list[tuple[Provision, str]]:
        """``job`` ended without passing: the provisions it was running fail when it failed; after an
        infrastructure error or a cancel (which say nothing of the jobuild) a later job tries anew.
        Returns each provision changed (locked) with the sentence its waiters are told."""
        changed = []
        ids = list(self.filter(provider=job).values_list("id", flat=True))
        for provision in self.select_for_update().filter(id__in=ids).order_by("jobuild", "digest"):
            if provision.state == ProvisionState.PASSED:
                continue
            if job.state == JobState.FAILED:
                provision.state = ProvisionState.FAILED
            else:
                provision.state = ProvisionState.PENDING
                provision.provider = None
            provision.reason = f"job #{job.pk} {job.state}" + (f": {job.reason}" if job.reason else "")
            provision.updated = timezone.now()
            provision.save()
            changed.append((provision, f"SIDEPEND {provision.jobuild} {job.state} in job #{job.pk}"
                            + (f": {job.reason}" if job.reason else "")))
        return changed

    def adopt(self, job) -> None:
        """A requeued job of the master's takes back the provisions it runs that had failed."""
        self.filter(provider=job, state=ProvisionState.FAILED).update(state=ProvisionState.PENDING,
                                                                       reason="", updated=timezone.now())


def sidepend_identity(s: dict) -> str:
    """A SIDEPEND requirement's key: its content digest, with its parameter values folded in."""
    from autotua.params import identity

    return s.get("identity") or identity(s["digest"], s.get("parameters") or {})


class Provision(models.Model):
    jobuild = models.CharField(max_length=255)
    digest = models.CharField(max_length=64, help_text="the content digest, with the parameter values folded in "
                                                       "when it takes any (autotua.params.identity)")
    parameters = models.JSONField(default=dict, blank=True, help_text="the values it must pass with")
    state = models.CharField(max_length=8, choices=ProvisionState.choices, default=ProvisionState.PENDING)
    provider = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="provides", help_text="the job the master runs to make it pass")
    passed_by = models.ForeignKey("jobs.JobuildResult", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    reason = models.TextField(blank=True)
    updated = models.DateTimeField(default=timezone.now)

    objects = ProvisionQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["jobuild", "digest"], name="provision_unique")]
        ordering = ["jobuild", "digest"]

    def __str__(self) -> str:
        return f"{self.jobuild} ({self.digest[:12]})"

    def why_failed(self) -> str:
        return f"SIDEPEND {self.jobuild} failed" + (f" ({self.reason})" if self.reason else "")

    def waiting_jobs(self, states=(JobState.WAITING,)) -> list[int]:
        """The ids of the jobs in ``states`` that need this provision, in order (the order they are
        locked in)."""
        return sorted(set(self.requirements.filter(job__state__in=states).values_list("job_id", flat=True)))


class Requirement(models.Model):
    """One SIDEPEND of one job: ``atom`` (as written by ``required_by``) resolved to a provision."""

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="requirements")
    provision = models.ForeignKey(Provision, on_delete=models.PROTECT, related_name="requirements")
    atom = models.CharField(max_length=255)
    required_by = models.CharField(max_length=255)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.required_by} SIDEPEND {self.atom}"


def find_cycle(start: int) -> list[int]:
    """The ids of the jobs of a waiting cycle through job ``start`` (job -> pending provision -> its
    provider -> ...), or []."""
    def providers(job_id: int) -> list[int]:
        return list(Requirement.objects.filter(job_id=job_id, job__state=JobState.WAITING)
                    .exclude(provision__state=ProvisionState.PASSED)
                    .exclude(provision__provider=None)
                    .values_list("provision__provider_id", flat=True).distinct())

    path: list[int] = [start]
    seen: set[int] = set()

    def walk(job_id: int) -> list[int] | None:
        for nxt in providers(job_id):
            if nxt == start:
                return list(path)
            if nxt in seen or len(path) > MAX_DEPTH * 4:
                continue
            seen.add(nxt)
            path.append(nxt)
            found = walk(nxt)
            if found:
                return found
            path.pop()
        return None

    return walk(start) or []
