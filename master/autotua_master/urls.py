"""The site: the API under /api/v1/, the tree under /tree/, the admin, and (later) the web UI."""

from django.conf import settings
from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.defaults import page_not_found

from autotua_master.tree import push as tree_push
from autotua_master.tree import views as tree_views

urlpatterns = [
    path("api/v1/", include("autotua_master.api.urls")),
    re_path(r"^tree/push/(?P<path>.*)$", tree_push.PushView.as_view(), name="tree-push"),
    re_path(r"^tree/(?P<path>.*)$", tree_views.BranchView.as_view(), name="tree"),
    re_path(r"^distfiles/(?P<path>.*)$", tree_views.DistfilesView.as_view(), name="distfiles"),
    path("admin/", admin.site.urls),
    path("", include("autotua_master.web.urls")),
]



def handler404(request, exception=None):
    """JSON for the API (a client reads ``code``), Django's page for the rest."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no such endpoint: {request.path}", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


admin.site.site_header = "AutotuA master"
admin.site.site_title = "AutotuA"
if settings.DEBUG:  # pragma: no cover
    admin.site.site_header += " (DEBUG)"
