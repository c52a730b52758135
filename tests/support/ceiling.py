"""The framework's own ceiling, for bench/claims.py and bench/longpoll.py: the master's settings and
middleware, but one catch-all URL under /api/v1/ served by a Django view that parses the JSON body as
the API does and answers a canned body of the same shape, touching no database.

Served under the same gunicorn settings as the master (``LiveMaster(..., settings_module=
"tests.support.ceiling")``); ``tests.support.ceiling_asgi`` serves it through Django's ASGI handler,
with an async long-poll view (``/api/v1/wait``) for the server-model comparison.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from autotua_master.settings import *  # noqa: F403 (the master's settings, one URL conf less)

ROOT_URLCONF = "tests.support.ceiling"

PLAN = [{"index": 0, "jobuild": "alice/toolchain-sanity-1.0",
         "path": "alice/toolchain-sanity/toolchain-sanity-1.0.jobuild", "digest": "a2c8ec" + "0" * 58,
         "inherited": [], "src_uri": [], "portconf_uri": []}]


def _claimed(body: dict) -> dict:
    return {"run": body.get("run") or str(uuid.uuid4()),
            "lease": {"expires": "2026-11-23T16:05:00Z", "seconds": 300, "heartbeat_every": 60},
            "job": {"id": 42, "attempt": 1, "root": "alice/toolchain-sanity", "arch": "amd64", "stage3": "openrc",
                    "tree": {"url": "http://127.0.0.1/tree/", "revision": "tests@jobtage.example-2026", "revno": 1},
                    "plan": PLAN, "maintainers": {"alice": "1979717D92818A0A7411FDA91245A35B0D1B42A4"},
                    "mirrors": {}, "limits": {"phase_timeout": 3600, "log_chunk_bytes": 1048576,
                                              "attachment_bytes": 10485760}}}


@csrf_exempt
def answer(request, rest: str):
    """Parse the JSON body and answer as the API would (claim, result, finish), from memory."""
    body = json.loads(request.body or b"{}")
    if not isinstance(body, dict):
        return JsonResponse({"detail": "the body must be a JSON object", "code": "invalid"}, status=400)
    if rest == "claim":
        return JsonResponse(_claimed(body))
    if rest.endswith("/result"):
        return JsonResponse({"action": "continue", "finished": True, "job": {"id": 42, "state": "passed"}})
    if rest.endswith("/finish"):
        return JsonResponse({"job": {"id": 42, "state": "passed"}})
    return JsonResponse({"action": "continue"})


async def wait(request):
    """An idle long-poll as an ASGI server holds it: a coroutine asleep until its time is up."""
    await asyncio.sleep(float(request.GET.get("seconds", "30")))
    return JsonResponse({"run": None, "retry_after": 0})


urlpatterns = [
    re_path(r"^api/v1/wait$", csrf_exempt(wait)),
    re_path(r"^api/v1/(?P<rest>.*)$", answer),
]
