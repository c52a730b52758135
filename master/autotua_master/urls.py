"""The site: the API under /api/v1/, the tree under /tree/, the admin, and (later) the web UI."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from autotua_master.tree import views as tree_views

urlpatterns = [
    path("api/v1/", include("autotua_master.api.urls")),
    re_path(r"^tree/(?P<path>.*)$", tree_views.BranchView.as_view(), name="tree"),
    re_path(r"^distfiles/(?P<path>.*)$", tree_views.DistfilesView.as_view(), name="distfiles"),
    path("admin/", admin.site.urls),
    path("", include("autotua_master.web.urls")),
]

admin.site.site_header = "AutotuA master"
admin.site.site_title = "AutotuA"
if settings.DEBUG:  # pragma: no cover
    admin.site.site_header += " (DEBUG)"
