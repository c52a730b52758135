"""Settings from the environment: ``AUTOTUA_*`` variables override the defaults of :mod:`.base`."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from . import base


def _env(name: str, default=None):
    return os.environ.get(f"AUTOTUA_{name}", default)


def _int(name: str, default: int) -> int:
    return int(_env(name, default))


def database_from_url(url: str, pool: int = 0) -> dict:
    """``postgresql://user:pass@host:port/name?host=/socket/dir`` or ``sqlite:///path`` -> DATABASES entry.

    ``pool`` (PostgreSQL): a pool of at most that many connections per process (psycopg's, as Django
    5.1+ offers it), each checked when taken, instead of one connection kept per thread. A master whose
    threads hold many long-polls wants it: an idle long-poll gives its connection back, and the pool
    spares the next look a new connection (docs/master.md, The server model)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(Path(unquote(parts.path)))
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"AUTOTUA_DATABASE_URL: unsupported scheme {parts.scheme!r} (postgresql:// or sqlite://)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        # Django's backend, with a health check that asks the socket first and the hot statements
        # prepared (autotua_master/postgresql)
        "ENGINE": "autotua_master.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "autotua",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": query.pop("host", None) or parts.hostname or "",
        "PORT": str(parts.port or query.pop("port", "") or ""),
        "CONN_MAX_AGE": 0 if pool else 60,
        "CONN_HEALTH_CHECKS": True,  # with a pool: each connection checked when taken from it
        "OPTIONS": {**query, **({"pool": _pool(pool)} if pool else {})},
    }


def _pool(size: int) -> dict:
    return {"min_size": 1, "max_size": size, "timeout": 30}


