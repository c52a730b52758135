"""The tree browser: revisions and maintainers, a revision's jobuilds, a jobuild's page."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404, render

from autotua_master.tree.models import Maintainer

from ..queries import tree as q


def tree_index(request):
    return render(request, "web/tree_index.html", {"tip": q.tip(), "revisions": q.revisions(),
                                                   "maintainers": q.maintainers()})


def revision_detail(request, revno: int):
    rev = q.revision(revno)
    return render(request, "web/revision.html", {"rev": rev, "groups": q.by_user(rev)})


def maintainer_detail(request, name: str):
    m = get_object_or_404(Maintainer.objects.select_related("user"), name=name)
    tip = q.tip()
    jobuilds = [j for j in (tip.jobuilds if tip else []) if j["jobuild"].startswith(f"{m.name}/")]
    jobs = m.user.jobs.select_related("revision").order_by("-id")[:50]
    return render(request, "web/maintainer.html", {"m": m, "tip": tip, "jobuilds": jobuilds, "jobs": jobs})


def jobuild_detail(request, user: str, pv: str):
    revno = request.GET.get("r")
    if revno:
        if not revno.isdigit():
            raise Http404("r must be a revision number")
        rev = q.revision(int(revno))
    else:
        rev = q.tip()
        if rev is None:
            raise Http404("this master has no tree yet")
    return render(request, "web/jobuild.html", {"p": q.jobuild_page(f"{user}/{pv}", rev)})
