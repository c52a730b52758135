"""The authorisation matrix: every role against every API endpoint, web page and admin page, over HTTP.

Roles: anonymous; a maintainer (alice, who owns the jobs); another maintainer (bob); a volunteer who
owns a slave (vera, no key); staff; the slave holding the run (box1); another active slave (box2); a
pending slave; a revoked slave. The endpoints come from the URL conf itself: a URL pattern that no
cell covers fails the test, so a new endpoint cannot escape the matrix (the admin's patterns are
covered through every model it registers). Each cell asserts its status; a refused write also
asserts that nothing changed (every row of every table, every file of the runs). The matrix is
rendered into docs/security.md.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
from django.contrib import admin
from django.urls import URLResolver, get_resolver, reverse

from tests.hardening.docs import write_section
from tests.hardening.state import diff, snapshot
from tests.support.slaveclient import sha256_digest_header

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PEOPLE = ["anonymous", "maintainer", "other maintainer", "volunteer", "staff"]
SLAVES = ["slave", "other slave", "pending slave", "revoked slave"]
ROLES = PEOPLE + SLAVES
PASSWORD = "pw-matrix-1"
LOGIN = "302 login"
#: the root of the groups the matrix makes (on the musl flavour, which no slave of the world serves)
GROUP_ROOT = "alice/toolchain-sanity"


def expect(default, **by_role) -> dict[str, str]:
    """Expected outcome per role: ``default`` unless a role (spaces as underscores) says otherwise."""
    out = {r: str(default) for r in ROLES}
    for k, v in by_role.items():
        role = k.replace("_", " ")
        assert role in ROLES, k
        out[role] = str(v)
    return out


def api_people(read=200, **kw) -> dict[str, str]:
    """People's API: slave tokens are refused everywhere (403)."""
    return expect(read, slave=403, other_slave=403, pending_slave=403, revoked_slave=403, **kw)


def api_slaves(holder, other=404, **kw) -> dict[str, str]:
    """The slave protocol: no token 401, a person's 403, pending and revoked 403, another slave's run 404."""
    return expect(403, anonymous=401, slave=holder, other_slave=other, **kw)


def web(anyone=200) -> dict[str, str]:
    return expect(anyone)


def web_login(allowed, *, maintainer=None, other_maintainer=None, volunteer=None) -> dict[str, str]:
    """Pages behind a login: anonymous and slaves (a slave token is nobody on the web) go to the login page."""
    out = expect(LOGIN)
    for role, v in zip(["maintainer", "other maintainer", "volunteer", "staff"],
                       [maintainer, other_maintainer, volunteer, allowed], strict=True):
        out[role] = str(allowed if v is None else v)
    return out


@dataclass
class Cell:
    name: str  # the URL pattern's name (admin: the model)
    method: str
    label: str  # the path as the matrix shows it
    expected: dict[str, str]
    path: Callable  # (world, role) -> the URL path
    kind: str = "api"  # api, web, admin
    body: Callable | None = None  # (world, role) -> dict(json=...) / dict(data=..., headers=...)
    always_unchanged: bool = False  # a write whose success changes nothing either (a replay, a bad form)


@dataclass
class World:
    url: str
    users: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)  # role -> Authorization header value
    api: dict = field(default_factory=dict)  # role -> requests.Session
    web: dict = field(default_factory=dict)  # role -> requests.Session (logged in for people)
    slave_ids: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    result0: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    counter: int = 0

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def target_job(self) -> int:
        """A fresh job of alice's that may be cancelled and re-validated (invalid: never claimable)."""
        from autotua_master.jobs.models import Job

        return Job.objects.create_job(root="alice/no-such-jobuild", owner=self.users["maintainer"]).pk

    def target_group(self, ended: bool = False) -> int:
        """A fresh group of alice's, one job on a flavour no slave of the world serves (never claimed);
        ``ended``: its job cancelled, so that a rerun has a cell to take again."""
        from autotua_master.groups import actions
        from autotua_master.groups.create import RowSpec, create_group

        group = create_group(owner=self.users["maintainer"], kind="matrix", title="matrix", root=GROUP_ROOT,
                             rows=[RowSpec(GROUP_ROOT, {})], columns=[("amd64", "musl")])
        if ended:
            actions.cancel_group(group, "alice", "for the matrix")
        return group.pk

    def target_slave(self) -> int:
        """A fresh slave vera owns (a new token or a revoke changes nothing anyone else uses)."""
        from autotua_master.slaves.models import Slave, SlaveState

        s, _ = Slave.objects.create_with_token(name=self.unique("lent"), arch="amd64", flavours=["openrc"],
                                               state=SlaveState.ACTIVE, owner=self.users["volunteer"])
        return s.pk


