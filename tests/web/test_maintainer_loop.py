"""The maintainer's loop on the master (issue 15): logs a person reads (phases found in the log, the
phase a running job is in, the end of a failed log with its colours, a cancelled jobuild's phases),
deleting a job that never started, rerunning one that ended, mail at a job's end, the warning for a
job no slave serves, the error pages and the API's root. Through the web UI, the API and the admin,
with runs reported through the slave API (SlaveDriver)."""

from __future__ import annotations

import re

import pytest
import requests
from django.core import mail
from django.test import Client

from autotua_master.jobs.models import Job, LogFile
from tests.web.conftest import SlaveDriver, client_for

pytestmark = pytest.mark.django_db

G, C, N = "\x1b[32;01m", "\x1b[36;01m", "\x1b[0m"


def header(phase: str) -> bytes:
    return f"{G}>>>{N} Running {C}{phase}{N}\n".encode()


FAILING_LOG = (header("pkg_setup") + b" \x1b[32;01m*\x1b[0m setting up\n" + header("src_unpack")
               + header("src_compile") + b"".join(b"compiling %d\n" % i for i in range(60)) + header("src_test")
               + b" \x1b[33;01m*\x1b[0m careful\n \x1b[31;01m*\x1b[0m ERROR: bob/fail-on-purpose-1.0 failed\n"
               + b" \x1b[31;01m*\x1b[0m src_test failed (exit status 1)\n")


def token_client(user) -> Client:
    from rest_framework.authtoken.models import Token

    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def failed_job(web) -> tuple[Job, str, SlaveDriver]:
    """bob/fail-on-purpose, run on box1: its log has the phase headers, in chunks that cut them."""
    job = Job.objects.create_job(root="bob/fail-on-purpose", owner=web.bob)
    drv = SlaveDriver("box1")
    claimed = drv.claim()
    assert claimed["job"]["id"] == job.pk
    run = claimed["run"]
    pos = 0
    for size in (7, 30, 1, 200, 5, 4000):  # chunks cut the headers anywhere
        chunk = FAILING_LOG[pos:pos + size]
        if chunk:
            drv.log(run, 0, pos, chunk)
            pos += len(chunk)
    phases = [{"name": "pkg_setup", "status": "passed", "exit_code": 0},
              {"name": "src_unpack", "status": "passed", "exit_code": 0},
              {"name": "src_compile", "status": "passed", "exit_code": 0},
              {"name": "src_test", "status": "failed", "exit_code": 1}]
    drv.result(run, 0, "failed", log_size=pos, phases=phases)
    drv.finish(run, "failed")
    job.refresh_from_db()
    return job, run, drv


# -- logs ---------------------------------------------------------------------------------------------
def test_the_master_finds_each_phase_header_in_a_log_sent_in_pieces(web):
    _, run, _ = failed_job(web)
    log = LogFile.objects.get(run__uuid=run, index=0)
    found = [(p["name"], p["offset"]) for p in log.phases]
    expect = [(name, FAILING_LOG.index(header(name))) for name in ("pkg_setup", "src_unpack", "src_compile",
                                                                   "src_test")]
    assert found == expect


def test_a_failed_job_shows_the_end_of_the_failing_log_in_colour_and_links_its_phase(web):
    job, run, _ = failed_job(web)
    page = Client().get(f"/jobs/{job.pk}/").content.decode()
    failure = page.split('id="failure"')[1].split("</section>")[0]
    assert "bob/fail-on-purpose-1.0</code> in src_test" in failure
    assert '<span class="ansi-31 ansi-bold">*</span> src_test failed (exit status 1)' in failure
    assert '<span class="line phase" id="phase-src_test">' in failure
    assert "compiling 59" in failure and "compiling 10\n" not in failure  # the last 40 lines only
    assert f'href="/jobs/{job.pk}/runs/{run}/jobuilds/0/log#phase-src_test"' in failure
    assert "\x1b" not in page
    # the log page offers a jump to each phase, the failed one marked
    log_page = Client().get(f"/jobs/{job.pk}/runs/{run}/jobuilds/0/log").content.decode()
    jump = log_page.split('id="log-jump"')[1].split("</p>")[0]
    assert re.findall(r'data-phase="(\w+)"', jump) == ["pkg_setup", "src_unpack", "src_compile", "src_test"]
    assert 'class="failed">src_test (failed)' in jump
    offsets = re.search(r'data-phases="([^"]*)"', log_page).group(1).replace("&quot;", '"')
    assert f'"src_test", "offset": {FAILING_LOG.index(header("src_test"))}' in offsets


