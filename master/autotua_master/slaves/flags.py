"""Slaves that may be broken: none of their last N runs passed, while other slaves passed the same work.

A slave with a broken toolchain, a full disk or flaky memory fails whatever it is given; a second
opinion (autotua_master.groups) catches it one job at a time, this catches the slave. *The same
work* is the root jobuild at the same content digest with the same parameter values (its SIDEPEND
identity). A flag is shown to the slave's owner and staff on the slaves' pages; it goes away by
itself once the slave passes something again.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from autotua.params import identity


def _work(plan: list) -> tuple[str, str] | None:
    if not plan:
        return None
    root = plan[-1]
    return root["jobuild"], identity(root["digest"], root.get("parameters") or {})


def flagged(slave_ids: list[int], n: int | None = None) -> dict[int, str]:
    """slave id -> why it is flagged, for those of ``slave_ids`` that are (three queries)."""
    from autotua_master.jobs.models import JobuildResult, Run

    n = n or settings.AUTOTUA_FLAG_AFTER_RUNS
    if not slave_ids:
        return {}
    recent = (Run.objects.filter(slave_id__in=slave_ids, ended__isnull=False)
              .annotate(nth=Window(RowNumber(), partition_by=[F("slave_id")], order_by=F("claimed").desc()))
              .filter(nth__lte=n).values("slave_id", "finish", "job__plan"))
    runs: dict[int, list[dict]] = {}
    for r in recent:
        runs.setdefault(r["slave_id"], []).append(r)
    suspects: dict[int, set[tuple[str, str]]] = {}
    for sid, rs in runs.items():
        if len(rs) < n or any((r["finish"] or {}).get("request", {}).get("status") == "passed" for r in rs):
            continue
        suspects[sid] = {w for w in (_work(r["job__plan"]) for r in rs) if w}
    if not suspects:
        return {}
    jobuilds = {j for works in suspects.values() for j, _ in works}
    passed_by: dict[tuple[str, str], set[str]] = {}
    for r in (JobuildResult.objects.filter(status="passed", jobuild__in=jobuilds)
              .values("jobuild", "digest", "index", "job__plan", "run__slave_id", "run__slave__name")):
        plan = r["job__plan"]
        if not plan or r["index"] != len(plan) - 1:
            continue  # a passed DEPEND of some job, not that job's root
        key = (r["jobuild"], identity(r["digest"], plan[-1].get("parameters") or {}))
        passed_by.setdefault(key, set()).add((r["run__slave_id"], r["run__slave__name"]))
    out = {}
    for sid, works in suspects.items():
        others = sorted({name for w in works for other, name in passed_by.get(w, ()) if other != sid})
        if others:
            out[sid] = (f"none of its last {n} runs passed, while {', '.join(others[:3])}"
                        f"{' and others' if len(others) > 3 else ''} passed the same work")
    return out
