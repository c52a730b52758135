"""Groups: a matrix of jobs from one request, an arch-testing group from a bug's package list; their
matrix, their report (JSON and paste-ready text), and cancelling or rerunning all of a group."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from autotua.atom import Atom, AtomError
from autotua.params import MAX_VALUE
from autotua.tree import TreeError
from autotua_master.converters import ID_RE
from autotua_master.groups import actions, cells, report
from autotua_master.groups.archtest import ArchTestRequest, create_archtest
from autotua_master.groups.create import GroupInvalid, RowSpec, create_group, new_seed
from autotua_master.groups.matrix import product
from autotua_master.groups.models import Group, GroupKind
from autotua_master.snapshots.models import UnknownSnapshot

from .jobs import _unknown_revision, _unknown_snapshot
from .permissions import CanChangeGroup
from .schema import ErrorSerializer
from .serializers import CancelSerializer, Word, _snapshot_date, _text_value

MAX_INT = 2**31 - 1


def _root(value: str) -> str:
    try:
        atom = Atom.parse(value)
    except AtomError as e:
        raise serializers.ValidationError(str(e)) from None
    if atom.params:
        raise serializers.ValidationError("give the values in parameters, not in the atom")
    return value.strip()


class _Common(serializers.Serializer):
    flavours = serializers.ListField(child=Word(), min_length=1, max_length=16, default=["openrc"])
    filter = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="",
                                   trim_whitespace=False, help_text='a combination filter: !(arch == "x86" && '
                                                                    'flavour == "systemd")')
    revision = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    snapshot = serializers.CharField(required=False, allow_blank=True, max_length=10, default="",
                                     validators=[_snapshot_date])
    second_opinion = serializers.BooleanField(required=False, default=True,
                                              help_text="run a failed configuration once more on another slave")


class MatrixCreateSerializer(_Common):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    root = serializers.CharField(max_length=255, validators=[_root])
    parameters = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False,
                                                                max_length=MAX_VALUE, validators=[_text_value]),
                                    min_length=1, max_length=200),
        required=False, default=dict, help_text="each parameter and the values it takes: the matrix is their product")
    arches = serializers.ListField(child=Word(), min_length=1, max_length=32, required=False)

    def validate_parameters(self, value: dict) -> dict:
        if len(value) > 32 or any(len(k) > 64 or "\0" in k for k in value):
            raise serializers.ValidationError("at most 32 parameters, each a name")
        return value


class ArchTestCreateSerializer(_Common):
    packages = serializers.CharField(max_length=20000, trim_whitespace=False,
                                     help_text="the bug's package list, as NATTkA reads it: one '=cat/pkg-ver "
                                               "[arch...]' per line, '^' for the arches of the line above")
    bug = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INT, default=None)
    stable = serializers.BooleanField(required=False, default=True,
                                      help_text="a stabilisation (one version per line), else a keywording")
    arches = serializers.ListField(child=Word(), max_length=32, required=False, default=list,
                                   help_text="the arches tested (NATTkA's arch teams in CC): a line without arches "
                                             "gets these, and every line is limited to them")
    combinations = serializers.IntegerField(required=False, min_value=0, max_value=64, default=12,
                                            help_text="USE combinations drawn per package (tatt's usecombis)")
    rdeps = serializers.IntegerField(required=False, min_value=0, max_value=64, default=10,
                                     help_text="reverse dependencies built per package and arch (tatt's rdeps)")
    seed = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_INT, default=None,
                                    help_text="what draws them; default: a new one, recorded on the group")


class GroupListSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True, read_only=True)
    revno = serializers.IntegerField(source="revision.revno", read_only=True)
    state = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["id", "kind", "title", "bug", "root", "owner", "revno", "snapshot", "seed", "second_opinion",
                  "state", "counts", "created"]

    def _state(self, group) -> tuple[str, dict]:
        states = self.context.get("states")
        if states is None or group.pk not in states:
            return cells.states_of([group.pk])[group.pk]
        return states[group.pk]

    def get_state(self, group) -> str:
        return self._state(group)[0]

    def get_counts(self, group) -> dict[str, int]:
        return self._state(group)[1]


class CellSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    arch = serializers.CharField()
    flavour = serializers.CharField()
    verdict = serializers.CharField()
    text = serializers.CharField()
    jobs = serializers.ListField(child=serializers.IntegerField())
    slaves = serializers.ListField(child=serializers.CharField())
    failure = serializers.CharField(allow_blank=True)


class GroupSerializer(GroupListSerializer):
    revision = serializers.CharField(source="revision.revision_id", read_only=True)
    rows = serializers.ListField(child=serializers.DictField(), read_only=True)
    columns = serializers.ListField(child=serializers.ListField(child=serializers.CharField()), read_only=True)
    cells = serializers.SerializerMethodField()

    class Meta(GroupListSerializer.Meta):
        fields = [*GroupListSerializer.Meta.fields, "revision", "request", "rows", "columns", "cells"]

    def _matrix(self, group) -> cells.Matrix:
        if "matrix" not in self.context:
            self.context["matrix"] = cells.load(group)
        return self.context["matrix"]

    def _state(self, group):
        m = self._matrix(group)
        return m.state, m.counts

    @extend_schema(responses=CellSerializer(many=True))
    def get_cells(self, group) -> list[dict]:
        m = self._matrix(group)
        return [{"row": c.row, "arch": c.arch, "flavour": c.flavour, "verdict": c.verdict, "text": c.text,
                 "jobs": [a.job for a in c.attempts], "slaves": [a.slave for a in c.attempts if a.slave],
                 "failure": next((a.failure for a in c.attempts if a.state == "failed"), "")}
                for c in sorted(m.cells.values(), key=lambda c: (c.row, c.arch, c.flavour))]


def _invalid(e: GroupInvalid) -> Response:
    return Response({"detail": f"{len(e.errors)} fault(s): {e}", "code": "invalid_group", "errors": e.errors},
                    status=status.HTTP_400_BAD_REQUEST)


INVALID = OpenApiResponse(ErrorSerializer, description="invalid_group: every fault, nothing created")


class GroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [CanChangeGroup]
    lookup_value_regex = ID_RE
    queryset = Group.objects.select_related("owner", "revision")

    def get_serializer_class(self):
        return GroupListSerializer if self.action == "list" else GroupSerializer

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        states = cells.states_of([g.pk for g in page])
        return self.get_paginated_response(GroupListSerializer(page, many=True, context={"states": states}).data)

    def _made(self, group: Group) -> Response:
        group = Group.objects.select_related("owner", "revision").get(pk=group.pk)
        return Response(GroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MatrixCreateSerializer, responses={201: GroupSerializer, 400: INVALID})
    def create(self, request):
        ser = MatrixCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        arches = d.get("arches") or [settings.AUTOTUA_DEFAULT_ARCH]
        combos = product(d["parameters"])
        rows = [RowSpec(", ".join(f"{k}={v}" for k, v in c.items()) or d["root"], c) for c in combos]
        columns = [(a, f) for a in dict.fromkeys(arches) for f in dict.fromkeys(d["flavours"])]
        try:
            group = create_group(owner=request.user, kind=GroupKind.MATRIX, title=d["title"] or d["root"],
                                 root=d["root"], rows=rows, columns=columns, filter_text=d["filter"],
                                 revision=d["revision"] or None, snapshot=d["snapshot"] or None, seed=new_seed(),
                                 second_opinion=d["second_opinion"],
                                 request={k: v for k, v in d.items() if k != "revision"})
        except GroupInvalid as e:
            return _invalid(e)
        except TreeError as e:
            return _unknown_revision(e)
        except UnknownSnapshot as e:
            return _unknown_snapshot(e)
        return self._made(group)

    @extend_schema(request=ArchTestCreateSerializer, responses={201: GroupSerializer, 400: INVALID})
    @action(detail=False, methods=["post"])
    def archtest(self, request):
        """An arch-testing group from a bug's package list (docs/arch-testing.md)."""
        if not (request.user.is_staff or hasattr(request.user, "maintainer")):
            return Response({"detail": "only maintainers (users with a recorded key) and staff may create jobs",
                             "code": "permission_denied"}, status=status.HTTP_403_FORBIDDEN)
        ser = ArchTestCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        req = ArchTestRequest(packages=d["packages"], bug=d["bug"], stable=d["stable"], arches=tuple(d["arches"]),
                              flavours=tuple(dict.fromkeys(d["flavours"])), combinations=d["combinations"],
                              rdeps=d["rdeps"], seed=d["seed"], filter=d["filter"], revision=d["revision"] or None,
                              snapshot=d["snapshot"] or None, second_opinion=d["second_opinion"])
        try:
            group = create_archtest(req, request.user)
        except GroupInvalid as e:
            return _invalid(e)
        except TreeError as e:
            return _unknown_revision(e)
        except UnknownSnapshot as e:
            return _unknown_snapshot(e)
        return self._made(group)

    @extend_schema(responses={200: serializers.DictField()})
    @action(detail=True, methods=["get"])
    def report(self, request, pk=None):
        """The report as JSON: per arch, flavour and package, each configuration's verdict and how it failed."""
        group = self.get_object()
        return Response(report.as_json(cells.load(group), request.build_absolute_uri("/")))

    @extend_schema(responses={(200, "text/plain"): str})
    @action(detail=True, methods=["get"], url_path="report.txt")
    def report_text(self, request, pk=None):
        """The report as text, ready to paste into the Gentoo bug."""
        group = self.get_object()
        text = report.as_text(cells.load(group), request.build_absolute_uri("/"))
        return HttpResponse(text, content_type="text/plain; charset=utf-8")

    @extend_schema(request=CancelSerializer, responses={200: GroupSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        group = self.get_object()
        ser = CancelSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        actions.cancel_group(group, request.user.username, ser.validated_data["reason"])
        return Response(GroupSerializer(group).data)

    @extend_schema(request=None, responses={200: GroupSerializer, 400: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """A new job for every cell that did not pass (and has ended), with the group's pins."""
        group = self.get_object()
        try:
            actions.rerun_group(group, request.user)
        except TreeError as e:
            return _unknown_revision(e)
        return Response(GroupSerializer(group).data)
