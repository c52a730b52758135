"""The branch (and optionally a distfiles mirror) served read-only over HTTP."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import branch
from .static import serve


@method_decorator(csrf_exempt, name="dispatch")
class BranchView(View):
    """``brz branch http://master/tree/`` and ``brz pull``: only the branch's ``.bzr`` is served.

    breezy first tries its smart protocol with a POST to ``.bzr/smart``; that is answered 405 (read
    only), and breezy goes on with plain HTTP. Exempt from CSRF (nothing here changes anything), so
    that probe is not logged as a forgery attempt on every sync.
    """

    http_method_names = ["get", "head"]

    def get(self, request, path: str):
        return serve(request, branch.branch_path(), path, allowed_first=(".bzr",))


class DistfilesView(View):
    """``AUTOTUA_DISTFILES_DIR`` at /distfiles/, for sites that mirror SRC_URI files themselves."""

    http_method_names = ["get", "head"]

    def get(self, request, path: str):
        if not settings.AUTOTUA_DISTFILES_DIR:
            raise Http404("this master serves no distfiles")
        return serve(request, Path(settings.AUTOTUA_DISTFILES_DIR), path)
