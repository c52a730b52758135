"""Fixtures for the web UI's tests.

* ``people``: alice and bob (maintainers, with their session keys), vera (a volunteer: no key) and
  root (staff), each with the password ``pw-<name>``; ``login(client, name)``.
* ``web``: the master configured with the signed sample branch (``master_settings``) plus people.
* ``SlaveDriver``: the slave's side of docs/protocol.md through Django's test client, for pages that
  need runs, logs, results and attachments (the browser tests use ``SlaveClient`` over HTTP).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass

import pytest
from django.test import Client

from tests.master import conftest as master_conftest
from tests.support.slaveclient import SlaveClient

# the master's fixtures, shared (pytest finds fixtures by name in this module); ``postgres``,
# ``live_master`` and ``master_cache`` come from tests/conftest.py: one PostgreSQL cluster per session
master_settings = master_conftest.master_settings
make_branch = master_conftest.make_branch

PASSWORDS = {"alice": "pw-alice", "bob": "pw-bob", "vera": "pw-vera", "root": "pw-root"}


@dataclass
class People:
    alice: object
    bob: object
    vera: object
    root: object


def make_people(keys) -> People:
    from django.contrib.auth import get_user_model

    from autotua_master.tree.models import Maintainer

    User = get_user_model()
    made = {}
    for name in ("alice", "bob", "vera", "root"):
        made[name] = User.objects.create_user(name, password=PASSWORDS[name], is_staff=name == "root")
    for name in ("alice", "bob"):
        Maintainer.objects.create(user=made[name], name=name, fingerprint=keys[name])
    return People(**made)


@pytest.fixture
def people(db, keys) -> People:
    return make_people(keys)


@pytest.fixture
def web(master_settings, people) -> People:
    return people


def login(client: Client, name: str | None) -> Client:
    if name:
        assert client.login(username=name, password=PASSWORDS[name])
    return client


def client_for(name: str | None) -> Client:
    return login(Client(), name)


class SlaveDriver:
    """Calls the slave API in-process, as a slave would over HTTP."""

    def __init__(self, name: str = "box1", arch: str = "amd64", flavours=("openrc",), owner=None):
        from autotua_master.slaves.models import Slave, SlaveState

        self.slave, token = Slave.objects.create_with_token(name=name, arch=arch, flavours=list(flavours),
                                                            state=SlaveState.ACTIVE, owner=owner)
        self.client = Client(HTTP_AUTHORIZATION=f"Slave {token}")
        self.token = token
        self.arch, self.flavours = arch, list(flavours)

    def claim(self) -> dict:
        r = self.client.post("/api/v1/claim", {"run": str(uuid.uuid4()), "arch": self.arch,
                                               "flavours": self.flavours}, content_type="application/json")
        assert r.status_code == 200, r.content
        return r.json()

    def log(self, run: str, index: int, first: int, data: bytes) -> int:
        r = self.client.generic("PATCH", f"/api/v1/runs/{run}/jobuilds/{index}/log", data,
                                content_type="application/octet-stream",
                                HTTP_CONTENT_RANGE=f"bytes {first}-{first + len(data) - 1}")
        assert r.status_code == 202, r.content
        return r.json()["offset"]

    def attach(self, run: str, index: int, name: str, data: bytes) -> dict:
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        r = self.client.put(f"/api/v1/runs/{run}/jobuilds/{index}/attachments/{name}", data,
                            content_type="application/octet-stream", HTTP_CONTENT_DIGEST=digest)
        assert r.status_code in (200, 201), r.content
        return r.json()

    def result(self, run: str, index: int, status: str = "passed", **body) -> dict:
        body = {"status": status, "exit_code": 0 if status == "passed" else 1, "log_size": 0, **body}
        r = self.client.put(f"/api/v1/runs/{run}/jobuilds/{index}/result", body, content_type="application/json")
        assert r.status_code == 200, r.content
        return r.json()

    def finish(self, run: str, status: str = "passed", reason: str = "") -> dict:
        r = self.client.post(f"/api/v1/runs/{run}/finish", {"status": status, "reason": reason},
                             content_type="application/json")
        assert r.status_code == 200, r.content
        return r.json()

    def run_jobuild(self, run: str, index: int, log: bytes = b"", status: str = "passed", results=None,
                    attachments: dict[str, bytes] | None = None) -> dict:
        """One jobuild the way the slave reports it: log, attachments, then the result with phases."""
        from autotua_master.jobs.models import LogFile

        held = LogFile.objects.filter(run__uuid=run, index=index).first()
        size = held.size if held else 0
        if log:
            size = self.log(run, index, size, log)
        atts = []
        for name, data in (attachments or {}).items():
            self.attach(run, index, name, data)
            atts.append({"name": name, "label": f"label of {name}", "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})
        phases = [{"name": "pkg_setup", "status": "passed", "exit_code": 0,
                   "started": "2026-01-01T10:00:00Z", "finished": "2026-01-01T10:00:01.5Z"},
                  {"name": "src_test", "status": status, "exit_code": 0 if status == "passed" else 1,
                   "started": "2026-01-01T10:00:01.5Z", "finished": "2026-01-01T10:00:04Z"}]
        return self.result(run, index, status, log_size=size, phases=phases, results=results or {},
                           attachments=atts, started="2026-01-01T10:00:00Z", finished="2026-01-01T10:00:04Z")


@pytest.fixture
def slave_driver(web):
    return SlaveDriver


@dataclass
class Scene:
    """Sample data every page has something of: a finished job with a log, results and an attachment,
    a running one, a waiting one with its SIDEPEND provider, an invalid one."""

    people: People
    driver: SlaveDriver
    toolchain: object  # alice's, passed on box1
    integration: object  # bob's, on a SIDEPEND its provider runs: pipelined (queued)
    provider: object  # the master's job for that SIDEPEND, running on box1
    invalid: object  # bob's, invalid
    done_run: str
    live_run: str


XSS = "<script>window.__xss=1</script><img src=x onerror=alert(1)>"
LOG = (b">>> Running pkg_setup\n \x1b[32;01m*\x1b[0m all good\n \x1b[33;01m*\x1b[0m careful\n"
       b" \x1b[31;01m*\x1b[0m broken\n" + XSS.encode() + b"\n")


@pytest.fixture
def scene(web) -> Scene:
    from autotua_master.jobs.models import Job

    toolchain = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    integration = Job.objects.create_job(root="bob/integration", owner=web.bob)
    provider = Job.objects.get(owner=None)
    invalid = Job.objects.create_job(root="bob/no-such-jobuild", owner=web.bob)
    drv = SlaveDriver("box1", owner=web.vera)
    first = drv.claim()
    assert first["job"]["id"] == toolchain.pk
    drv.run_jobuild(first["run"], 0, log=LOG, results={"tests.passed": "5", "xss": XSS},
                    attachments={"report.html": XSS.encode()})
    drv.finish(first["run"])
    second = drv.claim()
    assert second["job"]["id"] == provider.pk
    drv.log(second["run"], 0, 0, b"compiling\n")
    for j in (toolchain, integration, provider, invalid):
        j.refresh_from_db()
    return Scene(web, drv, toolchain, integration, provider, invalid, first["run"], second["run"])


# -- browser tests --------------------------------------------------------------------------------
#: Debian's chromium (Gentoo names it chromium-browser); AUTOTUA_CHROMIUM overrides
CHROMIUM = (os.environ.get("AUTOTUA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (``bin/host-deps test`` installs it; Playwright's own
    browser download is never used). Playwright gives it a fresh temporary profile (--user-data-dir).
    One per module: closed when its tests are done, so no renderer it starts later is taken for a
    process another test left behind (tests/e2e's check)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make between
    # browser steps are still plain synchronous code
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class LiveWeb:
    url: str
    people: People
    browser: object

    def page(self, who: str | None = None, width: int = 1280, height: int = 900):
        """A new browser page with its own cookies, logged in through the login form when ``who``."""
        ctx = self.browser.new_context(viewport={"width": width, "height": height})
        page = ctx.new_page()
        page.set_default_timeout(15000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors
        if who:
            page.goto(self.url + "/login/")
            page.fill("#id_username", who)
            page.fill("#id_password", PASSWORDS[who])
            page.click("form.stack button[type=submit]")
            page.wait_for_url(self.url + "/")
        return page

    def slave(self, name: str = "box1", arch: str = "amd64", flavours=("openrc",), owner=None) -> SlaveClient:
        from autotua_master.slaves.models import Slave, SlaveState

        _, token = Slave.objects.create_with_token(name=name, arch=arch, flavours=list(flavours),
                                                   state=SlaveState.ACTIVE, owner=owner)
        return SlaveClient(self.url, token, name)


@pytest.fixture
def live_web(transactional_db, master_settings, keys, live_server, browser) -> LiveWeb:
    return LiveWeb(live_server.url, make_people(keys), browser)