def login_session(url: str, username: str | None, headers: dict | None = None) -> requests.Session:
    s = requests.Session()
    s.headers.update(headers or {})
    s.get(url + "/login/")  # the csrftoken cookie, for anonymous POSTs too
    if username:
        r = s.post(url + "/login/", data={"username": username, "password": PASSWORD,
                                         "csrfmiddlewaretoken": s.cookies["csrftoken"]}, allow_redirects=False)
        assert r.status_code == 302, (username, r.status_code)
    return s


def build_world(url: str, keys) -> World:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from autotua_master.slaves.models import Slave, SlaveState
    from autotua_master.tree.models import Maintainer

    w = World(url)
    User = get_user_model()
    for role, name in [("maintainer", "alice"), ("other maintainer", "bob"), ("volunteer", "vera"), ("staff", "root")]:
        user = User.objects.create_user(name, password=PASSWORD, is_staff=name == "root",
                                        is_superuser=name == "root")
        if name in ("alice", "bob"):
            Maintainer.objects.create(user=user, name=name, fingerprint=keys[name])
        w.users[role] = user
        w.tokens[role] = f"Token {Token.objects.create(user=user).key}"
    for role, name, state in [("slave", "box1", SlaveState.ACTIVE), ("other slave", "box2", SlaveState.ACTIVE),
                              ("pending slave", "newbie", SlaveState.PENDING),
                              ("revoked slave", "gone", SlaveState.REVOKED)]:
        slave, token = Slave.objects.create_with_token(name=name, arch="amd64", flavours=["openrc"], state=state,
                                                       owner=w.users["volunteer"] if name == "box1" else None)
        w.slave_ids[role] = slave.pk
        w.tokens[role] = f"Slave {token}"
    for role in ROLES:
        s = requests.Session()
        if role in w.tokens:
            s.headers["Authorization"] = w.tokens[role]
        w.api[role] = s
        username = w.users[role].username if role in w.users else None
        w.web[role] = login_session(url, username, {"Authorization": w.tokens[role]} if role in SLAVES else None)

    # alice's toolchain job, run to the end by box1 (a log, an attachment, results), then her hello
    # suite (two jobuilds), claimed by box1: jobuild 0 reported, jobuild 1 running
    box1 = w.api["slave"]
    alice = w.api["maintainer"]

    def create(root):
        r = alice.post(url + "/api/v1/jobs/", json={"root": root})
        assert r.status_code == 201 and r.json()["state"] == "queued", r.text
        return r.json()["id"]

    def claim():
        r = box1.post(url + "/api/v1/claim", json={"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"]})
        assert r.status_code == 200 and r.json()["run"], r.text
        return r.json()["run"]

    def report(run, index):
        log = f"log of jobuild {index}\n".encode()
        assert box1.patch(url + f"/api/v1/runs/{run}/jobuilds/{index}/log", data=log,
                          headers={"Content-Range": f"bytes 0-{len(log) - 1}"}).status_code == 202
        assert box1.put(url + f"/api/v1/runs/{run}/jobuilds/{index}/attachments/report.txt", data=b"report",
                        headers={"Content-Digest": sha256_digest_header(b"report")}).status_code == 201
        result = {"status": "passed", "exit_code": 0, "log_size": len(log), "results": {"k": "v"},
                  "attachments": [{"name": "report.txt", "size": 6, "sha256": hashlib.sha256(b"report").hexdigest()}]}
        assert box1.put(url + f"/api/v1/runs/{run}/jobuilds/{index}/result", json=result).json()["action"] == "continue"
        return log, result

    w.jobs["done"] = create("alice/toolchain-sanity")
    w.runs["done"] = claim()
    report(w.runs["done"], 0)
    assert box1.post(url + f"/api/v1/runs/{w.runs['done']}/finish", json={"status": "passed"}).status_code == 200
    w.jobs["live"] = create("alice/hello-suite")
    w.runs["live"] = claim()
    w.log0, w.result0 = report(w.runs["live"], 0)
    w.groups["live"] = w.target_group()
    w.inputs = {"stage3": {"name": "stage3-amd64-openrc-20261117T170000Z.tar.xz", "timestamp": "20261117T170000Z"},
                "revision": "matrix", "repository": {"source": "none"}}
    assert box1.put(url + f"/api/v1/runs/{w.runs['live']}/inputs", json=w.inputs).status_code == 201
    return w


