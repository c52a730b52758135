"""Slaves: the list, a slave's page, and what a volunteer does with their own (add, adopt, new token,
revoke)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from autotua_master.slaves.models import Slave, SlaveState

from ..forms import AdoptSlaveForm, SlaveCreateForm
from ..permissions import can_manage_slave
from ..queries import slaves as q


def _flag(request, slaves) -> None:
    """``flag``: why a slave is flagged, for the slaves the person may see it of (their own; staff: all)."""
    from autotua_master.slaves.flags import flagged

    mine = [s.pk for s in slaves if can_manage_slave(request.user, s)]
    flags = flagged(mine)
    for s in slaves:
        s.flag = flags.get(s.pk, "")


def slave_list(request):
    slaves = q.decorate(q.with_stats())
    _flag(request, slaves)
    mine = [s for s in slaves if request.user.is_authenticated and s.owner_id == request.user.pk]
    return render(request, "web/slave_list.html", {"slaves": slaves, "mine": mine})


def slave_detail(request, slave_id: int):
    slave = q.decorate(q.with_stats(Slave.objects.filter(pk=slave_id)))
    if not slave:
        raise Http404(f"no slave {slave_id}")
    slave = slave[0]
    _flag(request, [slave])
    runs = slave.runs.select_related("job").order_by("-claimed")[:50]
    manage = can_manage_slave(request.user, slave)
    return render(request, "web/slave_detail.html", {"slave": slave, "runs": runs, "can_manage": manage,
                                                     "trust": q.trust_of(slave) if manage else None})


@login_required
def slave_create(request):
    form = SlaveCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        slave, token = form.save(request.user)
        return _token_page(request, slave, token, new=True)
    return render(request, "web/slave_create.html", {"form": form, "adopt": AdoptSlaveForm(user=request.user)},
                  status=400 if form.errors else 200)


@login_required
def slave_adopt(request):
    form = AdoptSlaveForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        slave = form.save()
        messages.success(request, f"slave {slave.name} is yours now")
        return redirect("web:slave", slave.pk)
    return render(request, "web/slave_create.html", {"form": SlaveCreateForm(), "adopt": form},
                  status=400 if form.errors else 200)


def _managed(request, slave_id: int) -> Slave:
    slave = get_object_or_404(Slave, pk=slave_id)
    if not can_manage_slave(request.user, slave):
        raise PermissionDenied("only the slave's owner or staff may manage it")
    return slave


@require_POST
@login_required
def slave_new_token(request, slave_id: int):
    slave = _managed(request, slave_id)
    return _token_page(request, slave, slave.new_token(), new=False)


def _token_page(request, slave: Slave, token: str, *, new: bool):
    """The one time a token is shown: never kept by a cache or the browser's history."""
    resp = render(request, "web/slave_token.html", {"slave": slave, "token": token, "new": new})
    resp["Cache-Control"] = "no-store"
    return resp


@require_POST
@login_required
def slave_revoke(request, slave_id: int):
    slave = _managed(request, slave_id)
    if slave.state != SlaveState.REVOKED:
        slave.revoke()
        messages.success(request, f"slave {slave.name} revoked: its token no longer works")
    return redirect("web:slave", slave.pk)
