"""Groups: the list, a group's matrix (live), its report, arch testing from a package list, cancel, rerun."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from autotua_master.groups import actions, cells, report
from autotua_master.groups.models import Group
from autotua_master.jobs.models.job import JobError

from ..forms import ArchTestForm, CancelForm
from ..permissions import can_create_jobs

PAGE_SIZE = 50


def group_list(request):
    page = Paginator(Group.objects.select_related("owner", "revision").order_by("-id"), PAGE_SIZE).get_page(
        request.GET.get("page"))
    states = cells.states_of([g.pk for g in page.object_list])
    for g in page.object_list:
        g.state, g.counts = states[g.pk]
    return render(request, "web/group_list.html", {"page": page})


def group_detail(request, group_id: int):
    group = get_object_or_404(Group.objects.select_related("owner", "revision"), pk=group_id)
    m = cells.load(group)
    rows = [{"index": i, "row": r, "cells": m.row_cells(i)} for i, r in enumerate(m.rows)]
    can_change = group.can_change(request.user)
    return render(request, "web/group_detail.html", {
        "group": group, "m": m, "rows": rows, "can_change": can_change,
        "cancel_form": CancelForm() if can_change and m.live else None,
        "report": report.as_text(m, request.build_absolute_uri("/"))})


def group_report(request, group_id: int):
    group = get_object_or_404(Group.objects.select_related("revision"), pk=group_id)
    text = report.as_text(cells.load(group), request.build_absolute_uri("/"))
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@login_required
def archtest_create(request):
    if not can_create_jobs(request.user):
        raise PermissionDenied("only maintainers (users with a recorded key) and staff create jobs")
    form = ArchTestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group = form.save(request.user)
        if group is not None:
            messages.success(request, f"group #{group.pk} created: {group.jobs.count()} jobs")
            return redirect("web:group", group.pk)
    return render(request, "web/group_archtest.html", {"form": form}, status=400 if form.errors else 200)


def _changeable(request, group_id: int) -> Group:
    group = get_object_or_404(Group, pk=group_id)
    if not group.can_change(request.user):
        raise PermissionDenied("only the group's owner or staff may change it")
    return group


@require_POST
@login_required
def group_cancel(request, group_id: int):
    group = _changeable(request, group_id)
    form = CancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    n = actions.cancel_group(group, request.user.username, reason)
    messages.success(request, f"group #{group.pk}: {n} job(s) cancelled")
    return redirect("web:group", group.pk)


@require_POST
@login_required
def group_rerun(request, group_id: int):
    group = _changeable(request, group_id)
    try:
        made = actions.rerun_group(group, request.user)
        messages.success(request, f"group #{group.pk}: {len(made)} job(s) made again")
    except JobError as e:
        messages.error(request, str(e))
    return redirect("web:group", group.pk)