def outcome(resp: requests.Response) -> str:
    if resp.status_code in (301, 302) and "/login/" in resp.headers.get("Location", ""):
        return LOGIN
    return str(resp.status_code)


# -- the cells ------------------------------------------------------------------------------------
def cells(w: World) -> list[Cell]:
    live, done = w.runs["live"], w.runs["done"]
    job, done_job = w.jobs["live"], w.jobs["done"]
    run_path = "/api/v1/runs/{run}/"

    def claim_body(w, role):
        run = live if role == "slave" else str(uuid.uuid4())  # the holder repeats its claim: the same answer
        return {"json": {"run": run, "arch": "amd64", "flavours": ["openrc"]}}

    def create_body(w, role):
        return {"json": {"root": "alice/no-such-jobuild"}}  # stored invalid: never claimable

    api = [
        Cell("schema", "GET", "/api/v1/schema/", api_people(), lambda w, r: "/api/v1/schema/"),
        Cell("slave-register", "POST", "/api/v1/slaves/register", expect(201), lambda w, r: "/api/v1/slaves/register",
             body=lambda w, r: {"json": {"name": w.unique("volunteer-box-"), "arch": "amd64", "flavours": ["openrc"]}}),
        Cell("slave-me", "GET", "/api/v1/slaves/me", api_slaves(200, other=200, pending_slave=200,
                                                                 revoked_slave=200), lambda w, r: "/api/v1/slaves/me"),
        Cell("claim", "POST", "/api/v1/claim", api_slaves(200, other=200), lambda w, r: "/api/v1/claim",
             body=claim_body),
        Cell("run-heartbeat", "POST", run_path + "heartbeat", api_slaves(200),
             lambda w, r: f"/api/v1/runs/{live}/heartbeat", body=lambda w, r: {"json": {}}),
        Cell("run-log", "PATCH", run_path + "jobuilds/{index}/log", api_slaves(202),
             lambda w, r: f"/api/v1/runs/{live}/jobuilds/0/log", always_unchanged=True,
             body=lambda w, r: {"data": w.log0, "headers": {"Content-Range": f"bytes 0-{len(w.log0) - 1}",
                                                            "Content-Type": "application/octet-stream"}}),
        Cell("run-attachment", "PUT", run_path + "jobuilds/{index}/attachments/{name}", api_slaves(200),
             lambda w, r: f"/api/v1/runs/{live}/jobuilds/0/attachments/report.txt", always_unchanged=True,
             body=lambda w, r: {"data": b"report", "headers": {"Content-Digest": sha256_digest_header(b"report"),
                                                               "Content-Type": "application/octet-stream"}}),
        Cell("run-result", "PUT", run_path + "jobuilds/{index}/result", api_slaves(200),
             lambda w, r: f"/api/v1/runs/{live}/jobuilds/0/result", body=lambda w, r: {"json": w.result0},
             always_unchanged=True),
        Cell("run-inputs", "PUT", run_path + "inputs", api_slaves(200),
             lambda w, r: f"/api/v1/runs/{live}/inputs", body=lambda w, r: {"json": w.inputs},
             always_unchanged=True),
        Cell("run-finish", "POST", run_path + "finish", api_slaves(200),
             lambda w, r: f"/api/v1/runs/{done}/finish", body=lambda w, r: {"json": {"status": "passed"}},
             always_unchanged=True),
        Cell("job-list", "GET", "/api/v1/jobs/", api_people(), lambda w, r: "/api/v1/jobs/"),
        Cell("job-list", "POST", "/api/v1/jobs/", api_people(201, anonymous=401, volunteer=403),
             lambda w, r: "/api/v1/jobs/", body=create_body),
        Cell("job-detail", "GET", "/api/v1/jobs/{id}/", api_people(), lambda w, r: f"/api/v1/jobs/{job}/"),
        Cell("job-cancel", "POST", "/api/v1/jobs/{id}/cancel", api_people(200, anonymous=401, other_maintainer=403,
                                                                          volunteer=403),
             lambda w, r: f"/api/v1/jobs/{w.target_job()}/cancel", body=lambda w, r: {"json": {"reason": "matrix"}}),
        Cell("job-revalidate", "POST", "/api/v1/jobs/{id}/revalidate",
             api_people(200, anonymous=401, other_maintainer=403, volunteer=403),
             lambda w, r: f"/api/v1/jobs/{w.target_job()}/revalidate", body=lambda w, r: {"json": {}}),
        Cell("job-log", "GET", "/api/v1/jobs/{id}/runs/{run}/jobuilds/{index}/log", api_people(),
             lambda w, r: f"/api/v1/jobs/{job}/runs/{live}/jobuilds/0/log"),
        Cell("job-attachment", "GET", "/api/v1/jobs/{id}/runs/{run}/jobuilds/{index}/attachments/{name}",
             api_people(), lambda w, r: f"/api/v1/jobs/{job}/runs/{live}/jobuilds/0/attachments/report.txt"),
        Cell("api-root", "GET", "/api/v1/", expect(200), lambda w, r: "/api/v1/"),
        Cell("job-detail", "DELETE", "/api/v1/jobs/{id}/ (never started)",
             api_people(204, anonymous=401, other_maintainer=403, volunteer=403),
             lambda w, r: f"/api/v1/jobs/{w.target_job()}/"),
        Cell("job-rerun", "POST", "/api/v1/jobs/{id}/rerun (ended)", api_people(201, anonymous=401, volunteer=403),
             lambda w, r: f"/api/v1/jobs/{done_job}/rerun", body=lambda w, r: {"json": {}}),
        Cell("group-list", "GET", "/api/v1/groups/", api_people(), lambda w, r: "/api/v1/groups/"),
        Cell("group-list", "POST", "/api/v1/groups/ (a matrix)", api_people(201, anonymous=401, volunteer=403),
             lambda w, r: "/api/v1/groups/",
             body=lambda w, r: {"json": {"root": GROUP_ROOT, "flavours": ["musl"], "parameters": {}}}),
        Cell("group-archtest", "POST", "/api/v1/groups/archtest (a package the snapshot lacks)",
             api_people(400, anonymous=401, volunteer=403), lambda w, r: "/api/v1/groups/archtest",
             body=lambda w, r: {"json": {"packages": "=app-misc/nothing-1.0 amd64\n"}}, always_unchanged=True),
        Cell("group-detail", "GET", "/api/v1/groups/{id}/", api_people(),
             lambda w, r: f"/api/v1/groups/{w.groups['live']}/"),
        Cell("group-report", "GET", "/api/v1/groups/{id}/report", api_people(),
             lambda w, r: f"/api/v1/groups/{w.groups['live']}/report"),
        Cell("group-report-text", "GET", "/api/v1/groups/{id}/report.txt", api_people(),
             lambda w, r: f"/api/v1/groups/{w.groups['live']}/report.txt"),
        Cell("group-cancel", "POST", "/api/v1/groups/{id}/cancel",
             api_people(200, anonymous=401, other_maintainer=403, volunteer=403),
             lambda w, r: f"/api/v1/groups/{w.target_group()}/cancel", body=lambda w, r: {"json": {"reason": "m"}}),
        Cell("group-rerun", "POST", "/api/v1/groups/{id}/rerun (a cell cancelled)",
             api_people(200, anonymous=401, other_maintainer=403, volunteer=403),
             lambda w, r: f"/api/v1/groups/{w.target_group(ended=True)}/rerun", body=lambda w, r: {"json": {}}),
        # breezy's smart protocol wants HTTP Basic with a maintainer's token (tests/master/test_push.py):
        # a session, an API token header or a slave token is nobody here
        Cell("tree-push", "POST", "/tree/push/.bzr/smart", expect(401), lambda w, r: "/tree/push/.bzr/smart",
             body=lambda w, r: {"data": b"hello\n", "csrf": False}, always_unchanged=True),
        Cell("tree", "GET", "/tree/{path}", web(), lambda w, r: "/tree/.bzr/branch-format"),
        Cell("distfiles", "GET", "/distfiles/{path}", web(), lambda w, r: "/distfiles/hello-suite-1.0.tar.gz"),
    ]
    log_base = f"/jobs/{done_job}/runs/{done}/jobuilds/0/"
    pages = [
        Cell("web:dashboard", "GET", "/", web(), lambda w, r: "/"),
        Cell("web:login", "GET", "/login/", web(), lambda w, r: "/login/"),
        Cell("web:login", "POST", "/login/ (a wrong password)", web(), lambda w, r: "/login/",
             body=lambda w, r: {"data": {"username": "alice", "password": "wrong"}}, always_unchanged=True),
        Cell("web:logout", "POST", "/logout/", web(302), lambda w, r: "/logout/"),
        Cell("web:jobs", "GET", "/jobs/", web(), lambda w, r: "/jobs/"),
        Cell("web:job-create", "GET", "/jobs/new", web_login(200, volunteer=403), lambda w, r: "/jobs/new"),
        Cell("web:job-create", "POST", "/jobs/new", web_login(302, volunteer=403), lambda w, r: "/jobs/new",
             body=lambda w, r: {"data": {"atom": "alice/no-such-jobuild", "revision": "", "arch": "amd64",
                                         "stage3": ""}}),
        Cell("web:job", "GET", "/jobs/{id}/", web(), lambda w, r: f"/jobs/{job}/"),
        Cell("web:job-graph", "GET", "/jobs/{id}/graph.svg", web(), lambda w, r: f"/jobs/{job}/graph.svg"),
        Cell("web:job-revalidate", "POST", "/jobs/{id}/revalidate",
             web_login(302, other_maintainer=403, volunteer=403),
             lambda w, r: f"/jobs/{w.target_job()}/revalidate", body=lambda w, r: {"data": {"revision": ""}}),
        Cell("web:job-cancel", "POST", "/jobs/{id}/cancel", web_login(302, other_maintainer=403, volunteer=403),
             lambda w, r: f"/jobs/{w.target_job()}/cancel", body=lambda w, r: {"data": {"reason": "matrix"}}),
        Cell("web:job-delete", "POST", "/jobs/{id}/delete (never started)",
             web_login(302, other_maintainer=403, volunteer=403),
             lambda w, r: f"/jobs/{w.target_job()}/delete", body=lambda w, r: {"data": {}}),
        Cell("web:job-rerun", "POST", "/jobs/{id}/rerun (ended)", web_login(302, volunteer=403),
             lambda w, r: f"/jobs/{done_job}/rerun", body=lambda w, r: {"data": {}}),
        Cell("web:job-cancel", "POST", "/jobs/{id}/cancel (no CSRF token)", expect(403),
             lambda w, r: f"/jobs/{w.target_job()}/cancel", body=lambda w, r: {"data": {}, "csrf": False}),
        Cell("web:log", "GET", "/jobs/{id}/runs/{run}/jobuilds/{n}/log", web(), lambda w, r: log_base + "log"),
        Cell("web:log-text", "GET", "/jobs/{id}/runs/{run}/jobuilds/{n}/log.txt", web(),
             lambda w, r: log_base + "log.txt"),
        Cell("web:attachment", "GET", "/jobs/{id}/runs/{run}/jobuilds/{n}/attachments/{name}", web(),
             lambda w, r: log_base + "attachments/report.txt"),
        Cell("web:groups", "GET", "/groups/", web(), lambda w, r: "/groups/"),
        Cell("web:archtest-create", "GET", "/groups/archtest", web_login(200, volunteer=403),
             lambda w, r: "/groups/archtest"),
        Cell("web:archtest-create", "POST", "/groups/archtest (a package the snapshot lacks)",
             web_login(400, volunteer=403), lambda w, r: "/groups/archtest", always_unchanged=True,
             body=lambda w, r: {"data": {"packages": "=app-misc/nothing-1.0 amd64", "stable": "1", "flavours": "openrc",
                                         "combinations": "2", "rdeps": "0"}}),
        Cell("web:group", "GET", "/groups/{id}/", web(), lambda w, r: f"/groups/{w.groups['live']}/"),
        Cell("web:group-report", "GET", "/groups/{id}/report.txt", web(),
             lambda w, r: f"/groups/{w.groups['live']}/report.txt"),
        Cell("web:group-cancel", "POST", "/groups/{id}/cancel", web_login(302, other_maintainer=403, volunteer=403),
             lambda w, r: f"/groups/{w.target_group()}/cancel", body=lambda w, r: {"data": {"reason": "m"}}),
        Cell("web:group-rerun", "POST", "/groups/{id}/rerun (a cell cancelled)",
             web_login(302, other_maintainer=403, volunteer=403),
             lambda w, r: f"/groups/{w.target_group(ended=True)}/rerun", body=lambda w, r: {"data": {}}),
        Cell("web:slaves", "GET", "/slaves/", web(), lambda w, r: "/slaves/"),
        Cell("web:slave-create", "GET", "/slaves/new", web_login(200), lambda w, r: "/slaves/new"),
        Cell("web:slave-create", "POST", "/slaves/new", web_login(200), lambda w, r: "/slaves/new",
             body=lambda w, r: {"data": {"name": w.unique("added-"), "arch": "amd64", "flavours": "openrc"}}),
        Cell("web:slave-adopt", "GET", "/slaves/adopt", web_login(200), lambda w, r: "/slaves/adopt"),
        Cell("web:slave-adopt", "POST", "/slaves/adopt (a token nobody has)", web_login(400),
             lambda w, r: "/slaves/adopt", body=lambda w, r: {"data": {"token": "s999_nope"}}, always_unchanged=True),
        Cell("web:slave", "GET", "/slaves/{id}/", web(), lambda w, r: f"/slaves/{w.slave_ids['slave']}/"),
        Cell("web:slave-token", "POST", "/slaves/{id}/token (vera's slave)",
             web_login(200, maintainer=403, other_maintainer=403),
             lambda w, r: f"/slaves/{w.target_slave()}/token", body=lambda w, r: {"data": {}}),
        Cell("web:slave-revoke", "POST", "/slaves/{id}/revoke (vera's slave)",
             web_login(302, maintainer=403, other_maintainer=403),
             lambda w, r: f"/slaves/{w.target_slave()}/revoke", body=lambda w, r: {"data": {}}),
        Cell("web:tree", "GET", "/browse/", web(), lambda w, r: "/browse/"),
        Cell("web:revision", "GET", "/browse/r{n}/", web(), lambda w, r: "/browse/r1/"),
        Cell("web:maintainer", "GET", "/browse/maintainers/{name}/", web(), lambda w, r: "/browse/maintainers/alice/"),
        Cell("web:jobuild", "GET", "/browse/jobuilds/{user}/{pv}/", web(),
             lambda w, r: "/browse/jobuilds/alice/hello-suite-1.1/"),
    ]
    for c in pages:
        c.kind = "web"
    for c in api[-3:]:
        c.kind = "web"  # the push, the branch and the distfiles: sessions and tokens alike
    staff_only = expect(LOGIN, staff=200)
    adm = [Cell("admin:index", "GET", "/admin/", staff_only, lambda w, r: "/admin/", kind="admin")]
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        app, name = model._meta.app_label, model._meta.model_name
        label = f"/admin/{app}/{name}/"
        changelist, add = reverse(f"admin:{app}_{name}_changelist"), reverse(f"admin:{app}_{name}_add")
        # records only slaves write (runs, results, logs, attachments) are never added by hand
        can_add = not getattr(admin.site._registry[model], "records_only", False)
        adm += [Cell(f"admin:{model._meta.label}", "GET", label, staff_only, lambda w, r, u=changelist: u,
                     kind="admin"),
                Cell(f"admin:{model._meta.label}", "POST", label + "add/ (an empty form)",
                     staff_only if can_add else expect(LOGIN, staff=403),
                     lambda w, r, u=add: u, kind="admin", body=lambda w, r: {"data": {}}, always_unchanged=True)]
    return api + pages + adm


