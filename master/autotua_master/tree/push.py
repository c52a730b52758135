"""Maintainers push to the master's branch: breezy's smart protocol at ``/tree/push/``.

``brz push bzr+https://master.example.org/tree/push`` (or ``brz commit`` in a checkout bound to that
URL) talks to breezy's own smart server (``breezy.transport.http.wsgi``), run inside this view with
three things of ours around it:

* **who**: HTTP Basic with the maintainer's user name and API token (breezy's ``authentication.conf``);
  no or wrong credentials are a 401, a person who is neither a maintainer nor staff a 403;
* **what**: only the verbs a push, a pull and a bound commit need (reads, locks, inserting a stream of
  revisions, moving the tip); none that write files by path, break locks, destroy or re-configure;
* **the tip**: a ``pre_change_branch_tip`` hook (:mod:`.pushcheck`) refuses a tip that does not descend
  from the old one, a change outside the pusher's own ``<user>/`` (staff may change anything), or one
  that makes ``autotua-jobuild check`` find new errors; its report is what the maintainer sees. The tip
  moves under the branch's lock, from the tip the client locked and read, so of two maintainers
  pushing at once one lands and the other is told the branches diverged (pull, then push): nothing is
  lost. After it moved, the new revision is indexed.

Anonymous reads stay on ``/tree/`` (plain HTTP, as slaves use it); this endpoint wants credentials
for everything.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import branch, pushcheck

log = logging.getLogger(__name__)

PREFIX = "/tree/push/"
REALM = "AutotuA tree"

#: what a push, a pull and a bound commit send besides reads
WRITE_VERBS = frozenset({
    b"Branch.lock_write", b"Branch.unlock", b"Branch.set_last_revision", b"Branch.set_last_revision_info",
    b"Branch.set_last_revision_ex", b"Repository.lock_write", b"Repository.unlock",
    b"Repository.start_write_group", b"Repository.commit_write_group", b"Repository.abort_write_group",
    b"Repository.insert_stream", b"Repository.insert_stream_1.19", b"Repository.insert_stream_locked",
    b"PackRepository.autopack",
})
#: reads that build whole-repository archives on the server: not worth their cost here
HEAVY_READS = frozenset({b"Repository.tarball", b"get_bundle"})


@dataclass
class Pusher:
    """Who is pushing: their user name, their tree directory (None for staff who sign nothing), staff;
    and the tips that moved during their request (indexed once breezy's request is done)."""

    username: str
    maintainer: str | None
    staff: bool
    landed: list[str] = field(default_factory=list)


#: set for the length of one smart request (a :class:`Pusher`); the tip hooks read it (same thread)
current_pusher = pushcheck.current_pusher


def _commands():
    """breezy's request registry with only the verbs we serve."""
    from breezy.bzr.smart import request
    from breezy.registry import Registry

    allowed = Registry()
    for verb in request.request_handlers:
        info = request.request_handlers.get_info(verb)
        if (info == "read" and verb not in HEAVY_READS) or verb in WRITE_VERBS:
            allowed.register(verb, request.request_handlers.get(verb), info=info)
    return allowed


class _SmartApp:
    """breezy's SmartWSGIApp over the branch directory, answering only protocol 3 with our verbs."""

    _lock = threading.Lock()
    _apps: dict[str, _SmartApp] = {}

    def __init__(self, root: Path):
        import breezy.bzr  # noqa: F401  (registers the formats)
        from breezy.transport import get_transport
        from breezy.transport.http.wsgi import SmartWSGIApp
        from breezy.urlutils import local_path_to_url

        self.commands = _commands()
        app = SmartWSGIApp(get_transport(local_path_to_url(str(root))), PREFIX)
        app.make_request = self._make_request
        self.app = app

    @classmethod
    def for_branch(cls, root: Path) -> _SmartApp:
        with cls._lock:
            key = str(root)
            if key not in cls._apps:
                cls._apps[key] = cls(root)
            return cls._apps[key]

    def _make_request(self, transport, write_func, request_bytes, rcp):
        from breezy.bzr.smart import message, protocol, request

        if not request_bytes.startswith(protocol.MESSAGE_VERSION_THREE):
            return _hello(request_bytes, write_func)
        handler = request.SmartServerRequestHandler(transport, commands=self.commands, root_client_path=rcp,
                                                    jail_root=self.app.backing_transport)
        decoder = protocol.ProtocolThreeDecoder(
            message.ConventionalRequestHandler(handler, protocol.ProtocolThreeResponder(write_func)))
        decoder.accept_bytes(request_bytes[len(protocol.MESSAGE_VERSION_THREE):])
        return decoder

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


class _TooOld(Exception):
    pass


class _Answered:
    """What SmartWSGIApp wants back from a request that is complete."""

    def next_read_size(self) -> int:
        return 0


def _hello(request_bytes: bytes, write_func) -> _Answered:
    """Protocols 1 and 2 only for ``hello``, the probe a client sends first ("I speak 2, and 3 when
    you answer it"); every real request then comes in protocol 3, through our verbs."""
    from breezy.bzr.smart import protocol

    if request_bytes == b"hello\n":
        write_func(b"ok\x012\n")
    elif request_bytes == protocol.REQUEST_VERSION_TWO + b"hello\n":
        write_func(protocol.RESPONSE_VERSION_TWO + b"success\nok\x012\n")
    else:
        raise _TooOld()
    return _Answered()


def authenticate(header: str) -> tuple[Pusher | None, str]:
    """``Authorization: Basic user:token`` -> (the pusher, "") or (None, why not)."""
    from rest_framework.authtoken.models import Token

    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None, "no credentials: give your user name and API token (breezy's authentication.conf)"
    try:
        username, sep, secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, "malformed Basic credentials"
    token = Token.objects.select_related("user", "user__maintainer").filter(key=secret).first() if sep else None
    if token is None or token.user.get_username() != username or not token.user.is_active:
        return None, f"wrong user name or API token for {username!r}"
    user = token.user
    maintainer = getattr(user, "maintainer", None)
    return Pusher(user.get_username(), maintainer.name if maintainer else None, user.is_staff), ""


def _challenge(why: str, status: int = 401) -> HttpResponse:
    resp = HttpResponse(f"{why}\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        resp["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return resp


def break_stale_locks(root: Path, older_than: float) -> list[str]:
    """Break the branch's and repository's locks when held longer than any push takes: a client that
    died between its lock and its unlock would otherwise keep every maintainer out. Returns what
    was broken."""
    from breezy.lockdir import LockDir
    from breezy.transport import get_transport
    from breezy.urlutils import local_path_to_url

    broken = []
    for rel in (".bzr/branch/lock", ".bzr/repository/lock"):
        info_file = root / rel / "held" / "info"
        try:
            age = time.time() - info_file.stat().st_mtime
        except OSError:
            continue
        if age < older_than:
            continue
        lock = LockDir(get_transport(local_path_to_url(str(root))), rel)
        held = lock.peek()
        if held is not None:
            with contextlib.suppress(Exception):  # someone else broke or released it meanwhile
                lock.force_break(held)
                broken.append(rel)
                log.warning("broke the stale push lock %s (held %.0f s)", rel, age)
    return broken


@method_decorator(csrf_exempt, name="dispatch")
class PushView(View):
    """``POST /tree/push/.bzr/smart``: one smart protocol request, authenticated."""

    http_method_names = ["post"]

    def post(self, request, path: str = ""):
        pusher, why = authenticate(request.headers.get("Authorization", ""))
        if pusher is None:
            return _challenge(why)
        if not (pusher.maintainer or pusher.staff):
            return _challenge(f"{pusher.username} is neither a maintainer (no recorded key) nor staff: "
                              "only they push to the tree", 403)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= settings.AUTOTUA_PUSH_MAX_BYTES:
            return _challenge(f"a smart request has 1 to {settings.AUTOTUA_PUSH_MAX_BYTES} bytes", 413)
        root = branch.branch_path()
        pushcheck.install_hooks()
        break_stale_locks(root, settings.AUTOTUA_PUSH_LOCK_SECONDS)
        if not (PREFIX + path).endswith("/.bzr/smart"):
            return _challenge("only .bzr/smart is served here", 404)
        environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(length), "wsgi.input": request,
                   "breezy.relpath": (PREFIX + path)[: -len("/.bzr/smart")]}
        reply: dict = {}

        def start_response(status, headers):
            reply["status"] = status
        token = current_pusher.set(pusher)
        try:
            body = b"".join(_SmartApp.for_branch(root)(environ, start_response))
        except _TooOld:
            return _challenge("this server speaks the smart protocol 3 only (breezy 3, bzr 2.x)", 400)
        finally:
            current_pusher.reset(token)
        for revid in pusher.landed:  # outside breezy's request (its jail allows only the branch)
            pushcheck.index_landed(revid)
        return HttpResponse(body, status=int(reply["status"].split()[0]), content_type="application/octet-stream")
