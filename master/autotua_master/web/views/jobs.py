"""Jobs: the list, a job's page and graph, creating, re-validating and cancelling."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from autotua.tree import TreeError
from autotua_master.jobs.errors import JobError
from autotua_master.jobs.models import Job
from autotua_master.slaves.models import Slave

from .. import graph
from ..forms import CancelForm, JobCreateForm, JobFilterForm, RevalidateForm
from ..permissions import can_change_job, can_create_jobs
from ..queries import tree as tree_queries
from ..queries.jobpage import job_page

PAGE_SIZE = 50


def job_list(request):
    form = JobFilterForm(request.GET or None)
    qs = Job.objects.select_related("owner", "revision").order_by("-id")
    if request.GET:
        qs = form.apply(qs)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "web/job_list.html", {
        "form": form, "page": page, "query": query.urlencode(),
        "owners": Job.objects.exclude(owner=None).values_list("owner__username", flat=True).distinct().order_by(
            "owner__username"),
        "slaves": Slave.objects.values_list("name", flat=True), "arches": _arches()})


def _arches() -> list[str]:
    return sorted(set(Job.objects.values_list("arch", flat=True).distinct())
                  | set(Slave.objects.values_list("arch", flat=True).distinct()))


def _flavours() -> list[str]:
    found = {"openrc", "systemd", "musl"}
    for fl in Slave.objects.values_list("flavours", flat=True):
        found.update(fl or [])
    return sorted(found)


def job_detail(request, job_id: int):
    page = job_page(job_id, request.GET.get("run"))
    svg, graph_error = None, None
    if page.job.plan:
        try:
            svg = graph.job_svg(page)
        except graph.GraphUnavailable as e:
            graph_error = str(e)
    can_change = can_change_job(request.user, page.job)
    ctx = {"p": page, "job": page.job, "svg": svg, "graph_error": graph_error, "can_change": can_change,
           "can_delete": can_change and page.job.deletable,
           "can_rerun": can_create_jobs(request.user) and page.job.rerunnable,
           "reruns": list(page.job.reruns.order_by("id"))}
    if can_change and page.revalidatable:
        ctx["revalidate_form"] = RevalidateForm(tip=tree_queries.tip(), indexed=tree_queries.indexed_revisions())
    if can_change and not page.final:
        ctx["cancel_form"] = CancelForm()
    return render(request, "web/job_detail.html", ctx)


def job_graph(request, job_id: int):
    page = job_page(job_id, request.GET.get("run"))
    try:
        svg = graph.job_svg(page)
    except graph.GraphUnavailable as e:
        return HttpResponse(str(e), status=503, content_type="text/plain; charset=utf-8")
    return HttpResponse(svg, content_type="image/svg+xml")


@login_required
def job_create(request):
    if not can_create_jobs(request.user):
        raise PermissionDenied("only maintainers (users with a recorded key) and staff create jobs")
    tip = tree_queries.tip()
    indexed = tree_queries.indexed_revisions()
    initial = {"arch": settings.AUTOTUA_DEFAULT_ARCH, "atom": request.GET.get("atom", "")}
    form = JobCreateForm(request.POST or None, tip=tip, indexed=indexed, initial=initial)
    if request.method == "POST" and form.is_valid():
        job = form.save(request.user)
        if job is not None:
            messages.success(request, f"job #{job.pk} created: {job.state}")
            return redirect("web:job", job.pk)
    return render(request, "web/job_create.html", {
        "form": form, "atoms": tree_queries.atom_suggestions(tip), "arches": _arches(),
        "flavours": _flavours(), "tip": tip}, status=400 if form.errors else 200)


def _changeable(request, job_id: int) -> Job:
    job = get_object_or_404(Job, pk=job_id)
    if not can_change_job(request.user, job):
        raise PermissionDenied("only the job's owner or staff may change it")
    return job


@require_POST
@login_required
def job_revalidate(request, job_id: int):
    job = _changeable(request, job_id)
    form = RevalidateForm(request.POST, tip=tree_queries.tip(), indexed=tree_queries.indexed_revisions())
    if not form.is_valid():
        messages.error(request, f"re-validate: {form.errors.as_text()}")
    else:
        try:
            job.revalidate(form.cleaned_data["revision"] or None)
            messages.success(request, f"job #{job.pk} re-validated against r{job.revision.revno}: {job.state}")
        except (JobError, TreeError) as e:
            messages.error(request, str(e))
    return redirect("web:job", job.pk)


@require_POST
@login_required
def job_cancel(request, job_id: int):
    job = _changeable(request, job_id)
    form = CancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        job.cancel(by=request.user.username, reason=reason)
        messages.success(request, f"job #{job.pk} cancelled")
    except JobError as e:
        messages.error(request, str(e))
    return redirect("web:job", job.pk)


@require_POST
@login_required
def job_delete(request, job_id: int):
    """Delete a job that never started (its owner or staff)."""
    job = _changeable(request, job_id)
    try:
        job.remove(request.user)
    except JobError as e:
        messages.error(request, str(e))
        return redirect("web:job", job.pk)
    messages.success(request, f"job #{job_id} {job.root} deleted")
    return redirect("web:jobs")


@require_POST
@login_required
def job_rerun(request, job_id: int):
    """A new job with this one's pins, for whoever may create jobs."""
    if not can_create_jobs(request.user):
        raise PermissionDenied("only maintainers (users with a recorded key) and staff rerun jobs")
    job = get_object_or_404(Job, pk=job_id)
    try:
        new = job.rerun(request.user)
    except (JobError, TreeError) as e:
        messages.error(request, str(e))
        return redirect("web:job", job.pk)
    messages.success(request, f"job #{job.pk} rerun as #{new.pk}: {new.state}")
    return redirect("web:job", new.pk)
