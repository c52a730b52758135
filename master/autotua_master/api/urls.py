from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from autotua_master import converters  # noqa: F401 (registers <id:...>)

from . import groups, inputs, jobs, root, slaves

router = SimpleRouter()
router.trailing_slash = "/?"  # /jobs/1/cancel and /jobs/1/cancel/ alike: no redirect that turns a POST into a GET
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("groups", groups.GroupViewSet, basename="group")

run = "runs/<str:run>/"
urlpatterns = [
    path("", root.ApiRoot.as_view(), name="api-root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("slaves/register", slaves.RegisterView.as_view(), name="slave-register"),
    path("slaves/me", slaves.MeView.as_view(), name="slave-me"),
    path("claim", slaves.ClaimView.as_view(), name="claim"),
    path(run + "heartbeat", slaves.HeartbeatView.as_view(), name="run-heartbeat"),
    path(run + "jobuilds/<id:index>/log", slaves.LogView.as_view(), name="run-log"),
    path(run + "jobuilds/<id:index>/attachments/<str:name>", slaves.AttachmentView.as_view(),
         name="run-attachment"),
    path(run + "jobuilds/<id:index>/result", slaves.ResultView.as_view(), name="run-result"),
    path(run + "finish", slaves.FinishView.as_view(), name="run-finish"),
    path(run + "inputs", inputs.InputsView.as_view(), name="run-inputs"),
    *router.urls,
]
