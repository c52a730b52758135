"""``GET /api/v1/``: what the API offers, as links (a client, or a person with curl, starts here)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class ApiRoot(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(exclude=True)
    def get(self, request):
        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        base = url("api-root")
        return Response({
            "version": "1",
            "jobs": base + "jobs/",
            "job": base + "jobs/{id}/",
            "schema": url("schema"),
            "slaves": {
                "register": url("slave-register"),
                "me": url("slave-me"),
                "claim": url("claim"),
                "run": base + "runs/{run}/",
            },
            "tree": request.build_absolute_uri("/tree/"),
            "push": request.build_absolute_uri("/tree/push"),
            "docs": {"protocol": "docs/protocol.md", "maintainer": "docs/maintainer.md"},
        })