def prepare(w: World, cell: Cell, role: str) -> Callable[[], requests.Response]:
    """Everything the request needs (fresh targets included), made before the snapshot; the call."""
    path = cell.path(w, role)
    kw = dict(cell.body(w, role)) if cell.body else {}
    session = w.api[role] if cell.kind == "api" else w.web[role]
    if cell.name == "web:logout":  # logging out ends the session: a throwaway one
        username = w.users[role].username if role in w.users else None
        session = login_session(w.url, username, {"Authorization": w.tokens[role]} if role in SLAVES else None)
    headers = dict(kw.pop("headers", {}))
    if cell.kind != "api" and cell.method != "GET" and kw.pop("csrf", True):
        headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
    kw.pop("csrf", None)
    return lambda: session.request(cell.method, w.url + path, headers=headers, allow_redirects=False, timeout=60,
                                   **kw)


def url_names() -> set[str]:
    """Every URL pattern's name (or pattern, when it has none), the admin's left out."""
    def walk(patterns, prefix="", ns=None):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern), p.namespace or ns)
            elif not prefix.startswith("admin/"):  # the admin: through every model it registers
                yield (f"{ns}:{p.name}" if ns and p.name else p.name) or prefix + str(p.pattern)
    return set(walk(get_resolver().url_patterns))


