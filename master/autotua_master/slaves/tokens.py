"""Slave tokens: ``s<id>_<secret>``, random, shown once, stored as a SHA-256 digest.

The id in the token finds the row without a scan; the secret is 256 random bits, so a plain
digest (no slow hash) is enough and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def make_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def format_token(slave_id: int, secret: str) -> str:
    return f"s{slave_id}_{secret}"


def parse_token(token: str) -> tuple[int, str] | None:
    """(slave id, secret), or None for anything not shaped like a token."""
    head, sep, secret = token.partition("_")
    if not sep or not head.startswith("s") or not head[1:].isdigit() or not secret:
        return None
    return int(head[1:]), secret


def matches(secret: str, stored_digest: str) -> bool:
    return bool(stored_digest) and hmac.compare_digest(digest(secret), stored_digest)
