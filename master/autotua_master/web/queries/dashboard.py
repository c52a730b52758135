"""The dashboard: jobs by state, what runs where, slaves online, recent failures."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from autotua_master.jobs.models import Job, JobState, LogFile, Run

from . import slaves as slave_queries


@dataclass
class Running:
    run: Run
    jobuild: dict | None  # the plan entry it is at
    done: int  # jobuilds reported
    phase: str | None = None  # the phase it is in (its log's last header)


def dashboard(recent: int = 10) -> dict:
    counts = dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by())
    by_state = [(state, counts.get(state, 0)) for state in JobState.values]
    running = []
    runs = list(Run.objects.live().select_related("job", "slave").annotate(done=Count("results")).order_by("claimed"))
    phases = {(lg.run_id, lg.index): lg.current_phase for lg in LogFile.objects.filter(run__in=runs)}
    for run in runs:
        plan = run.job.plan
        running.append(Running(run, plan[run.done] if run.done < len(plan) else None, run.done,
                               phases.get((run.pk, run.done))))
    failures = list(Job.objects.filter(state__in=[JobState.FAILED, JobState.ERROR])
                    .select_related("owner").order_by("-finished", "-id")[:recent])
    return {"by_state": by_state, "total": sum(counts.values()), "running": running,
            "online": slave_queries.online(), "failures": failures}