def test_a_running_job_shows_its_jobuild_and_phase(web):
    job = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    drv = SlaveDriver("box1")
    run = drv.claim()["run"]
    drv.log(run, 0, 0, header("pkg_setup") + b"setup\n" + header("src_compile") + b"compiling...\n")
    page = Client().get(f"/jobs/{job.pk}/").content.decode()
    now = page.split('id="now"')[1].split("</p>")[0]
    assert "alice/toolchain-sanity-1.0" in now and "in <b>src_compile</b>" in now and "jobuild 1 of 1" in now
    assert "in src_compile" in page.split('id="plan"')[1]
    dashboard = Client().get("/").content.decode().split("Running now")[1].split("Slaves online")[0]
    assert "src_compile" in dashboard
    progress = Client().get(f"/api/v1/jobs/{job.pk}/").json()["progress"]
    assert progress == {"run": run, "index": 0, "jobuild": "alice/toolchain-sanity-1.0", "phase": "src_compile"}


def test_a_cancelled_jobuild_shows_the_phases_it_ran_and_its_log(web):
    job = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    drv = SlaveDriver("box1")
    run = drv.claim()["run"]
    drv.log(run, 0, 0, header("pkg_setup") + b"setup\n" + header("src_test") + b"a long test...\n")
    job.cancel(by="alice", reason="enough")
    page = Client().get(f"/jobs/{job.pk}/").content.decode()
    row = re.search(r'<tr class="row-[^"]*" data-jobuild="alice/toolchain-sanity-1.0">.*?\n</tr>', page, re.S).group(0)
    assert "state-cancelled" in row and "not-run" not in row
    assert '<tr class="ph-ran"><td>pkg_setup</td>' in row and '<tr class="ph-cancelled"><td>src_test</td>' in row
    assert f"/jobs/{job.pk}/runs/{run}/jobuilds/0/log" in row
    log_page = Client().get(f"/jobs/{job.pk}/runs/{run}/jobuilds/0/log").content.decode()
    assert 'class="failed">src_test (cancelled)' in log_page


@pytest.mark.bad_input("web", "ANSI sequences around <script> in a failed jobuild's log (the job page's excerpt)",
                       "escaped; colour spans only from parsed SGR numbers")
def test_the_excerpt_turns_only_sgr_numbers_into_markup(web):
    from autotua_master.web.ansi import to_html

    hostile = '\x1b[31m<script>window.__xss=1</script>\x1b[0m \x1b[31" onmouseover="x\x1b[1;33m<b>bold</b>\n'
    html = str(to_html(hostile))
    assert "<script>" not in html and "<b>" not in html and "onmouseover=\"" not in html
    assert '<span class="ansi-31">&lt;script&gt;window.__xss=1&lt;/script&gt;</span>' in html
    assert '<span class="ansi-33 ansi-bold">&lt;b&gt;bold&lt;/b&gt;</span>' in html
    assert set(re.findall(r'class="([^"]*)"', html)) <= {"line", "ansi-31", "ansi-33 ansi-bold"}


# -- deleting and rerunning -----------------------------------------------------------------------------
@pytest.mark.bad_input("web", "deleting a job that ran, or another maintainer's job",
                       "409 started / 403; the job and its results stay")
