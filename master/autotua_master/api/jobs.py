"""The maintainers' job API: create, list, read, re-validate, cancel; read logs and attachments."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from autotua.tree import TreeError
from autotua_master.jobs.models import Attachment, Job, LogFile
from autotua_master.tree.static import serve

from . import serializers as s
from .permissions import CanChangeJob


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 viewsets.GenericViewSet):
    permission_classes = [CanChangeJob]
    queryset = Job.objects.select_related("owner", "revision")

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "retrieve":
            qs = qs.prefetch_related("runs__results", "runs__logs", "runs__slave", "requirements__provision")
        for field in ("state", "arch", "root"):
            value = self.request.query_params.get(field)
            if value:
                qs = qs.filter(**{field: value})
        if self.request.query_params.get("owner"):
            qs = qs.filter(owner__username=self.request.query_params["owner"])
        return qs

    def get_serializer_class(self):
        return {"list": s.JobListSerializer, "create": s.JobCreateSerializer}.get(self.action, s.JobSerializer)

    @extend_schema(request=s.JobCreateSerializer, responses={201: s.JobSerializer})
    def create(self, request):
        ser = s.JobCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            job = Job.objects.create_job(root=d["root"], revision=d["revision"] or None, arch=d["arch"] or None,
                                         stage3=d["stage3"] or None, owner=request.user)
        except TreeError as e:
            return Response({"detail": str(e), "code": "unknown_revision", "field": "revision"},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RevalidateSerializer, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def revalidate(self, request, pk=None):
        job = self.get_object()
        ser = s.RevalidateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            job.revalidate(ser.validated_data["revision"] or None)
        except TreeError as e:
            return Response({"detail": str(e), "code": "unknown_revision", "field": "revision"},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(s.JobSerializer(Job.objects.get(pk=job.pk)).data)

    @extend_schema(request=s.CancelSerializer, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        ser = s.CancelSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        job.cancel(by=request.user.username, reason=ser.validated_data["reason"])
        return Response(s.JobSerializer(Job.objects.get(pk=job.pk)).data)

    @extend_schema(responses={(200, "text/plain"): bytes})
    @action(detail=True, methods=["get"], url_path=r"runs/(?P<run>[0-9a-f-]+)/jobuilds/(?P<index>\d+)/log")
    def log(self, request, pk=None, run=None, index=None):
        log = LogFile.objects.select_related("run").filter(run__job_id=pk, run__uuid=run, index=index).first()
        if log is None:
            raise Http404(f"no log of jobuild {index} in run {run} of job #{pk}")
        return serve(request, log.path.parent, log.path.name, content_type="text/plain; charset=utf-8")

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"],
            url_path=r"runs/(?P<run>[0-9a-f-]+)/jobuilds/(?P<index>\d+)/attachments/(?P<name>[^/]+)")
    def attachment(self, request, pk=None, run=None, index=None, name=None):
        att = Attachment.objects.select_related("run").filter(run__job_id=pk, run__uuid=run, index=index,
                                                              name=name).first()
        if att is None:
            raise Http404(f"no attachment {name} of jobuild {index} in run {run} of job #{pk}")
        return serve(request, att.path.parent, att.path.name)
