"""A group as a matrix of cells, each a verdict over its job and the second opinion: what the group's
page, its API resource and its report all show, gathered in a handful of queries for any size.

A cell's verdict:

==============  ==================================================================================
``passed``      its job passed
``failed``      it failed on two slaves, or on one when no other slave could give a second opinion
``disputed``    it failed on one slave and passed on another ("failed on X only, passed on Y")
``checking``    it failed; the second opinion is queued or running (never on the same slave)
``waiting``, ``queued``, ``running``, ``error``, ``cancelled``, ``invalid``: the job's own state
==============  ==================================================================================

How a job failed: the arch-test jobuild says it in its results (``archtest.failure``: fetch,
compile, test, install, ...; ``archtest.package``, ``archtest.phase``), as tatt classifies a failed
emerge; any other jobuild's failure is named by the phase that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autotua_master.jobs.models import Attachment, Job, JobuildResult, Run, RunInputs

from .models import Group

ACTIVE = ("waiting", "queued", "running", "checking")
#: the attachment label the arch-test jobuild gives its ``emerge --info``
EMERGE_INFO = "emerge --info"


@dataclass
class Attempt:
    """One job of a cell: the first, or its second opinion."""

    job: int
    state: str
    reason: str
    slave: str = ""
    run: str = ""
    failure: str = ""  # how it failed: test, compile, ... or the phase
    detail: str = ""  # the failing package and phase, the message
    failed_index: int | None = None

    def describe(self) -> str:
        return self.failure or "failed"


@dataclass
class Cell:
    row: int
    arch: str
    flavour: str
    first: Attempt
    second: Attempt | None = None
    verdict: str = ""
    text: str = ""

    @property
    def attempts(self) -> list[Attempt]:
        return [self.first] + ([self.second] if self.second else [])

    @property
    def failed_attempt(self) -> Attempt | None:
        return self.first if self.first.state == "failed" else None


@dataclass
class SlaveInfo:
    """A slave that ran jobs of the group: its stage3 and where its ``emerge --info`` is."""

    name: str
    arch: str
    flavour: str
    stage3: str = ""
    info_job: int | None = None
    info_run: str = ""
    info_index: int | None = None
    info_name: str = ""  # the attachment; "" when it came with the run's inputs
    inline: bool = False  # emerge --info is in the run's inputs (the job page shows it)


@dataclass
class Matrix:
    group: Group
    rows: list[dict]
    columns: list[tuple[str, str]]
    cells: dict[tuple[int, str, str], Cell] = field(default_factory=dict)
    slaves: list[SlaveInfo] = field(default_factory=list)

    def cell(self, row: int, arch: str, flavour: str) -> Cell | None:
        return self.cells.get((row, arch, flavour))

    def row_cells(self, row: int) -> list[Cell | None]:
        return [self.cell(row, a, f) for a, f in self.columns]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells.values():
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return dict(sorted(out.items()))

    @property
    def state(self) -> str:
        return summarise([c.verdict for c in self.cells.values()])

    @property
    def live(self) -> bool:
        return any(c.verdict in ACTIVE for c in self.cells.values())


def summarise(verdicts: list[str]) -> str:
    """The group's state from its cells' verdicts: running or queued while any is; then failed, error,
    cancelled, disputed, passed, the first that any cell has."""
    present = set(verdicts)
    if present & {"running", "checking"}:
        return "running"
    if present & {"waiting", "queued"}:
        return "queued"
    for state in ("failed", "error", "invalid", "cancelled", "disputed"):
        if state in present:
            return "error" if state == "invalid" else state
    return "passed" if present else "empty"


def classify(result: dict) -> tuple[str, str]:
    """(how, detail) a failed jobuild result failed."""
    values = result.get("results") or {}
    if values.get("archtest.failure"):
        where = " ".join(v for v in (values.get("archtest.package", ""), values.get("archtest.phase", "")) if v)
        detail = "; ".join(v for v in (where, values.get("archtest.message", "")) if v)
        return values["archtest.failure"], detail
    phase = next((p.get("name") for p in result.get("phases") or [] if p.get("status") == "failed"), "")
    return (phase or "failed"), result.get("jobuild", "")


def verdict(cell: Cell, second_opinions: bool) -> tuple[str, str]:
    first, second = cell.first, cell.second
    if first.state != "failed":
        text = first.state
        if first.state == "error" and first.reason:
            text = f"error: {first.reason}"
        elif first.state == "running" and first.slave:
            text = f"running on {first.slave}"
        return first.state, text
    how = f"failed ({first.describe()}) on {first.slave or 'a slave'}"
    if second is None:
        if second_opinions:
            return "failed", f"{how}; no other slave could give a second opinion"
        return "failed", how
    if second.state in ("waiting", "queued", "running"):
        where = f" on {second.slave}" if second.slave and second.state == "running" else ""
        return "checking", f"{how}; second opinion {second.state}{where}"
    if second.state == "passed":
        return "disputed", f"{how} only, passed on {second.slave or 'another slave'}"
    if second.state == "failed":
        again = "" if second.describe() == first.describe() else f" ({second.describe()})"
        return "failed", f"failed ({first.describe()}) on 2 slaves: {first.slave}, {second.slave}{again}"
    return "failed", f"{how}; the second opinion ended {second.state}"


def load(group: Group) -> Matrix:
    """The group's matrix (five queries, whatever its size)."""
    m = Matrix(group, list(group.rows), [tuple(c) for c in group.columns])
    jobs = list(Job.objects.filter(group=group).order_by("id").values(
        "id", "row", "arch", "stage3", "state", "reason", "second_opinion_of_id"))
    latest: dict[int, dict] = {}
    for r in Run.objects.filter(job__group=group).order_by("claimed").values(
            "job_id", "uuid", "slave__name", "slave__arch"):
        latest[r["job_id"]] = r
    failures: dict[int, tuple[str, str, int]] = {}
    for r in JobuildResult.objects.filter(job__group=group, status="failed").order_by("received").values(
            "job_id", "run__uuid", "index", "jobuild", "phases", "results"):
        run = latest.get(r["job_id"])
        if run is not None and run["uuid"] == r["run__uuid"]:
            how, detail = classify(r)
            failures[r["job_id"]] = (how, detail, r["index"])

    def attempt(j: dict) -> Attempt:
        run = latest.get(j["id"]) or {}
        how, detail, index = failures.get(j["id"], ("", "", None))
        return Attempt(j["id"], j["state"], j["reason"], run.get("slave__name", ""), str(run.get("uuid", "") or ""),
                       how, detail, index)

    seconds = {j["second_opinion_of_id"]: attempt(j) for j in jobs if j["second_opinion_of_id"]}
    for j in jobs:
        if j["second_opinion_of_id"]:
            continue
        cell = Cell(j["row"], j["arch"], j["stage3"], attempt(j), seconds.get(j["id"]))
        cell.verdict, cell.text = verdict(cell, group.second_opinion)
        m.cells[(cell.row, cell.arch, cell.flavour)] = cell
    m.slaves = _slaves(group)
    return m