def test_an_invalid_or_never_started_job_is_deleted_by_its_owner_only(web):
    typo = Job.objects.create_job(root="bob/fail-on-purpse", owner=web.bob)
    assert typo.state == "invalid" and typo.deletable
    # the typo's error names the atom once, with a guess
    [error] = typo.errors
    assert error["message"] == "there is no jobuild bob/fail-on-purpse in the tree (did you mean bob/fail-on-purpose?)"
    page = client_for("bob").get(f"/jobs/{typo.pk}/").content.decode()
    assert 'id="delete"' in page and page.count("bob/fail-on-purpse") <= 4  # title, heading, root, message
    assert 'id="delete"' not in client_for("alice").get(f"/jobs/{typo.pk}/").content.decode()
    assert client_for("alice").post(f"/jobs/{typo.pk}/delete").status_code == 403
    r = client_for("bob").post(f"/jobs/{typo.pk}/delete")
    assert r.status_code == 302 and not Job.objects.filter(pk=typo.pk).exists()
    # through the API: a queued job that no slave took yet
    queued = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    assert token_client(web.bob).delete(f"/api/v1/jobs/{queued.pk}/").status_code == 403
    assert token_client(web.alice).delete(f"/api/v1/jobs/{queued.pk}/").status_code == 204
    assert not Job.objects.filter(pk=queued.pk).exists()
    # a job that ran is never deleted: its results are on record
    ran, _, _ = failed_job(web)
    r = token_client(web.bob).delete(f"/api/v1/jobs/{ran.pk}/")
    assert r.status_code == 409 and r.json()["code"] == "started", r.json()
    assert client_for("root").post(f"/jobs/{ran.pk}/delete").status_code == 302
    assert Job.objects.filter(pk=ran.pk).exists() and ran.results.count() == 1


def test_the_admin_deletes_only_jobs_that_never_started(web):
    from django.contrib.admin.sites import site

    from autotua_master.jobs.admin import JobAdmin

    admin = JobAdmin(Job, site)
    web.root.is_superuser = True  # the admin's own permissions: Django's
    web.root.save()
    ran, _, _ = failed_job(web)
    never = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    req = type("R", (), {"user": web.root})()
    assert admin.has_delete_permission(req, never) and not admin.has_delete_permission(req, ran)
    page = client_for("root").get(f"/admin/jobs/job/{ran.pk}/delete/")
    assert page.status_code == 403
    r = client_for("root").post(f"/admin/jobs/job/{never.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302 and not Job.objects.filter(pk=never.pk).exists()


@pytest.mark.bad_input("web", "rerunning a job that has not ended, or as a volunteer",
                       "409 not_ended / 403; no job made")
def test_a_job_that_ended_is_rerun_with_the_same_pins(web):
    ran, _, _ = failed_job(web)
    r = token_client(web.alice).post(f"/api/v1/jobs/{ran.pk}/rerun", {}, content_type="application/json")
    assert r.status_code == 201, r.content
    new = r.json()
    same = ("root", "arch", "stage3", "revno")
    assert {k: new[k] for k in same} == {k: getattr(ran, k) if k != "revno" else ran.revision.revno for k in same}
    assert new["revision"] == ran.revision.revision_id and new["rerun_of"] == ran.pk and new["owner"] == "alice"
    assert new["plan"] == ran.plan and new["state"] == "queued"
    # the web UI: a button, then the new job's page, which names the job it reran
    page = client_for("bob").get(f"/jobs/{ran.pk}/").content.decode()
    assert 'id="rerun"' in page and f'href="/jobs/{new["id"]}/"' in page  # "rerun as"
    r = client_for("bob").post(f"/jobs/{ran.pk}/rerun")
    again = Job.objects.order_by("-id").first()
    assert r.status_code == 302 and r["Location"] == f"/jobs/{again.pk}/"
    assert (again.rerun_of_id, again.owner, again.revision_id) == (ran.pk, web.bob, ran.revision_id)
    assert f'href="/jobs/{ran.pk}/"' in client_for("bob").get(f"/jobs/{again.pk}/").content.decode()
    n = Job.objects.count()
    r = token_client(web.alice).post(f"/api/v1/jobs/{again.pk}/rerun", {}, content_type="application/json")
    assert r.status_code == 409 and r.json()["code"] == "not_ended"
    assert client_for("vera").post(f"/jobs/{ran.pk}/rerun").status_code == 403
    assert Job.objects.count() == n


def test_the_owner_is_emailed_at_the_end_when_they_asked(web, settings, django_capture_on_commit_callbacks):
    settings.AUTOTUA_SITE_URL = "https://autotua.example.org"
    web.bob.email = "bob@jobtage.example"
    web.bob.save()
    r = token_client(web.bob).post("/api/v1/jobs/", {"root": "bob/fail-on-purpose", "notify": True},
                                   content_type="application/json")
    assert r.status_code == 201 and r.json()["notify"] is True
    quiet = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)  # did not ask
    mail.outbox.clear()
    drv = SlaveDriver("box1")
    for _ in range(2):
        claimed = drv.claim()
        status = "failed" if claimed["job"]["id"] == r.json()["id"] else "passed"
        with django_capture_on_commit_callbacks(execute=True):  # the mail goes once the end is committed
            drv.run_jobuild(claimed["run"], 0, status=status)
            drv.finish(claimed["run"], status)
    assert Job.objects.get(pk=quiet.pk).state == "passed"
    [sent] = mail.outbox
    job_id = r.json()["id"]
    assert sent.to == ["bob@jobtage.example"] and sent.subject == f"[AutotuA] job #{job_id} bob/fail-on-purpose: failed"
    assert "bob/fail-on-purpose-1.0" in sent.body and f"https://autotua.example.org/jobs/{job_id}/" in sent.body


