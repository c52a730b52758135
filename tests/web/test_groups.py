"""The web UI of groups: arch testing from a bug's package list (the form, its faults), the group's
matrix page and report, cancel and rerun for the owner and staff only; a job's parameters and group
on its page and in the list, escaped; flagged slaves shown to their owner and staff only."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from autotua.demo.httpserver import MirrorServer
from autotua_master.groups.models import Group
from autotua_master.jobs.models import Job
from autotua_master.snapshots import repository
from autotua_master.tree.models import Maintainer

from .conftest import SlaveDriver, client_for

pytestmark = pytest.mark.django_db
LIST = "=app-misc/hello-1.0 amd64\n=dev-libs/libgreet-1.0 ^\n"


@pytest.fixture
def archtest_web(web, settings, snapshots, snapshot_key, sample):
    with MirrorServer(snapshots[0].mirror) as mirror:
        settings.AUTOTUA_SNAPSHOT_MIRROR = mirror.url
        settings.AUTOTUA_SNAPSHOT_KEY = str(snapshot_key.key_file)
        settings.AUTOTUA_SNAPSHOT_KEY_FINGERPRINT = snapshot_key.fingerprint
        call_command("refreshsnapshots", stdout=io.StringIO())
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create(username="gentoo")
        Maintainer.objects.create(user=user, name="gentoo", fingerprint=sample.fingerprints["gentoo"])
        web.date = snapshots[1].date
        yield web
    repository.close_all()


def new_group(who="alice", **extra) -> Group:
    r = client_for(who).post("/groups/archtest", {"packages": LIST, "bug": "31337", "stable": "1", "arches": "",
                                                  "flavours": "openrc", "combinations": "2", "rdeps": "10",
                                                  "seed": "1", "filter": "", "second_opinion": "on", **extra})
    assert r.status_code == 302, r.content.decode()[-3000:]
    group = Group.objects.get()
    assert r["Location"] == f"/groups/{group.pk}/"
    return group


def test_arch_testing_from_the_form_to_the_matrix(archtest_web):
    group = new_group()
    assert group.owner == archtest_web.alice and group.bug == 31337 and group.seed == 1
    page = client_for(None).get(f"/groups/{group.pk}/").content.decode()
    assert "bug 31337: stabilisation of =app-misc/hello-1.0, =dev-libs/libgreet-1.0" in page
    matrix = page.split('id="matrix"')[1].split("</section>")[0]
    assert matrix.count("<tr") == 1 + len(group.rows)  # the head, one row per configuration
    assert "=app-misc/hello-1.0 USE=&#x27;broken-test english -french&#x27;" in matrix
    assert matrix.count("state-queued") == Job.objects.filter(group=group).count()
    for job in Job.objects.filter(group=group):
        assert f'href="/jobs/{job.pk}/"' in matrix
    assert "refresh.js" in page  # live: it reloads itself while jobs run
    assert f"gentoo-{archtest_web.date}" in page.split('id="report"')[1]
    text = client_for(None).get(f"/groups/{group.pk}/report.txt")
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    assert text.content.decode().startswith(f"AutotuA arch testing #{group.pk}: bug 31337")
    listing = client_for(None).get("/groups/").content.decode()
    assert f'href="/groups/{group.pk}/"' in listing and "queued" in listing


@pytest.mark.bad_input('web', 'a package list with faults in the arch-testing form',
                       'the form again (400) with every fault; no group, no job')
def test_the_form_shows_every_fault(archtest_web):
    r = client_for("alice").post("/groups/archtest", {
        "packages": "=app-misc/nothere-1 amd64\n=app-misc/hello-1.0 sparc\n", "stable": "1", "flavours": "openrc",
        "combinations": "12", "rdeps": "10"})
    assert r.status_code == 400
    page = r.content.decode()
    assert "line 1: =app-misc/nothere-1 matches no package in the Gentoo repository" in page
    assert "line 2: sparc: not an arch of" in page
    r = client_for("alice").post("/groups/archtest", {"packages": LIST, "stable": "1", "flavours": "Open RC",
                                                      "combinations": "99", "rdeps": "10"})
    assert r.status_code == 400 and "a word like" in r.content.decode()
    assert not Group.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(("who", "status"), [(None, 302), ("vera", 403), ("bob", 200), ("alice", 200)])
def test_only_maintainers_reach_the_form(archtest_web, who, status):
    assert client_for(who).get("/groups/archtest").status_code == status


@pytest.mark.parametrize(("who", "may"), [(None, False), ("bob", False), ("vera", False), ("alice", True),
                                          ("root", True)])
def test_cancel_and_rerun_for_the_owner_and_staff(archtest_web, who, may):
    group = new_group()
    page = client_for(who).get(f"/groups/{group.pk}/").content.decode()
    assert ('id="cancel"' in page) is may and ('id="rerun"' in page) is may
    r = client_for(who).post(f"/groups/{group.pk}/cancel", {"reason": "not today"})
    jobs = Job.objects.filter(group=group)
    if may:
        assert r.status_code == 302 and {j.state for j in jobs} == {"cancelled"}
        r = client_for(who).post(f"/groups/{group.pk}/rerun", follow=True)
        assert f"group #{group.pk}: {len(jobs.filter(state='cancelled'))} job(s) made again" in r.content.decode()
        assert jobs.filter(state="queued").count() == jobs.filter(state="cancelled").count()
    else:
        assert r.status_code in (302, 403) and {j.state for j in jobs} == {"queued"}
        assert client_for(who).post(f"/groups/{group.pk}/rerun").status_code in (302, 403)
        assert jobs.count() == len(group.rows)


def test_a_jobs_parameters_and_group(archtest_web):
    group = new_group()
    job = Job.objects.filter(group=group, row=2).get()
    page = client_for(None).get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/groups/{group.pk}/"' in page.split('id="group"')[1].split("</p>")[0]
    values = page.split('id="parameters"')[1].split("</dd>")[0]
    assert "<code>atom</code>" in values and "=app-misc/hello-1.0" in values
    assert "broken-test english -french" in values
    listing = client_for(None).get("/jobs/").content.decode()
    assert f'href="/groups/{group.pk}/"' in listing and "atom==app-misc/hello-1.0" in listing


@pytest.mark.bad_input('web', 'parameter values holding HTML typed into the job form',
                       'an invalid job whose page shows the values escaped')
def test_values_are_shown_escaped(archtest_web):
    r = client_for("alice").post("/jobs/new", {
        "atom": "gentoo/arch-test", "arch": "amd64",
        "parameters": "atom=<script>alert(1)</script>\nuse=<b onmouseover=x>"}, follow=True)
    job = Job.objects.get()
    assert job.state == "invalid" and job.parameters == {"atom": "<script>alert(1)</script>",
                                                         "use": "<b onmouseover=x>"}
    page = r.content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b onmouseover" not in page


@pytest.mark.bad_input('web', 'parameter lines that are not name=value', 'the form again, the error next to the field')
def test_bad_parameter_lines(web):
    r = client_for("alice").post("/jobs/new", {"atom": "gentoo/arch-test", "arch": "amd64", "parameters": "atom"})
    assert r.status_code == 400 and "is not name=value" in r.content.decode().split('for="id_parameters"')[1]
    assert not Job.objects.exists()


def test_a_flagged_slave_is_shown_to_its_owner_and_staff(web, settings):
    settings.AUTOTUA_FLAG_AFTER_RUNS = 2
    broken = SlaveDriver("broken-box", owner=web.vera)
    good = SlaveDriver("good-box")
    for _ in range(2):
        Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
        claimed = broken.claim()
        broken.result(claimed["run"], 0, "failed")
        broken.finish(claimed["run"], "failed")
    Job.objects.create_job(root="alice/toolchain-sanity", owner=web.alice)
    claimed = good.claim()
    good.result(claimed["run"], 0, "passed")
    good.finish(claimed["run"], "passed")
    for who, sees in ((None, False), ("alice", False), ("vera", True), ("root", True)):
        listing = client_for(who).get("/slaves/").content.decode()
        assert ("⚑ flagged" in listing) is sees, who
        page = client_for(who).get(f"/slaves/{broken.slave.pk}/").content.decode()
        assert ('id="flag"' in page) is sees, who
    page = client_for("vera").get(f"/slaves/{broken.slave.pk}/").content.decode()
    assert "none of its last 2 runs passed, while good-box passed the same work" in page
