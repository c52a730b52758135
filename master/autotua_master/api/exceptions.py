"""Every 4xx as ``{"detail": <a sentence>, "code": <short code>, ...}`` (docs/protocol.md, Errors)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from autotua_master.jobs.errors import JobError, ProtocolError

#: JobError codes that say the job's state does not allow it (the others are a bad request)
CONFLICTS = ("frozen", "final", "started", "not_ended", "automatic")


def _flatten(detail, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field, message, code) for each message of a ValidationError's nested detail."""
    if isinstance(detail, dict):
        return [x for k, v in detail.items()
                for x in _flatten(v, prefix if prefix and k == "non_field_errors" else
                                  f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(detail, list):
        return [x for i, v in enumerate(detail)
                for x in _flatten(v, prefix if not isinstance(v, dict | list) else f"{prefix}[{i}]")]
    return [(prefix, str(detail), getattr(detail, "code", "invalid"))]


def exception_handler(exc, context):
    if isinstance(exc, ProtocolError):
        return Response({"detail": exc.detail, "code": exc.code, **exc.extra}, status=exc.status)
    if isinstance(exc, JobError):
        code = status.HTTP_409_CONFLICT if exc.code in CONFLICTS else status.HTTP_400_BAD_REQUEST
        return Response({"detail": str(exc), "code": exc.code}, status=code)
    if isinstance(exc, exceptions.ValidationError):
        items = _flatten(exc.detail)
        field, _, _ = items[0] if items else ("", "", "")
        detail = "; ".join(f"{f}: {m}" if f and f != "non_field_errors" else m for f, m, _ in items)
        body = {"detail": detail or "invalid request", "code": "invalid"}
        if field and field != "non_field_errors":
            body["field"] = field
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response({"detail": f"the request body is larger than the limit of {limit} bytes", "code": "too_large",
                         "limit": limit}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    response = drf_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {"detail": str(exc.detail), "code": codes if isinstance(codes, str) else "error"}
    return response
