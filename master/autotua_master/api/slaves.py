"""The slave's endpoints (docs/protocol.md): thin views over Slave, Run and the run protocol."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from autotua import faults
from autotua_master.slaves.errors import Invalid, NotFound, TooLarge
from autotua_master.slaves.models import Run, Slave

from . import serializers as s
from .authentication import SlaveAuthentication
from .permissions import IsActiveSlave, IsSlave

_RANGE_RE = re.compile(r"\A\s*bytes[ =]([0-9]{1,18})-([0-9]{1,18})(?:/(?:[0-9]{1,18}|\*))?\s*\Z")


class SlaveView(APIView):
    authentication_classes = [SlaveAuthentication]
    permission_classes = [IsActiveSlave]

    @property
    def slave(self) -> Slave:
        return self.request.user.slave


class RunView(SlaveView):
    """Under /runs/<run>/: only the slave holding the run may call; anyone else sees a 404."""

    def get_run(self, run: str) -> Run:
        try:
            uuid.UUID(run)
        except ValueError:
            raise NotFound(f"no run {run} of slave {self.slave}") from None
        found = Run.objects.select_related("job", "job__revision").filter(uuid=run, slave=self.slave).first()
        if found is None:
            raise NotFound(f"no run {run} of slave {self.slave}")
        return found


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.RegisterSerializer, responses={201: inline_serializer("Registered", {
        "id": serializers.IntegerField(), "name": serializers.CharField(), "state": serializers.CharField(),
        "token": serializers.CharField()})})
    def post(self, request):
        data = _valid(s.RegisterSerializer, request.data)
        with transaction.atomic():
            slave, token = Slave.objects.create_with_token(
                name=data["name"], arch=data["arch"], flavours=data["flavours"], host=data["host"],
                free_disk=data.get("free_disk"), version=data["version"])
        return Response({"id": slave.pk, "name": slave.name, "state": slave.state, "token": token},
                        status=status.HTTP_201_CREATED)


class MeView(SlaveView):
    permission_classes = [IsSlave]

    @extend_schema(responses=s.SlaveSerializer)
    def get(self, request):
        return Response(s.SlaveSerializer(self.slave).data)


class ClaimView(SlaveView):
    error_statuses = (400, 401, 403, 409, 413, 415)

    @extend_schema(request=s.ClaimSerializer, responses={200: OpenApiResponse(
        PolymorphicProxySerializer("ClaimAnswer", serializers=[s.ClaimedSerializer, s.NothingToDoSerializer],
                                   resource_type_field_name=None),
        description="a run with its lease and job, or {\"run\": null, \"retry_after\": N}")})
    def post(self, request):
        data = _valid(s.ClaimSerializer, request.data)
        run = Run.objects.claim(self.slave, data["run"], data["arch"], data["flavours"])
        self.slave.report(data)  # only once the claim is accepted: a refused one changes nothing
        if run is None:
            wait = settings.AUTOTUA_RETRY_AFTER
            return Response({"run": None, "retry_after": wait}, headers={"Retry-After": str(wait)})
        run.slave = self.slave
        faults.point("master:claim:committed")  # test hook (autotua.faults): committed, not answered
        return Response(s.payload(run, request))


class HeartbeatView(RunView):
    error_statuses = (401, 403, 404, 409)

    @extend_schema(request=None, responses=s.ActionSerializer)
    def post(self, request, run):
        self.slave.report({})  # a heartbeat is a sign of life too (written at most every few seconds)
        answer = self.get_run(run).heartbeat()
        faults.point("master:heartbeat:committed")
        return Response(answer)


_ATTACHMENT = inline_serializer("Attachment", {"name": serializers.CharField(), "size": serializers.IntegerField(),
                                               "sha256": serializers.CharField()})


class LogView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 416)

    @extend_schema(request={"application/octet-stream": bytes}, parameters=[OpenApiParameter(
                       "Content-Range", str, OpenApiParameter.HEADER, required=True,
                       description="bytes <first>-<last>: where the chunk goes in the log (inclusive)")],
                   responses={202: inline_serializer("LogOffset", {"offset": serializers.IntegerField()})})
    def patch(self, request, run, index: int):
        found = self.get_run(run)
        limit = settings.AUTOTUA_LOG_CHUNK_BYTES
        m = _RANGE_RE.match(request.headers.get("Content-Range", ""))
        if not m:
            raise Invalid("Content-Range: bytes <first>-<last> is required", field="Content-Range")
        first, last = int(m[1]), int(m[2])
        if last < first:
            raise Invalid(f"Content-Range: {last} is before {first}", field="Content-Range")
        if last - first + 1 > limit or _length(request) > limit:
            raise TooLarge(f"a log chunk may be at most {limit} bytes", limit=limit)
        body = request._request.read(limit + 1)
        if len(body) != last - first + 1:
            raise Invalid(f"Content-Range says {last - first + 1} bytes, the body has {len(body)}",
                          field="Content-Range")
        size = found.append_log(index, first, body)
        faults.point("master:log:committed")
        headers = {"Range": f"0-{size - 1}"} if size else {}
        return Response({"offset": size}, status=status.HTTP_202_ACCEPTED, headers=headers)


class AttachmentView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413)

    @extend_schema(request={"application/octet-stream": bytes}, parameters=[OpenApiParameter(
                       "Content-Digest", str, OpenApiParameter.HEADER, required=True,
                       description="sha-256=:<base64 of the body's SHA-256>: (RFC 9530)")], responses={
        201: _ATTACHMENT, 200: OpenApiResponse(_ATTACHMENT, description="the same upload again")})
    def put(self, request, run, index: int, name: str):
        found = self.get_run(run)
        length = _length(request) if "Content-Length" in request.headers else None
        created, desc = found.attach(index, name, request._request, length, request.headers.get("Content-Digest"))
        faults.point("master:attach:committed")
        return Response(desc, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ResultView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 415)

    @extend_schema(request=s.ResultSerializer, responses=s.ActionSerializer)
    def put(self, request, run, index: int):
        found = self.get_run(run)
        raw = request.data
        data = _valid(s.ResultSerializer, raw)
        answer = found.report(index, data, raw)
        faults.point("master:result:committed")
        return Response(answer)


class FinishView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 415)

    @extend_schema(request=s.FinishSerializer, responses={200: inline_serializer("Finished", {
        "job": inline_serializer("FinishedJob", {"id": serializers.IntegerField(),
                                                 "state": serializers.CharField()})})})
    def post(self, request, run):
        found = self.get_run(run)
        data = _valid(s.FinishSerializer, request.data)
        answer = found.finish_with(data["status"], data["reason"])
        faults.point("master:finish:committed")
        return Response(answer)


def _valid(serializer_class, data) -> dict:
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    ser = serializer_class(data=data)
    ser.is_valid(raise_exception=True)
    return ser.validated_data


def _length(request) -> int:
    raw = request.headers.get("Content-Length") or "0"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise Invalid(f"Content-Length: {raw[:40]!r} is not a number of bytes", field="Content-Length")
    return int(raw)