def states_of(group_ids: list[int]) -> dict[int, tuple[str, dict[str, int]]]:
    """(state, counts of verdicts) of many groups in one query (the group list): verdicts from the
    jobs' states alone, without the slaves' names."""
    rows: dict[int, list[dict]] = {}
    for j in Job.objects.filter(group_id__in=group_ids).order_by("id").values(
            "id", "group_id", "row", "arch", "stage3", "state", "second_opinion_of_id"):
        rows.setdefault(j["group_id"], []).append(j)
    seconds_on = dict(Group.objects.filter(pk__in=group_ids).values_list("pk", "second_opinion"))
    out = {}
    for gid in group_ids:
        jobs = rows.get(gid, [])
        seconds = {j["second_opinion_of_id"]: j for j in jobs if j["second_opinion_of_id"]}
        found: dict[tuple, str] = {}
        for j in jobs:
            if j["second_opinion_of_id"]:
                continue
            s = seconds.get(j["id"])
            cell = Cell(j["row"], j["arch"], j["stage3"], Attempt(j["id"], j["state"], ""),
                        Attempt(s["id"], s["state"], "") if s else None)
            found[(j["row"], j["arch"], j["stage3"])] = verdict(cell, seconds_on.get(gid, False))[0]
        counts: dict[str, int] = {}
        for v in found.values():
            counts[v] = counts.get(v, 0) + 1
        out[gid] = (summarise(list(found.values())), dict(sorted(counts.items())))
    return out


def _slaves(group: Group) -> list[SlaveInfo]:
    """Each slave that ran the group's jobs, by (name, arch, flavour), with its stage3 and emerge --info."""
    found: dict[tuple[str, str, str], SlaveInfo] = {}
    for r in RunInputs.objects.filter(run__job__group=group).order_by("received").values(
            "run__slave__name", "run__job__arch", "run__job__stage3", "run__job_id", "run__uuid", "stage3",
            "emerge_info"):
        key = (r["run__slave__name"], r["run__job__arch"], r["run__job__stage3"])
        info = found.setdefault(key, SlaveInfo(*key))
        info.stage3 = info.stage3 or (r["stage3"] or {}).get("name", "")
        if r["emerge_info"] and not info.inline:
            info.inline, info.info_job, info.info_run = True, r["run__job_id"], str(r["run__uuid"])
    for a in Attachment.objects.filter(run__job__group=group, label=EMERGE_INFO).order_by("created").values(
            "run__slave__name", "run__job__arch", "run__job__stage3", "run__job_id", "run__uuid", "index", "name"):
        key = (a["run__slave__name"], a["run__job__arch"], a["run__job__stage3"])
        info = found.setdefault(key, SlaveInfo(*key))
        if not info.inline and not info.info_name:
            info.info_job, info.info_run, info.info_index, info.info_name = (
                a["run__job_id"], str(a["run__uuid"]), a["index"], a["name"])
    return sorted(found.values(), key=lambda s: (s.arch, s.flavour, s.name))
