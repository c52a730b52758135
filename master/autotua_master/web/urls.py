"""The web UI's pages (docs/web.md), mounted at the site root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from autotua_master import converters  # noqa: F401 (registers <id:...>)

from .views import dashboard, groups, jobs, logs, slaves, tree

app_name = "web"
log = "jobs/<id:job_id>/runs/<uuid:run>/jobuilds/<id:index>/"
urlpatterns = [
    path("", dashboard.dashboard_view, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # jobs
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/new", jobs.job_create, name="job-create"),
    path("jobs/<id:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<id:job_id>/graph.svg", jobs.job_graph, name="job-graph"),
    path("jobs/<id:job_id>/revalidate", jobs.job_revalidate, name="job-revalidate"),
    path("jobs/<id:job_id>/cancel", jobs.job_cancel, name="job-cancel"),
    path("jobs/<id:job_id>/delete", jobs.job_delete, name="job-delete"),
    path("jobs/<id:job_id>/rerun", jobs.job_rerun, name="job-rerun"),
    path(log + "log", logs.log_page, name="log"),
    path(log + "log.txt", logs.log_text, name="log-text"),
    path(log + "attachments/<str:name>", logs.attachment, name="attachment"),
    # groups
    path("groups/", groups.group_list, name="groups"),
    path("groups/archtest", groups.archtest_create, name="archtest-create"),
    path("groups/<id:group_id>/", groups.group_detail, name="group"),
    path("groups/<id:group_id>/report.txt", groups.group_report, name="group-report"),
    path("groups/<id:group_id>/cancel", groups.group_cancel, name="group-cancel"),
    path("groups/<id:group_id>/rerun", groups.group_rerun, name="group-rerun"),
    # slaves
    path("slaves/", slaves.slave_list, name="slaves"),
    path("slaves/new", slaves.slave_create, name="slave-create"),
    path("slaves/adopt", slaves.slave_adopt, name="slave-adopt"),
    path("slaves/<id:slave_id>/", slaves.slave_detail, name="slave"),
    path("slaves/<id:slave_id>/token", slaves.slave_new_token, name="slave-token"),
    path("slaves/<id:slave_id>/revoke", slaves.slave_revoke, name="slave-revoke"),
    # the tree (/tree/ itself serves the branch to slaves)
    path("browse/", tree.tree_index, name="tree"),
    path("browse/r<id:revno>/", tree.revision_detail, name="revision"),
    path("browse/maintainers/<str:name>/", tree.maintainer_detail, name="maintainer"),
    path("browse/jobuilds/<str:user>/<str:pv>/", tree.jobuild_detail, name="jobuild"),
]
