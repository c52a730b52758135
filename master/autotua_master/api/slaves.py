"""The slave's endpoints (docs/protocol.md): thin views over Slave, Run and the run protocol."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from autotua import faults
from autotua_master.jobs import dispatch, protocol
from autotua_master.jobs.errors import Invalid, TooLarge
from autotua_master.jobs.wakeup import registry
from autotua_master.slaves.models import Slave, claim_lookup, from_lookup

from . import serializers as s
from .authentication import SlaveAuthentication, authenticated_as, slave_token
from .permissions import IsActiveSlave, IsSlave

_RANGE_RE = re.compile(r"\A\s*bytes[ =]([0-9]{1,18})-([0-9]{1,18})(?:/(?:[0-9]{1,18}|\*))?\s*\Z")


class SlaveView(APIView):
    authentication_classes = [SlaveAuthentication]
    permission_classes = [IsActiveSlave]
    renderer = JSONRenderer()

    def perform_content_negotiation(self, request, force=False):
        """JSON, the only answer there is, without parsing an ``Accept`` that takes anything (every
        slave's); another ``Accept`` is DRF's to judge (a 406 when it refuses JSON)."""
        if request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", "application/json"):
            return self.renderer, self.renderer.media_type
        return super().perform_content_negotiation(request, force)

    @property
    def slave(self) -> Slave:
        return self.request.user.slave


class RunView(SlaveView):
    """Under /runs/<run>/: only the slave holding the run may call; anyone else sees a 404
    (:func:`autotua_master.jobs.protocol.held`)."""


_PREFER = OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, description=(
    "wait=<seconds> (RFC 7240): hold the answer while there is nothing to say (no job to claim; a SIDEPEND "
    "still running), up to that long and at most AUTOTUA_LONGPOLL_SECONDS"))


def _held(response: Response, seconds: int) -> Response:
    if seconds:
        response["Preference-Applied"] = f"wait={seconds}"
    return response


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
    """A claim. A slave's token is checked, on PostgreSQL with no sweep due, in the claim's own statement
    (:func:`~autotua_master.jobs.dispatch.claim_with`: the common claim is one round trip), yet judged as
    every call's is and before anything else is said: a body that is not valid is answered only once
    the slave is known (401 and 403 first), and the slave the statement found passes the same checks
    as :class:`SlaveAuthentication` and :class:`IsActiveSlave`, which judge every other call."""

    error_statuses = (400, 401, 403, 409, 413, 415)

    def initial(self, request, *args, **kwargs):
        self.deferred = slave_token(request) if connection.vendor == "postgresql" and not dispatch.sweep_due() \
            else None
        super().initial(request, *args, **kwargs)

    def perform_authentication(self, request):
        if self.deferred is None:
            super().perform_authentication(request)

    def check_permissions(self, request):
        if self.deferred is None:
            super().check_permissions(request)

    def judge(self, request, found: tuple | None = None) -> None:
        """Who asks, now (authentication and permissions, as DRF judges them before other views): by
        ``found`` (a 1-tuple: the slave as the claim's statement found it, or None), else by the usual
        lookup."""
        secret = self.deferred[1]
        self.deferred = None
        if found is None:
            super().perform_authentication(request)
        else:
            authenticated_as(request, found[0], secret)
        self.check_permissions(request)

    @extend_schema(request=s.ClaimSerializer, parameters=[_PREFER], responses={200: OpenApiResponse(
        PolymorphicProxySerializer("ClaimAnswer", serializers=[s.ClaimedSerializer, s.NothingToDoSerializer],
                                   resource_type_field_name=None),
        description="a run with its lease and job, or {\"run\": null, \"retry_after\": N}")})
    def post(self, request):
        run = None
        if self.deferred is None:
            data = _valid(s.ClaimSerializer, request.data)
        else:
            try:
                data = _valid(s.ClaimSerializer, request.data)
            except Exception:
                self.judge(request)  # who asks, before what is wrong with the body
                raise
            slave_id, secret = self.deferred
            try:
                row, run = dispatch.claim_with(dispatch.Lookup(*claim_lookup(slave_id, secret)), slave_id,
                                               data["run"], data["arch"], data["flavours"], data["trust"])
            except IntegrityError:  # the run id is taken (the slave was found, active): judged, then as any claim
                self.judge(request)
            else:
                self.judge(request, (from_lookup(row),))
        hold = dispatch.hold_seconds(request.headers.get("Prefer"))
        held = left = False
        if run is None:  # nothing taken at once: as every claim, registered as a long-poll first
            args = (self.slave, data["run"], data["arch"], data["flavours"], data["trust"])
            with registry.waiting(hold, client=request.META.get("gunicorn.socket"), arch=data["arch"],
                                  flavours=frozenset(data["flavours"]),
                                  trust=None if data["trust"] is None else frozenset(data["trust"])) as waiter:
                run = dispatch.claim(*args)
                self.slave.report(data)  # only once the claim is accepted: a refused one changes nothing
                while run is None and waiter.sleep():
                    run = dispatch.claim(*args)
            held, left = waiter.held, waiter.left
        else:  # (answered as a long-poll that found its job at once would be)
            self.slave.report(data)
            held = registry.can_hold(hold)
        if run is None:
            # after a long-poll, ask again at once (a stopping master: in a second, to its successor); a
            # client that closed its sending half (so it seemed gone) and still reads: not at once
            wait = (1 if registry.stopping else 0) if held and not left else settings.AUTOTUA_RETRY_AFTER
            return _held(Response({"run": None, "retry_after": wait}, headers={"Retry-After": str(wait)}),
                         hold if held else 0)
        run.slave = self.slave
        faults.point("master:claim:committed")  # test hook (autotua.faults): committed, not answered
        return _held(Response(s.payload(run, request)), hold if held else 0)


class HeartbeatView(RunView):
    error_statuses = (401, 403, 404, 409)

    @extend_schema(request=None, responses=s.ActionSerializer)
    def post(self, request, run):
        self.slave.report({})  # a heartbeat is a sign of life too (written at most every few seconds)
        answer = protocol.heartbeat(self.slave, run)
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
        protocol.run_uuid(self.slave, run)
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
        size = protocol.append_log(self.slave, run, index, first, body)
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
        length = _length(request) if "Content-Length" in request.headers else None
        created, desc = protocol.attach(self.slave, run, index, name, request._request, length,
                                        request.headers.get("Content-Digest"))
        faults.point("master:attach:committed")
        return Response(desc, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ResultView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 415)

    @extend_schema(request=s.ResultSerializer, parameters=[_PREFER], responses=s.ActionSerializer)
    def put(self, request, run, index: int):
        protocol.run_uuid(self.slave, run)
        raw = request.data
        data = _valid(s.ResultSerializer, raw)
        answer = protocol.report(self.slave, run, index, data, raw)
        hold = dispatch.hold_seconds(request.headers.get("Prefer")) if answer["action"] == "wait" else 0
        if hold:  # a long-poll: answer when the SIDEPEND passed, failed or stopped running, or in time
            with registry.waiting(hold, client=request.META.get("gunicorn.socket"),
                                  sidepends=frozenset(answer.waiting_on)) as waiter:
                answer = protocol.report(self.slave, run, index, data, raw)  # again, now that a change wakes us
                while answer["action"] == "wait" and waiter.sleep():
                    answer = protocol.report(self.slave, run, index, data, raw)
            if answer["action"] == "wait" and waiter.held and not waiter.left:
                answer["retry_after"] = 1 if registry.stopping else 0
            hold = hold if waiter.held else 0
        faults.point("master:result:committed")
        return _held(Response(answer), hold)


class FinishView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 415)

    @extend_schema(request=s.FinishSerializer, responses={200: inline_serializer("Finished", {
        "job": inline_serializer("FinishedJob", {"id": serializers.IntegerField(),
                                                 "state": serializers.CharField()})})})
    def post(self, request, run):
        protocol.run_uuid(self.slave, run)
        data = _valid(s.FinishSerializer, request.data)
        answer = protocol.finish(self.slave, run, data["status"], data["reason"])
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
