"""The defaults: what a try-out from a checkout gets with no configuration."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
_checkout = PACKAGE_DIR.parents[1]
#: the checkout when running from one (``var/`` lives there), else the working directory
BASE_DIR = _checkout if (_checkout / "pyproject.toml").exists() else Path.cwd()

DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "autotua_master.tree",
    "autotua_master.snapshots",
    "autotua_master.slaves",
    "autotua_master.jobs",
    "autotua_master.groups",
    "autotua_master.api",
    "autotua_master.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # the web UI's and the admin's CSS and JS, served by gunicorn itself (a reverse proxy may serve
    # STATIC_ROOT instead): a volunteer's master works with nothing in front of it
    "autotua_master.web.static_files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "autotua_master.urls"
WSGI_APPLICATION = "autotua_master.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "autotua_master.web.context.people",
            ],
        },
    },
]

LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:dashboard"
LOGOUT_REDIRECT_URL = "web:dashboard"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Without collectstatic, files are found in the apps' static/ directories (a checkout just works).
WHITENOISE_USE_FINDERS = True
WHITENOISE_MAX_AGE = 3600
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "autotua_master.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["autotua_master.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "autotua_master.api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "autotua_master.api.pagination.Pagination",
    "EXCEPTION_HANDLER": "autotua_master.api.exceptions.exception_handler",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AutotuA master API",
    "DESCRIPTION": "The master <-> slave protocol (docs/protocol.md) and the maintainers' job API.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "autotua_master.jobs.models.states.JobState",
        "SlaveStateEnum": "autotua_master.slaves.models.SlaveState",
        "RunEndEnum": "autotua_master.jobs.models.states.RunEnd",
        "ResultStatusEnum": ["passed", "failed"],
        "PhaseStatusEnum": ["passed", "failed", "skipped"],
        "FinishStatusEnum": ["passed", "failed", "error", "cancelled"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"autotua_master": {"level": "INFO"}},
}

# -- AutotuA --------------------------------------------------------------------------------------
# Each can be set from the environment as AUTOTUA_<NAME> (see env.py and docs/master.md).

#: where the master keeps its SQLite database, logs, attachments and the metadata cache
AUTOTUA_DATA_DIR = BASE_DIR / "var"
#: the metadata/signature cache (SQLite, shared by every process); default: DATA_DIR/cache.sqlite
AUTOTUA_CACHE = None
#: the jobtage bzr branch the master owns (maintainers push to it); default: DATA_DIR/jobtage
AUTOTUA_TREE = None
#: the URL slaves branch the tree from; default: this site's /tree/
AUTOTUA_TREE_URL = None
#: a directory served at /distfiles/ (a mirror for SRC_URI files); None: not served
AUTOTUA_DISTFILES_DIR = None
#: mirror:// name -> base URLs handed to slaves as hints; a URL starting with '/' is on this site
AUTOTUA_MIRRORS: dict[str, list[str]] = {}
#: a Gentoo mirror whose snapshots/ holds the ebuild repository's snapshots (refreshsnapshots reads it; jobs
#: are pinned to the newest; slaves are told of it as a hint); "": none, jobs carry no snapshot
AUTOTUA_SNAPSHOT_MIRROR = ""
#: the key file the snapshots are verified with on the master (Gentoo's gentoo-release.asc); "": the master
#: reads no snapshot, and job parameter values (atoms, USE flags) are not checked against the repository
AUTOTUA_SNAPSHOT_KEY = ""
#: the snapshot key's fingerprint in that file (Gentoo's "Gentoo ebuild repository signing key")
AUTOTUA_SNAPSHOT_KEY_FINGERPRINT = "DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D"
#: snapshots the master keeps unpacked (in DATA_DIR/snapshots), the newest first
AUTOTUA_KEEP_SNAPSHOTS = 3
#: the jobuild arch-testing groups run (a package list's form, API and CLI)
AUTOTUA_ARCHTEST_JOBUILD = "gentoo/arch-test"
#: a configuration of a group that failed runs once more on another slave before the group calls it failed
AUTOTUA_SECOND_OPINION = True
#: a slave none of whose last this many runs passed, while other slaves passed the same work, is flagged
AUTOTUA_FLAG_AFTER_RUNS = 5
#: the most jobs one group request may make
AUTOTUA_MAX_GROUP_JOBS = 2000
AUTOTUA_DEFAULT_ARCH = "amd64"
AUTOTUA_LEASE_SECONDS = 300
AUTOTUA_HEARTBEAT_SECONDS = 60
AUTOTUA_MAX_ATTEMPTS = 3
#: a claim sweeps expired leases at most this often per process (and whenever it finds nothing queued)
AUTOTUA_SWEEP_SECONDS = 5
AUTOTUA_RETRY_AFTER = 30
AUTOTUA_WAIT_RETRY_AFTER = 60
#: the longest a claim or a waiting result is held (long-poll) for a slave that asks with Prefer: wait=N
AUTOTUA_LONGPOLL_SECONDS = 30
#: the longest a run may wait for a SIDEPEND before the master ends it and puts the job back in the queue
AUTOTUA_WAIT_LIMIT = 3600
#: queue a job whose SIDEPENDs are all running elsewhere, so its jobuilds that need none run meanwhile
AUTOTUA_PIPELINE_SIDEPENDS = True
AUTOTUA_PHASE_TIMEOUT = 3600
AUTOTUA_LOG_CHUNK_BYTES = 1 << 20
AUTOTUA_ATTACHMENT_BYTES = 10 << 20
#: this site's address as people reach it, for links in emails (e.g. https://autotua.example.org)
AUTOTUA_SITE_URL = ""
#: mail: Django's backend (console for the demo, smtp for real) and the sender
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
DEFAULT_FROM_EMAIL = "autotua@localhost"
#: Graphviz's dot, for the job pages' dependency graphs (the pages say so when it is missing)
AUTOTUA_DOT = "dot"
#: the largest smart request a push may send (one stream of revisions)
AUTOTUA_PUSH_MAX_BYTES = 64 << 20
#: a push lock held longer than this is a dead client's, broken by the next push
AUTOTUA_PUSH_LOCK_SECONDS = 600
