"""The OpenAPI schema's extras: the slave's token scheme, and every error an operation can answer.

drf-spectacular documents the success answers it sees in the views; a client (and schemathesis, which
checks every answer against this schema in tests/hardening/test_fuzz.py) also needs the errors. Each
4xx has the one shape of docs/protocol.md (``{"detail", "code", ...}``), declared here for the
statuses each kind of operation can give.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

from autotua_master.converters import ID_DIGITS


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer of the API (docs/protocol.md, Errors)."""

    detail = serializers.CharField(help_text="a sentence a person can read")
    code = serializers.CharField(help_text="a short code: invalid, parse_error, not_found, run_over, conflict, ...")
    field = serializers.CharField(required=False, help_text="the field at fault (code: invalid)")
    offset = serializers.IntegerField(required=False, help_text="the log's length on the master (where to resume)")
    action = serializers.ChoiceField(["abort"], required=False, help_text="run_over: the slave must stop")
    limit = serializers.IntegerField(required=False, help_text="too_large: the limit in bytes")
    size = serializers.IntegerField(required=False, help_text="range_not_satisfiable: the file's size")
    errors = serializers.ListField(child=serializers.DictField(), required=False,
                                   help_text='invalid_group: every fault, each {"row", "arch", "message"}')

    class Meta:
        ref_name = "Error"


class SlaveTokenScheme(OpenApiAuthenticationExtension):
    target_class = "autotua_master.api.authentication.SlaveAuthentication"
    name = "slaveAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "The slave's own token: `Authorization: Slave <token>`"}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus the error answers of each operation (a view may name its own in
    ``error_statuses``)."""

    def error_statuses(self) -> set[int]:
        declared = getattr(self.view, "error_statuses", None)
        if declared is not None:
            return set(declared)
        out: set[int] = set()
        authenticated = bool(self.view.get_authenticators())
        if authenticated:
            out |= {401, 403}
        if self.method in ("POST", "PUT", "PATCH"):
            out |= {400, 413, 415}
        if "{" in self.path:
            out.add(404)
        if self.method == "GET" and self._is_list_view():
            out.add(400)  # ?limit=, ?state=...
        return out

    def _resolve_path_parameters(self, variables):
        params = super()._resolve_path_parameters(variables)
        for p in params:
            if p["name"] in ("id", "index"):  # <id:...> in the URL conf (autotua_master.converters)
                p["schema"] = {"type": "integer", "minimum": 0, "maximum": 10**ID_DIGITS - 1}
        return params

    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        if direction == "response":
            for status in sorted(self.error_statuses()):
                bodies.setdefault(str(status), self._get_response_for_code(ErrorSerializer, str(status),
                                                                          direction=direction))
        return bodies
