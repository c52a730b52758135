"""The maintainers' job API: create, list, read, re-validate, cancel; read logs and attachments."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from autotua.tree import TreeError
from autotua_master.converters import ID_RE
from autotua_master.jobs.models import Attachment, Job, JobState, LogFile
from autotua_master.snapshots.models import UnknownSnapshot
from autotua_master.tree.static import serve

from . import serializers as s
from .permissions import CanChangeJob
from .schema import ErrorSerializer

UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RANGE = OpenApiParameter("Range", str, OpenApiParameter.HEADER,
                         description="bytes=<first>-[<last>], bytes=-<n>, or several ranges (RFC 9110)")


def _file_responses(content_type: str) -> dict:
    return {(200, content_type): bytes, (206, content_type): bytes, (206, "multipart/byteranges"): bytes,
            416: ErrorSerializer}


def _serve(request, path, content_type: str = "application/octet-stream"):
    """A log or an attachment, with Range; a range past the end is a 416 in the API's error shape."""
    resp = serve(request, path.parent, path.name, content_type=content_type)
    if resp.status_code != 416:
        return resp
    size = int(resp["Content-Range"].rpartition("/")[2])
    return Response({"detail": f"no byte of the range {request.headers.get('Range', '')[:60]!r} is in the "
                               f"file's {size} bytes", "code": "range_not_satisfiable", "size": size},
                    status=416, headers={"Content-Range": f"bytes */{size}"})


def _unknown_revision(e: TreeError) -> Response:
    """The revision a job was created or re-validated against is not in the master's branch."""
    return Response({"detail": str(e), "code": "unknown_revision", "field": "revision"},
                    status=status.HTTP_400_BAD_REQUEST)


def _unknown_snapshot(e: UnknownSnapshot) -> Response:
    """The snapshot a job was to be pinned to is not one the master knows on the mirror."""
    return Response({"detail": str(e), "code": "unknown_snapshot", "field": "snapshot"},
                    status=status.HTTP_400_BAD_REQUEST)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [CanChangeJob]
    lookup_value_regex = ID_RE
    queryset = Job.objects.select_related("owner", "revision")

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "retrieve":
            qs = qs.prefetch_related("runs__results", "runs__logs", "runs__slave", "runs__inputs",
                                     "requirements__provision")
        if self.action != "list":
            return qs
        params = self.request.query_params
        for field in ("state", "arch", "root", "owner", "group"):
            if len(params.getlist(field)) > 1:  # which one would count? (a filter's last value hid a bad first)
                raise ValidationError({field: "a filter is given once"})
            if "\x00" in params.get(field, ""):  # PostgreSQL refuses NUL in text: a 400, not its 500
                raise ValidationError({field: "may not hold U+0000"})
        state = params.get("state")
        if state is not None and state not in JobState.values:
            raise ValidationError({"state": f"{state[:40]!r} is not a job state ({', '.join(JobState.values)})"})
        for field in ("state", "arch", "root"):
            value = params.get(field)
            if value:
                qs = qs.filter(**{field: value})
        if params.get("owner"):
            qs = qs.filter(owner__username=params["owner"])
        if params.get("group"):
            group = params["group"]
            if not (group.isascii() and group.isdigit() and len(group) <= 18):
                raise ValidationError({"group": f"{group[:40]!r} is not a group id"})
            qs = qs.filter(group_id=int(group))
        return qs

    @extend_schema(parameters=[
        OpenApiParameter("state", str, enum=JobState.values, description="only jobs in this state"),
        OpenApiParameter("arch", str, description="only jobs for this arch"),
        OpenApiParameter("root", str, description="only jobs of this root atom, exactly"),
        OpenApiParameter("owner", str, description="only jobs of this user"),
        OpenApiParameter("group", int, description="only jobs of this group"),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_serializer_class(self):
        return {"list": s.JobListSerializer, "create": s.JobCreateSerializer}.get(self.action, s.JobSerializer)

    @extend_schema(request=s.JobCreateSerializer, responses={201: s.JobSerializer})
    def create(self, request):
        ser = s.JobCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            job = Job.objects.create_job(root=d["root"], revision=d["revision"] or None, arch=d["arch"] or None,
                                         stage3=d["stage3"] or None, owner=request.user,
                                         snapshot=d["snapshot"] or None, notify=d["notify"],
                                         parameters=d["parameters"] or None)
        except TreeError as e:
            return _unknown_revision(e)
        except UnknownSnapshot as e:
            return _unknown_snapshot(e)
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 409: ErrorSerializer})
    def destroy(self, request, pk=None):
        """Delete a job that never started (invalid, or no slave ever took it): its owner or staff."""
        self.get_object().remove(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.RerunSerializer, responses={201: s.JobSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """A new job with this one's pins (root, arch, flavour, revision, snapshot), owned by the caller."""
        job = self.get_object()
        ser = s.RerunSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            new = job.rerun(request.user, notify=ser.validated_data["notify"])
        except TreeError as e:
            return _unknown_revision(e)
        except UnknownSnapshot as e:
            return _unknown_snapshot(e)
        return Response(s.JobSerializer(Job.objects.get(pk=new.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RevalidateSerializer, responses={200: s.JobSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def revalidate(self, request, pk=None):
        job = self.get_object()
        ser = s.RevalidateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            job.revalidate(ser.validated_data["revision"] or None, ser.validated_data.get("snapshot"))
        except TreeError as e:
            return _unknown_revision(e)
        except UnknownSnapshot as e:
            return _unknown_snapshot(e)
        return Response(s.JobSerializer(Job.objects.get(pk=job.pk)).data)

    @extend_schema(request=s.CancelSerializer, responses={200: s.JobSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        ser = s.CancelSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        job.cancel(by=request.user.username, reason=ser.validated_data["reason"])
        return Response(s.JobSerializer(Job.objects.get(pk=job.pk)).data)

    @extend_schema(parameters=[RANGE], responses=_file_responses("text/plain"))
    @action(detail=True, methods=["get"], url_path=rf"runs/(?P<run>{UUID_RE})/jobuilds/(?P<index>{ID_RE})/log")
    def log(self, request, pk=None, run=None, index=None):
        log = LogFile.objects.select_related("run").filter(run__job_id=pk, run__uuid=run, index=index).first()
        if log is None:
            raise Http404(f"no log of jobuild {index} in run {run} of job #{pk}")
        return _serve(request, log.path, content_type="text/plain; charset=utf-8")

    @extend_schema(parameters=[RANGE], responses=_file_responses("application/octet-stream"))
    @action(detail=True, methods=["get"],
            url_path=rf"runs/(?P<run>{UUID_RE})/jobuilds/(?P<index>{ID_RE})/attachments/(?P<name>[^/]+)")
    def attachment(self, request, pk=None, run=None, index=None, name=None):
        att = Attachment.objects.select_related("run").filter(run__job_id=pk, run__uuid=run, index=index,
                                                              name=name).first()
        if att is None:
            raise Http404(f"no attachment {name} of jobuild {index} in run {run} of job #{pk}")
        return _serve(request, att.path)