# -- validation warnings, errors, pages ------------------------------------------------------------------
def test_a_flavour_or_arch_no_slave_serves_is_a_warning_on_the_job(web):
    SlaveDriver("box1", arch="amd64", flavours=("openrc",))
    musl = Job.objects.create_job(root="alice/toolchain-sanity", stage3="musl", owner=web.alice)
    [w] = [w for w in musl.warnings if w["kind"] == "no-slave"]
    assert w["message"] == ("no registered slave serves the musl flavour on amd64 (they serve: amd64 openrc); "
                            "the job waits until one does")
    arm = Job.objects.create_job(root="alice/toolchain-sanity", arch="arm64", owner=web.alice)
    assert any("no registered slave serves arch arm64" in w["message"] for w in arm.warnings)
    fine = Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    assert not [w for w in fine.warnings if w["kind"] == "no-slave"]
    page = Client().get(f"/jobs/{musl.pk}/").content.decode().split('id="validation"')[1].split("</section>")[0]
    assert "no-slave" in page and "the musl flavour on amd64" in page


@pytest.mark.bad_input("api", "a job at a revision the tree lacks (the message)",
                       "400 unknown_revision, no server path")
def test_an_unknown_revision_never_shows_a_server_path(web, settings):
    r = token_client(web.alice).post("/api/v1/jobs/", {"root": "alice/toolchain-sanity", "revision": "nobody@x-1"},
                                     content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "unknown_revision"
    assert r.json()["detail"] == "the tree: unknown revision 'nobody@x-1'"
    assert str(settings.AUTOTUA_TREE) not in r.content.decode()


def test_403_and_404_pages_are_in_the_site_s_layout_and_say_why(web):
    page = client_for("vera").get("/jobs/new")
    assert page.status_code == 403
    text = page.content.decode()
    assert 'class="brand"' in text and 'id="error-403"' in text
    assert "Only maintainers (users with a recorded key) and staff create jobs." in text
    assert "createmaintainer vera" in text
    missing = Client().get("/jobs/999999/")
    assert missing.status_code == 404 and 'class="brand"' in missing.content.decode()
    assert "No job #999999." in missing.content.decode()
    nowhere = Client().get("/no/such/page").content.decode()
    assert "There is no page at <code>/no/such/page</code>." in nowhere
    # the API keeps its JSON errors
    assert Client().get("/api/v1/nothing").json()["code"] == "not_found"


def test_the_api_root_answers_with_its_links(web, live_server):
    body = requests.get(live_server.url + "/api/v1/", timeout=30).json()
    assert body["jobs"] == live_server.url + "/api/v1/jobs/"
    assert body["schema"] == live_server.url + "/api/v1/schema/"
    assert body["push"] == live_server.url + "/tree/push"
    assert requests.get(body["jobs"], timeout=30).status_code == 200
    assert requests.get(body["schema"], timeout=30).status_code == 200