def render(rows: list[tuple[Cell, dict[str, str]]]) -> str:
    head = "| endpoint | " + " | ".join(ROLES) + " |"
    lines = [f"**{len(rows)} endpoints and methods x {len(ROLES)} roles = {len(rows) * len(ROLES)} cells**, "
             "each asserted; a refused write also left every row and file as it was. "
             f"`{LOGIN}`: sent to the login page.", ""]
    for kind, title in [("api", "The API"), ("web", "The web UI (and the files it serves)"),
                        ("admin", "The admin (every registered model)")]:
        lines += [f"#### {title}", "", head, "|---|" + "---|" * len(ROLES)]
        for cell, got in rows:
            if cell.kind == kind:
                lines.append(f"| {cell.method} `{cell.label}` | " + " | ".join(got[r] for r in ROLES) + " |")
        lines.append("")
    return "\n".join(lines)


def test_authorisation_matrix(master_settings, keys, live_server, capsys):
    w = build_world(live_server.url, keys)
    matrix = cells(w)
    missing = url_names() - {c.name for c in matrix}
    assert not missing, f"URL patterns no cell of the matrix covers: {sorted(missing)}"
    assert {c.name for c in matrix if c.kind == "admin"} >= {f"admin:{m._meta.label}" for m in admin.site._registry}
    rows, wrong = [], []
    for cell in matrix:
        got = {}
        for role in ROLES:
            write = cell.method not in ("GET", "HEAD")
            call = prepare(w, cell, role)
            before = snapshot() if write else None
            resp = call()
            got[role] = outcome(resp)
            if got[role] != cell.expected[role]:
                wrong.append(f"{cell.method} {cell.label} as {role}: {got[role]}, expected {cell.expected[role]} "
                             f"({resp.text[:200]!r})")
            refused = resp.status_code >= 400 or got[role] == LOGIN
            if write and (refused or cell.always_unchanged):
                changed = diff(before, snapshot())
                if changed:
                    wrong.append(f"{cell.method} {cell.label} as {role} ({got[role]}) changed {changed}")
        rows.append((cell, got))
    with capsys.disabled():
        print(f"\nauthorisation matrix: {len(rows)} endpoints x {len(ROLES)} roles = {len(rows) * len(ROLES)} cells")
    assert not wrong, "\n".join(wrong)
    write_section("matrix", render(rows))
