"""A jobuild's log for people: the raw bytes with HTTP Range (the page asks for the tail first and
earlier parts on demand, then follows what is appended), or the whole file as a download.

Two headers tell the page where the log stands without another request: ``X-Log-Size`` (its length
now) and ``X-Log-Complete`` (``1`` once the jobuild's result is in or the run is over: it will not
grow). A log not begun yet is an empty 200.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse

from autotua_master.jobs.models import JobuildResult, LogFile, Run
from autotua_master.tree.static import serve


def find(job_id: int, run_uuid: str, index: int) -> tuple[Run, LogFile | None]:
    run = Run.objects.select_related("job", "slave").filter(job_id=job_id, uuid=run_uuid).first()
    if run is None:
        raise Http404(f"job #{job_id} has no run {run_uuid}")
    if not 0 <= index < len(run.job.plan):
        raise Http404(f"jobuild {index} is not in the plan of job #{job_id}")
    return run, LogFile.objects.filter(run=run, index=index).first()


def complete(run: Run, index: int) -> bool:
    return not run.live or JobuildResult.objects.filter(run=run, index=index).exists()


def response(request, run: Run, log: LogFile | None, index: int, *, download: bool = False):
    done = complete(run, index)
    if log is None or not log.path.exists():
        resp = HttpResponse(b"", content_type="text/plain; charset=utf-8")
        size = 0
    else:
        resp = serve(request, log.path.parent, log.path.name, content_type="text/plain; charset=utf-8")
        size = log.size
    if resp.status_code == 416:
        # "nothing new yet": the page asks every second while it follows; not a warning for the logs
        resp._has_been_logged = True
    resp["X-Log-Size"] = str(size)
    resp["X-Log-Complete"] = "1" if done else "0"
    resp["Cache-Control"] = "no-store"
    resp["X-Content-Type-Options"] = "nosniff"
    if download:
        entry = run.job.plan[index]
        name = f"job{run.job_id}-{entry['jobuild'].replace('/', '_')}-attempt{run.attempt}.log"
        resp["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp
