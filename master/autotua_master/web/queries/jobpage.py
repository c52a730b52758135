"""Everything the job page shows, gathered in a few queries: the runs, the plan as rows with each
jobuild's status in the chosen run, the SIDEPEND requirements and what satisfies each."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404

from autotua_master.jobs.models import Attachment, Job, JobState, JobuildResult, LogFile, Requirement, RunInputs
from autotua_master.jobs.models.job import FINAL, REVALIDATABLE
from autotua_master.slaves.models import Run


@dataclass
class PlanRow:
    entry: dict  # the plan entry as validated (jobuild, digest, description, ...)
    status: str  # passed, failed, running, pending, not-run, invalid
    result: JobuildResult | None = None
    log: LogFile | None = None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.entry["index"]

    @property
    def phases(self) -> list[dict]:
        return self.result.phases if self.result else []

    @property
    def values(self) -> list[tuple[str, str]]:
        return sorted(self.result.results.items()) if self.result else []


@dataclass
class SidependRow:
    requirement: dict  # atom, jobuild, digest, required_by
    state: str  # pending, passed, failed (the provision's), or unlinked
    provider: Job | None = None  # the master's job for it
    passed_by: JobuildResult | None = None  # the result that satisfied it (any job, any slave)
    reason: str = ""


@dataclass
class JobPage:
    job: Job
    runs: list[Run]
    run: Run | None
    rows: list[PlanRow]
    sidepends: list[SidependRow]
    waiters: list[Job]  # jobs whose SIDEPEND this (automatic) job provides

    def status_of(self, jobuild: str) -> str | None:
        return next((r.status for r in self.rows if r.entry["jobuild"] == jobuild), None)

    @property
    def final(self) -> bool:
        return self.job.state in FINAL

    @property
    def inputs(self) -> RunInputs | None:
        """What the chosen run was made of, as its slave recorded it."""
        if self.run is None:
            return None
        return RunInputs.objects.filter(run=self.run).first()

    @property
    def revalidatable(self) -> bool:
        return not self.job.frozen and self.job.state in REVALIDATABLE and not self.job.automatic

    @property
    def live(self) -> bool:
        """Something may still change on this page (it refreshes itself)."""
        return self.job.state in (JobState.WAITING, JobState.QUEUED, JobState.RUNNING)


def job_page(job_id: int, run_uuid: str | None = None) -> JobPage:
    job = Job.objects.select_related("owner", "revision", "group", "avoid_slave").filter(pk=job_id).first()
    if job is None:
        raise Http404(f"no job #{job_id}")
    runs = list(job.runs.select_related("slave").order_by("-claimed"))
    run = runs[0] if runs else None
    if run_uuid:
        run = next((r for r in runs if str(r.uuid) == run_uuid), None)
        if run is None:
            raise Http404(f"job #{job_id} has no run {run_uuid}")
    return JobPage(job=job, runs=runs, run=run, rows=plan_rows(job, run), sidepends=sidepend_rows(job),
                   waiters=waiters(job))


def plan_rows(job: Job, run: Run | None) -> list[PlanRow]:
    results = {r.index: r for r in run.results.all()} if run else {}
    logs = {lg.index: lg for lg in run.logs.all()} if run else {}
    atts: dict[int, list[Attachment]] = {}
    for a in (run.attachments.all() if run else []):
        atts.setdefault(a.index, []).append(a)
    rows = []
    failed = False
    for entry in job.plan:
        i = entry["index"]
        result = results.get(i)
        if job.state == JobState.INVALID:
            status = "invalid"
        elif result is not None:
            status = result.status
            failed = failed or status == "failed"
        elif run is not None and run.live and not failed and i == len(results):
            status = "running"
        elif failed or job.state in FINAL or (run is not None and not run.live):
            status = "not-run"
        else:
            status = "pending"
        rows.append(PlanRow(entry, status, result, logs.get(i), atts.get(i, [])))
    return rows


def sidepend_rows(job: Job) -> list[SidependRow]:
    reqs = {(r.required_by, r.atom): r for r in Requirement.objects.filter(job=job)
            .select_related("provision__provider", "provision__passed_by__run__slave",
                            "provision__passed_by__job")}
    rows = []
    for s in job.sidepends:
        r = reqs.get((s["required_by"], s["atom"]))
        if r is None:
            rows.append(SidependRow(s, "unlinked"))
            continue
        p = r.provision
        rows.append(SidependRow(s, p.state, p.provider, p.passed_by, p.reason))
    return rows


def waiters(job: Job) -> list[Job]:
    if not job.automatic:
        return []
    return list(Job.objects.filter(requirements__provision__provider=job).distinct().order_by("id"))


def current_jobuild(run: Run) -> dict | None:
    """The plan entry a live run is at: the one after its last result."""
    done = run.results.count()
    plan = run.job.plan
    return plan[done] if done < len(plan) else None
