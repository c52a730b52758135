"""``PUT /api/v1/runs/<run>/inputs``: what a run was made of (docs/protocol.md, Inputs)."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from autotua import faults
from autotua_master.jobs.models import RunInputs

from .slaves import RunView, _valid

#: emerge --info is a few KiB; a JSON body is at most 2.5 MB
EMERGE_INFO_CHARS = 256 << 10


class Stage3InputSerializer(serializers.Serializer):
    name = serializers.RegexField(r"\Astage3-[A-Za-z0-9_.+-]+\.tar\.(xz|bz2|gz|zst)\Z", max_length=255)
    timestamp = serializers.RegexField(r"\A\d{8}(T\d{6}Z)?\Z")


class RepositoryInputSerializer(serializers.Serializer):
    source = serializers.ChoiceField(["snapshot", "host", "none"])
    snapshot = serializers.RegexField(r"\A\d{8}\Z", required=False)
    name = serializers.RegexField(r"\Agentoo-\d{8}\.tar\.xz\Z", required=False)
    path = serializers.CharField(required=False, max_length=4096)
    timestamp_chk = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")

    def validate(self, data: dict) -> dict:
        if data["source"] == "snapshot":
            if "snapshot" not in data:
                raise serializers.ValidationError({"snapshot": "a snapshot repository names its date"})
            data.setdefault("name", f"gentoo-{data['snapshot']}.tar.xz")
            if data["name"] != f"gentoo-{data['snapshot']}.tar.xz":
                raise serializers.ValidationError({"name": f"the snapshot of {data['snapshot']} is "
                                                           f"gentoo-{data['snapshot']}.tar.xz"})
            data.pop("path", None)
        elif data["source"] == "host":
            if not data.get("path", "").startswith("/"):
                raise serializers.ValidationError({"path": "the host's repository is an absolute path"})
            data.pop("snapshot", None), data.pop("name", None)
        else:
            data = {"source": "none"}
        return data


class InputsSerializer(serializers.Serializer):
    stage3 = Stage3InputSerializer()
    revision = serializers.CharField(max_length=255)
    repository = RepositoryInputSerializer()
    emerge_info = serializers.CharField(required=False, max_length=EMERGE_INFO_CHARS, trim_whitespace=False)

    def validate_revision(self, value: str) -> str:
        if re.search(r"\s", value):
            raise serializers.ValidationError("a revision id has no whitespace")
        return value


class InputsView(RunView):
    error_statuses = (400, 401, 403, 404, 409, 413, 415)

    @extend_schema(request=InputsSerializer, responses={
        201: OpenApiResponse(inline_serializer("InputsRecorded", {
            "stage3": Stage3InputSerializer(), "revision": serializers.CharField(),
            "repository": RepositoryInputSerializer(),
            "emerge_info": inline_serializer("EmergeInfoDigest", {"size": serializers.IntegerField(),
                                                                  "sha256": serializers.CharField()},
                                             required=False)}),
            description="recorded (or emerge_info added)"),
        200: OpenApiResponse(description="the same inputs again: the same answer")})
    def put(self, request, run):
        found = self.get_run(run)
        data = _valid(InputsSerializer, request.data)
        changed, answer = RunInputs.record(found, data)
        faults.point("master:inputs:committed")
        return Response(answer, status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK)
