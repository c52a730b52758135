"""Everything the job page shows, gathered in a few queries: the runs, the plan as rows with each
jobuild's status in the chosen run, the SIDEPEND requirements and what satisfies each."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404

from autotua_master.jobs.models import Attachment, Job, JobState, JobuildResult, LogFile, Requirement, Run, RunInputs
from autotua_master.jobs.models.states import FINAL, REVALIDATABLE, RunEnd

from .. import ansi

EXCERPT_LINES = 40
EXCERPT_BYTES = 16 * 1024


@dataclass
class PlanRow:
    entry: dict  # the plan entry as validated (jobuild, digest, description, ...)
    status: str  # passed, failed, running, cancelled, interrupted, pending, not-run, invalid
    result: JobuildResult | None = None
    log: LogFile | None = None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.entry["index"]

    @property
    def phases(self) -> list[dict]:
        """The result's phases; for a jobuild still running or stopped before its result (cancelled, its
        slave lost), the phases its log shows it began, the last one as it stands."""
        if self.result:
            return self.result.phases
        if self.log and self.log.phases and self.status in ("running", "cancelled", "interrupted"):
            names = [p["name"] for p in self.log.phases]
            return [{"name": n, "status": "ran"} for n in names[:-1]] + [{"name": names[-1], "status": self.status}]
        return []

    @property
    def phase(self) -> str | None:
        """The phase a running jobuild is in (from its log's headers)."""
        return self.log.current_phase if self.log and self.status == "running" else None

    @property
    def failed_phase(self) -> str | None:
        return next((p.get("name") for p in self.phases if p.get("status") == "failed"), None)

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
class Excerpt:
    """The last lines of a failed jobuild's log, as HTML (colours kept, everything escaped)."""

    row: PlanRow
    html: str
    lines: int
    truncated: bool  # the log has more before these lines


@dataclass
class JobPage:
    job: Job
    runs: list[Run]
    run: Run | None
    rows: list[PlanRow]
    sidepends: list[SidependRow]
    waiters: list[Job]  # jobs whose SIDEPEND this (automatic) job provides
    excerpt: Excerpt | None = None

    @property
    def current(self) -> PlanRow | None:
        """The jobuild a running job is at."""
        return next((r for r in self.rows if r.status == "running"), None)

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
    rows = plan_rows(job, run)
    return JobPage(job=job, runs=runs, run=run, rows=rows, sidepends=sidepend_rows(job), waiters=waiters(job),
                   excerpt=excerpt(rows))


def excerpt(rows: list[PlanRow]) -> Excerpt | None:
    """The tail of the failed jobuild's log (the last EXCERPT_LINES lines, at most EXCERPT_BYTES)."""
    row = next((r for r in rows if r.status == "failed"), None)
    if row is None or row.log is None or not row.log.size:
        return None
    try:
        with open(row.log.path, "rb") as f:
            start = max(row.log.size - EXCERPT_BYTES, 0)
            f.seek(start)
            data = f.read(row.log.size - start)
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").split("\n")
    if start:
        lines = lines[1:]  # begin at a whole line
    if lines and lines[-1] == "":
        lines.pop()
    shown = lines[-EXCERPT_LINES:]
    return Excerpt(row, ansi.to_html("\n".join(shown) + "\n"), len(shown), bool(start) or len(lines) > len(shown))


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
        elif run is not None and not run.live and not failed and i == len(results) and i in logs:
            # it ran, and its run ended before its result: cancelled, or its slave lost
            status = "cancelled" if run.end == RunEnd.CANCELLED else "interrupted"
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
