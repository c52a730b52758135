"""Who is calling: a slave (``Authorization: Slave <token>``) or a person (token or session).

The two never mix: slave endpoints accept only slave tokens and answer a person's credentials with
403; person endpoints answer a slave token with 403 (docs/protocol.md, Identity).
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from autotua_master.slaves import tokens
from autotua_master.slaves.models import Slave, parse_token

UNKNOWN_TOKEN = "unknown slave token"


def _scheme(request) -> tuple[str, str]:
    header = authentication.get_authorization_header(request).decode("latin-1")
    scheme, _, value = header.partition(" ")
    return scheme.lower(), value.strip()


class SlaveUser:
    """What ``request.user`` is on slave endpoints: not a person, never staff."""

    is_authenticated = True
    is_staff = False
    is_active = True

    def __init__(self, slave: Slave):
        self.slave = slave

    def __str__(self) -> str:
        return f"slave {self.slave}"


class SlaveAuthentication(authentication.BaseAuthentication):
    keyword = "Slave"

    def authenticate(self, request):
        scheme, value = _scheme(request)
        if scheme in ("token", "bearer", "basic"):
            raise exceptions.PermissionDenied("a person's credentials are not accepted here: "
                                              "use the slave's own token (Authorization: Slave <token>)")
        if scheme != "slave":
            user = getattr(request._request, "user", None)
            if user is not None and user.is_authenticated:
                raise exceptions.PermissionDenied("a person's session is not accepted here: "
                                                  "use the slave's own token (Authorization: Slave <token>)")
            return None
        slave = Slave.objects.authenticate(value)
        if slave is None:
            raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN)
        return SlaveUser(slave), slave

    def authenticate_header(self, request) -> str:
        return self.keyword


def slave_token(request) -> tuple[int, str] | None:
    """The (id, secret) of an ``Authorization: Slave <token>`` header; None for any other header, or a
    token not shaped like one (:class:`SlaveAuthentication` then says what is wrong)."""
    scheme, value = _scheme(request)
    return parse_token(value) if scheme == "slave" else None


def authenticated_as(request, slave: Slave | None, secret: str) -> None:
    """Judge, as :class:`SlaveAuthentication` does, a slave that a statement doing more than the lookup
    found by its id (a claim's: :func:`autotua_master.jobs.dispatch.claim_with`): ``request`` is then the
    slave's, or fails as an unknown token."""
    if slave is None or not tokens.matches(secret, slave.token_digest):
        raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN)
    request.user, request.auth = SlaveUser(slave), slave


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication for people, first on their endpoints: a slave token there is a
    mistake to report (403), not to ignore."""

    def authenticate(self, request):
        if _scheme(request)[0] == "slave":
            raise exceptions.PermissionDenied("a slave token is not accepted here: these endpoints are for people")
        return super().authenticate(request)