def _sqlite(path: Path) -> dict:
    # IMMEDIATE: every transaction takes the write lock first, so a claim never races another.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def _secret_key(data_dir: Path) -> str:
    """A key kept in the data dir, made once, so sessions survive restarts without configuration."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


AUTOTUA_DATA_DIR = Path(_env("DATA_DIR", base.AUTOTUA_DATA_DIR)).resolve()
AUTOTUA_TREE = Path(_env("TREE", "") or AUTOTUA_DATA_DIR / "jobtage")
AUTOTUA_CACHE = Path(_env("CACHE", "") or AUTOTUA_DATA_DIR / "cache.sqlite")
AUTOTUA_TREE_URL = _env("TREE_URL", base.AUTOTUA_TREE_URL)
AUTOTUA_DISTFILES_DIR = _env("DISTFILES_DIR", base.AUTOTUA_DISTFILES_DIR)
AUTOTUA_MIRRORS = json.loads(_env("MIRRORS", "") or "null") or base.AUTOTUA_MIRRORS
AUTOTUA_SNAPSHOT_MIRROR = _env("SNAPSHOT_MIRROR", base.AUTOTUA_SNAPSHOT_MIRROR)
AUTOTUA_SNAPSHOT_KEY = _env("SNAPSHOT_KEY", base.AUTOTUA_SNAPSHOT_KEY)
AUTOTUA_SNAPSHOT_KEY_FINGERPRINT = _env("SNAPSHOT_KEY_FINGERPRINT", base.AUTOTUA_SNAPSHOT_KEY_FINGERPRINT)
AUTOTUA_KEEP_SNAPSHOTS = _int("KEEP_SNAPSHOTS", base.AUTOTUA_KEEP_SNAPSHOTS)
AUTOTUA_ARCHTEST_JOBUILD = _env("ARCHTEST_JOBUILD", base.AUTOTUA_ARCHTEST_JOBUILD)
AUTOTUA_SECOND_OPINION = _env("SECOND_OPINION", "1") not in ("", "0", "false", "no")
AUTOTUA_FLAG_AFTER_RUNS = _int("FLAG_AFTER_RUNS", base.AUTOTUA_FLAG_AFTER_RUNS)
AUTOTUA_MAX_GROUP_JOBS = _int("MAX_GROUP_JOBS", base.AUTOTUA_MAX_GROUP_JOBS)
AUTOTUA_DEFAULT_ARCH = _env("DEFAULT_ARCH", base.AUTOTUA_DEFAULT_ARCH)
AUTOTUA_LEASE_SECONDS = _int("LEASE_SECONDS", base.AUTOTUA_LEASE_SECONDS)
AUTOTUA_HEARTBEAT_SECONDS = _int("HEARTBEAT_SECONDS", base.AUTOTUA_HEARTBEAT_SECONDS)
AUTOTUA_MAX_ATTEMPTS = _int("MAX_ATTEMPTS", base.AUTOTUA_MAX_ATTEMPTS)
AUTOTUA_SWEEP_SECONDS = _int("SWEEP_SECONDS", base.AUTOTUA_SWEEP_SECONDS)
AUTOTUA_RETRY_AFTER = _int("RETRY_AFTER", base.AUTOTUA_RETRY_AFTER)
AUTOTUA_WAIT_RETRY_AFTER = _int("WAIT_RETRY_AFTER", base.AUTOTUA_WAIT_RETRY_AFTER)
AUTOTUA_LONGPOLL_SECONDS = _int("LONGPOLL_SECONDS", base.AUTOTUA_LONGPOLL_SECONDS)
AUTOTUA_WAIT_LIMIT = _int("WAIT_LIMIT", base.AUTOTUA_WAIT_LIMIT)
AUTOTUA_PIPELINE_SIDEPENDS = _env("PIPELINE_SIDEPENDS", "1") not in ("", "0", "false", "no")
AUTOTUA_PHASE_TIMEOUT = _int("PHASE_TIMEOUT", base.AUTOTUA_PHASE_TIMEOUT)
AUTOTUA_LOG_CHUNK_BYTES = _int("LOG_CHUNK_BYTES", base.AUTOTUA_LOG_CHUNK_BYTES)
AUTOTUA_ATTACHMENT_BYTES = _int("ATTACHMENT_BYTES", base.AUTOTUA_ATTACHMENT_BYTES)
AUTOTUA_DOT = _env("DOT", base.AUTOTUA_DOT)
AUTOTUA_SITE_URL = _env("SITE_URL", base.AUTOTUA_SITE_URL)
EMAIL_BACKEND = _env("EMAIL_BACKEND", base.EMAIL_BACKEND)
DEFAULT_FROM_EMAIL = _env("EMAIL_FROM", base.DEFAULT_FROM_EMAIL)
EMAIL_HOST = _env("EMAIL_HOST", "localhost")
EMAIL_PORT = _int("EMAIL_PORT", 25)
AUTOTUA_PUSH_MAX_BYTES = _int("PUSH_MAX_BYTES", base.AUTOTUA_PUSH_MAX_BYTES)
AUTOTUA_PUSH_LOCK_SECONDS = _int("PUSH_LOCK_SECONDS", base.AUTOTUA_PUSH_LOCK_SECONDS)

DEBUG = _env("DEBUG", "") not in ("", "0", "false", "no")
SECRET_KEY = _env("SECRET_KEY") or _secret_key(AUTOTUA_DATA_DIR)
ALLOWED_HOSTS = _env("ALLOWED_HOSTS").split(",") if _env("ALLOWED_HOSTS") else base.ALLOWED_HOSTS
if _env("CSRF_TRUSTED_ORIGINS"):
    CSRF_TRUSTED_ORIGINS = _env("CSRF_TRUSTED_ORIGINS").split(",")
if _env("BEHIND_PROXY", "") not in ("", "0", "false", "no"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
STATIC_ROOT = _env("STATIC_ROOT") or AUTOTUA_DATA_DIR / "static"

AUTOTUA_DATABASE_POOL = _int("DATABASE_POOL", 0)
DATABASES = {
    "default": database_from_url(_env("DATABASE_URL"), AUTOTUA_DATABASE_POOL)
    if _env("DATABASE_URL")
    else _sqlite(AUTOTUA_DATA_DIR / "master.sqlite3")
}
