"""A jobuild's log: the page that follows it, the raw text (Range), and attachments."""

from __future__ import annotations

import json

from django.http import Http404
from django.shortcuts import render

from autotua_master.jobs.models import Attachment, JobuildResult
from autotua_master.jobs.models.states import RunEnd
from autotua_master.tree.static import serve

from .. import logs


def log_page(request, job_id: int, run: str, index: int):
    found, log = logs.find(job_id, str(run), index)
    phases, seen = [], set()
    for ph in log.phases if log else ():
        if ph["name"] not in seen:  # where each phase began: its first header
            seen.add(ph["name"])
            phases.append({"name": ph["name"], "offset": ph["offset"]})
    result = JobuildResult.objects.filter(run=found, index=index).first()
    failed, outcome = None, ""
    if result is not None:
        failed = next((p.get("name") for p in result.phases if p.get("status") == "failed"), None)
        outcome = "failed"
    elif not found.live and phases:
        failed, outcome = phases[-1]["name"], "cancelled" if found.end == RunEnd.CANCELLED else "interrupted"
    return render(request, "web/log.html", {
        "job": found.job, "run": found, "index": index, "entry": found.job.plan[index],
        "size": log.size if log else 0, "complete": logs.complete(found, index),
        "phases": phases, "phases_json": json.dumps(phases), "failed_phase": failed, "outcome": outcome})


def log_text(request, job_id: int, run: str, index: int):
    found, log = logs.find(job_id, str(run), index)
    return logs.response(request, found, log, index, download="download" in request.GET)


def attachment(request, job_id: int, run: str, index: int, name: str):
    att = Attachment.objects.select_related("run").filter(run__job_id=job_id, run__uuid=run, index=index,
                                                          name=name).first()
    if att is None:
        raise Http404(f"no attachment {name} of jobuild {index} in run {run} of job #{job_id}")
    resp = serve(request, att.path.parent, att.path.name)
    # never shown inline: an attachment is whatever a jobuild produced, HTML included
    resp["Content-Disposition"] = f'attachment; filename="{att.name}"'
    resp["X-Content-Type-Options"] = "nosniff"
    return resp
