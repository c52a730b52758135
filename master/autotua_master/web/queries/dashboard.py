"""The dashboard: jobs by state, what runs where, slaves online, recent failures."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from autotua_master.jobs.models import Job, JobState, Run

from . import slaves as slave_queries


@dataclass
class Running:
    run: Run
    jobuild: dict | None  # the plan entry it is at
    done: int  # jobuilds reported


def dashboard(recent: int = 10) -> dict:
    counts = dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by())
    by_state = [(state, counts.get(state, 0)) for state in JobState.values]
    running = []
    for run in Run.objects.live().select_related("job", "slave").annotate(done=Count("results")).order_by("claimed"):
        plan = run.job.plan
        running.append(Running(run, plan[run.done] if run.done < len(plan) else None, run.done))
    failures = list(Job.objects.filter(state__in=[JobState.FAILED, JobState.ERROR])
                    .select_related("owner").order_by("-finished", "-id")[:recent])
    return {"by_state": by_state, "total": sum(counts.values()), "running": running,
            "online": slave_queries.online(), "failures": failures}
