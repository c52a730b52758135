"""The client side of the master's API (docs/protocol.md), with retries.

Every write of the protocol is idempotent, so a call that meets a network error, a timeout, a 5xx or
a 429 is simply repeated, with exponential backoff (honouring ``Retry-After``), until ``retry_for``
seconds have passed. 4xx answers are turned into exceptions that say what the master meant.

A claim and a result may be *held* by the master while it has nothing to say yet (a long-poll:
``Prefer: wait=<seconds>``, docs/protocol.md); such a call is made in a thread of its own, so that a
slave told to stop need not wait for its answer (``abandon``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from urllib.parse import quote

import requests

from autotua import AutotuaError, __version__

log = logging.getLogger("autotua.slave.api")
USER_AGENT = f"autotua-slave/{__version__}"


class ApiError(AutotuaError):
    """A 4xx answer (or one we cannot read); ``status`` and ``code`` as the master sent them."""

    def __init__(self, message: str, status: int = 0, code: str = "", body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body or {}


class AuthError(ApiError):
    """401/403: unknown token, or a pending or revoked slave."""


class RunOver(ApiError):
    """409 ``run_over`` (lease expired, cancelled, finished) or 404 (not this slave's run)."""


class Conflict(ApiError):
    """409 ``conflict``: the same write repeated with different content."""


class TooLarge(ApiError):
    """413: a log chunk or an attachment over the master's limit."""


class LogGap(ApiError):
    """416: a log chunk that starts past the end of the log; ``offset`` is where to resume."""

    @property
    def offset(self) -> int:
        return int(self.body.get("offset", 0))


class Unreachable(ApiError):
    """The master did not answer usefully within ``retry_for`` seconds."""


class Interrupted(ApiError):
    """The slave is stopping; the call was abandoned between retries, or while the master held it."""


#: how long a claim or a result may be held by the master (it holds them for at most its own bound)
LONG_POLL = 30


def content_digest(data: bytes) -> str:
    """RFC 9530 ``Content-Digest`` for ``data``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


class Api:
    """One master, one token. ``stop`` (an Event) abandons retries when the slave must stop at once."""

    def __init__(self, master: str, token: str | None = None, *, retry_for: float = 600, timeout: float = 60,
                 stop: threading.Event | None = None):
        self.base = master.rstrip("/") + "/api/v1/"
        self.token = token
        self.retry_for = retry_for
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self._local = threading.local()  # a Session per thread (the heartbeat has its own)

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers["User-Agent"] = USER_AGENT
        return s

    # -- the transport ------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json=None, data: bytes | None = None,
                headers: dict | None = None, auth: bool = True, retry_for: float | None = None,
                hold: int = 0, abandon: threading.Event | None = None) -> requests.Response:
        """``hold``: seconds the master may hold the call (``Prefer: wait``); it is then made in its own
        thread, and given up (Interrupted) as soon as ``abandon`` (or ``stop``) is set."""
        url = self.base + path
        hdrs = dict(headers or {})
        if hold:
            hdrs["Prefer"] = f"wait={hold}"
        if auth:
            if not self.token:
                raise AuthError("no token: register the slave first")
            hdrs["Authorization"] = f"Slave {self.token}"
        deadline = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        delay = 1.0
        while True:
            try:
                if hold:
                    r = self._held(method, url, abandon, json=json, data=data, headers=hdrs,
                                   timeout=max(self.timeout, hold + 30))
                else:
                    r = self.session.request(method, url, json=json, data=data, headers=hdrs, timeout=self.timeout)
            except requests.RequestException as e:
                why = f"{type(e).__name__}: {e}"
                wait = delay
            else:
                if r.status_code < 400:
                    return r
                if r.status_code not in (429, 500, 502, 503, 504):
                    raise self._error(method, path, r)
                why = f"HTTP {r.status_code}"
                wait = delay
                after = r.headers.get("Retry-After", "")
                if after.isdigit():
                    wait = max(wait, float(after))
            wait = min(wait, 60.0) * random.uniform(0.8, 1.2)
            if time.monotonic() + wait > deadline:
                raise Unreachable(f"{method} {url}: no answer from the master ({why}); gave up after retrying")
            log.warning("%s %s: %s; retrying in %.0f s", method, path, why, wait)
            if self.stop.wait(wait):
                raise Interrupted(f"{method} {url}: abandoned, the slave is stopping")
            delay = min(delay * 2, 60.0)

    def _held(self, method: str, url: str, abandon: threading.Event | None, **kw) -> requests.Response:
        """One call the master may hold, in a thread of its own: the caller can stop waiting for it. A
        claim the master answers after it was abandoned leaves a run nobody works on: the slave's next
        claim ends it (superseded), or its lease does."""
        box: dict = {}
        done = threading.Event()

        def call() -> None:
            try:
                session = getattr(self, "_held_session", None)
                if session is None:
                    session = self._held_session = requests.Session()
                    session.headers["User-Agent"] = USER_AGENT
                box["answer"] = session.request(method, url, **kw)
            except BaseException as e:  # handed to the caller
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=call, name="autotua-long-poll", daemon=True).start()
        while not done.wait(0.2):
            if self.stop.is_set() or (abandon is not None and abandon.is_set()):
                self._held_session = None  # the one in use may still be waiting for its answer
                raise Interrupted(f"{method} {url}: abandoned, the slave is stopping")
        if "error" in box:
            raise box["error"]
        return box["answer"]

    @staticmethod
    def _error(method: str, path: str, r: requests.Response) -> ApiError:
        try:
            body = r.json()
            if not isinstance(body, dict):
                body = {"detail": str(body)}
        except ValueError:
            body = {"detail": r.text[:300]}
        detail = body.get("detail") or r.reason
        code = str(body.get("code", ""))
        msg = f"{method} /api/v1/{path}: {r.status_code} {detail}"
        if r.status_code in (401, 403):
            return AuthError(msg, r.status_code, code, body)
        if r.status_code == 404 and path.startswith("runs/"):
            return RunOver(msg, 404, code or "run_over", body)
        if r.status_code == 409:
            cls = RunOver if code == "run_over" or body.get("action") == "abort" else Conflict
            return cls(msg, 409, code, body)
        if r.status_code == 413:
            return TooLarge(msg, 413, code, body)
        if r.status_code == 416:
            return LogGap(msg, 416, code, body)
        return ApiError(msg, r.status_code, code, body)

    # -- the calls ----------------------------------------------------------------------------------
    def register(self, payload: dict) -> dict:
        return self.request("POST", "slaves/register", json=payload, auth=False).json()

    def me(self) -> dict:
        return self.request("GET", "slaves/me").json()

    def claim(self, payload: dict, hold: int = 0, abandon: threading.Event | None = None) -> dict:
        r = self.request("POST", "claim", json=payload, hold=hold, abandon=abandon)
        body = r.json()
        if body.get("run") is None and "retry_after" not in body and r.headers.get("Retry-After", "").isdigit():
            body["retry_after"] = int(r.headers["Retry-After"])
        return body

    def heartbeat(self, run: str, retry_for: float | None = None) -> dict:
        return self.request("POST", f"runs/{run}/heartbeat", json={}, retry_for=retry_for).json()

    def append_log(self, run: str, index: int, offset: int, data: bytes) -> int:
        """Send ``data`` as the log bytes from ``offset``; returns the log's length now."""
        r = self.request("PATCH", f"runs/{run}/jobuilds/{index}/log", data=data, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {offset}-{offset + len(data) - 1}",
        })
        return int(r.json()["offset"])

    def put_attachment(self, run: str, index: int, name: str, data: bytes) -> dict:
        return self.request("PUT", f"runs/{run}/jobuilds/{index}/attachments/{quote(name, safe='')}", data=data,
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Digest": content_digest(data)}).json()

    def put_result(self, run: str, index: int, result: dict, hold: int = 0,
                   abandon: threading.Event | None = None) -> dict:
        return self.request("PUT", f"runs/{run}/jobuilds/{index}/result", json=result, hold=hold,
                            abandon=abandon).json()

    def put_inputs(self, run: str, inputs: dict) -> dict:
        """Record what the run is made of (stage3, revision, repository; then again with emerge --info)."""
        return self.request("PUT", f"runs/{run}/inputs", json=inputs).json()

    def finish(self, run: str, payload: dict, retry_for: float | None = None) -> dict:
        return self.request("POST", f"runs/{run}/finish", json=payload, retry_for=retry_for).json()
