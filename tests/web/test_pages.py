"""Each page shows what issue 7 says it shows, on real data (jobs validated against the signed sample
tree, runs reported through the slave API)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from autotua_master.jobs.models import Job, JobState

pytestmark = pytest.mark.django_db


def text(resp) -> str:
    assert resp.status_code == 200, resp.content[:3000]
    return resp.content.decode()


def test_dashboard(scene):
    failed = Job.objects.create_job(root="bob/needs-failing", owner=scene.people.bob)
    page = text(Client().get("/"))
    assert re.search(r"state-queued\">queued</span> <b>\d+</b>", page)
    # the running job, its slave and the jobuild it is at
    running = page.split("Running now")[1].split("Slaves online")[0]
    assert f"#{scene.provider.pk} =alice/hello-suite-1.1" in running and "box1" in running
    assert "alice/toolchain-sanity-1.0" in running and "(1 of 2)" in running
    assert "box1" in page.split("Slaves online")[1].split("Recent failures")[0]
    failures = page.split("Recent failures")[1]
    failed.refresh_from_db()
    if failed.state == JobState.FAILED:
        assert f"#{failed.pk} bob/needs-failing" in failures
    assert "bob/integration" not in failures


def test_job_page_plan_phases_results_attachments(scene):
    page = text(Client().get(f"/jobs/{scene.toolchain.pk}/"))
    assert "state-passed" in page and "alice/toolchain-sanity-1.0" in page
    assert "Check that the chroot has a working bash and coreutils" in page  # the description
    assert "pkg_setup" in page and "src_test" in page and "exit 0" in page
    assert "1.5 s" in page and "2.5 s" in page  # phase times
    assert "tests.passed" in page and ">5<" in page
    assert f"/jobs/{scene.toolchain.pk}/runs/{scene.done_run}/jobuilds/0/attachments/report.html" in page
    assert f"/jobs/{scene.toolchain.pk}/runs/{scene.done_run}/jobuilds/0/log" in page
    assert "box1" in page and "Valid at r1" in page
    nav = page.split("<nav>")[1].split("</nav>")[0]
    assert re.findall(r'<a href="([^"]+)" class="here">', nav) == ["/jobs/"]


def test_job_page_sidepends_and_provider(scene):
    page = text(Client().get(f"/jobs/{scene.integration.pk}/"))
    # its provider runs, so it is pipelined: queued, its jobuilds before the one that needs it run meanwhile
    assert "pipelined: SIDEPEND alice/hello-suite-1.1" in page and "is running" in page
    side = page.split('id="sidepends"')[1].split("</section>")[0]
    assert "&lt;alice/hello-suite-2" in side and "bob/integration-1.0" in side
    assert f'href="/jobs/{scene.provider.pk}/"' in side and "running" in side
    # the warning of the any-of group is in the validation report
    assert "bob/no-such-jobuild" in page.split('id="validation"')[1].split("</section>")[0]
    # the provider names the jobs that wait for it
    provider = text(Client().get(f"/jobs/{scene.provider.pk}/"))
    assert "queued by the master" in provider and f"#{scene.integration.pk} bob/integration" in provider
    assert "follow" in provider  # its first jobuild is running


def test_sidepend_satisfied_by_a_past_result(scene):
    """Once the provider passes, a new job's SIDEPEND names the result (job and slave) that satisfied it."""
    drv = scene.driver
    drv.run_jobuild(scene.live_run, 0, log=b"")
    drv.run_jobuild(scene.live_run, 1)
    drv.finish(scene.live_run)
    job = Job.objects.create_job(root="bob/integration", owner=scene.people.alice)
    assert job.state == JobState.QUEUED
    side = text(Client().get(f"/jobs/{job.pk}/")).split('id="sidepends"')[1].split("</section>")[0]
    assert "state-passed" in side and f"job #{scene.provider.pk}</a> on box1" in side


def test_invalid_job_shows_every_error(scene):
    page = text(Client().get(f"/jobs/{scene.invalid.pk}/"))
    report = page.split('id="validation"')[1].split("</section>")[0]
    assert "report errors" in report and "missing" in report and "bob/no-such-jobuild" in report
    assert "state-invalid" in page


def test_jobs_list_filters_and_paging(scene):
    c = Client()
    page = text(c.get("/jobs/"))
    for j in (scene.toolchain, scene.integration, scene.provider, scene.invalid):
        assert f'href="/jobs/{j.pk}/"' in page

    def ids(query: str) -> set[int]:
        return {int(m) for m in re.findall(r'<td><a href="/jobs/(\d+)/">', text(c.get("/jobs/?" + query)))}

    assert ids("state=invalid") == {scene.invalid.pk}
    assert ids("owner=bob") == {scene.integration.pk, scene.invalid.pk}
    assert ids("owner=-") == {scene.provider.pk}
    assert ids("atom=toolchain") == {scene.toolchain.pk}
    assert ids("slave=box1") == {scene.toolchain.pk, scene.provider.pk}
    assert ids("slave=nobody") == set()
    assert ids("arch=sparc") == set()
    assert ids("arch=amd64&state=passed") == {scene.toolchain.pk}
    assert ids("state=bogus") == set()  # not a state: nothing, and the form says so
    # paging: 50 a page, filters kept in the links
    base = scene.toolchain
    Job.objects.bulk_create([Job(root=f"alice/toolchain-sanity-{i}", arch="amd64", stage3="openrc",
                                 revision=base.revision, state=JobState.CANCELLED, owner=base.owner)
                             for i in range(60)])
    first = text(c.get("/jobs/?state=cancelled"))
    assert "page 1 of 2" in first and "?state=cancelled&amp;page=2" in first
    assert len(ids("state=cancelled")) == 50 and len(ids("state=cancelled&page=2")) == 10


def test_slaves_pages(scene):
    page = text(Client().get("/slaves/"))
    row = page.split("box1</a>")[1].split("</tr>")[0]
    assert f"#{scene.provider.pk}" in row  # current job
    nums = re.findall(r'<td class="num">(\d+)</td>', row)
    assert nums == ["1", "0", "0"]  # passed, failed, error
    assert "vera" in row and "amd64" in row and "openrc" in row
    detail = text(Client().get(f"/slaves/{scene.driver.slave.pk}/"))
    assert "1 passed · 0 failed · 0 error" in detail and "ago" in detail


def test_tree_browser(scene):
    c = Client()
    index = text(c.get("/browse/"))
    assert "r1" in index and "alice" in index and "bob" in index
    rev = text(c.get("/browse/r1/"))
    assert "alice/hello-suite-2.0" in rev and "Run the hello test suite" in rev and "bob/fail-on-purpose-1.0" in rev
    page = text(c.get("/browse/jobuilds/alice/toolchain-sanity-1.0/"))
    assert "DESCRIPTION" in page and "Check that the chroot has a working bash" in page
    history = page.split('id="history"')[1].split("</section>")[0]
    assert "passed on: box1" in history and f"#{scene.toolchain.pk}" in history
    assert "einfo" in page.split('id="source"')[1]  # the jobuild's text
    maint = text(c.get("/browse/maintainers/alice/"))
    assert "alice/hello-suite-1.0" in maint and f'/jobs/{scene.toolchain.pk}/' in maint
    assert c.get("/browse/r99/").status_code == 404
    assert c.get("/browse/jobuilds/alice/not a version/").status_code == 404
    assert c.get("/browse/maintainers/nobody/").status_code == 404


def test_missing_things_are_404(scene):
    c = Client()
    assert c.get("/jobs/9999/").status_code == 404
    assert c.get(f"/jobs/{scene.toolchain.pk}/?run=00000000-0000-0000-0000-000000000000").status_code == 404
    assert c.get("/slaves/9999/").status_code == 404
    assert c.get(f"/jobs/{scene.toolchain.pk}/runs/{scene.done_run}/jobuilds/5/log").status_code == 404
    assert c.get(f"/jobs/{scene.integration.pk}/runs/{scene.done_run}/jobuilds/0/log").status_code == 404


def test_a_master_without_a_tree_yet(people, settings, tmp_path):
    settings.AUTOTUA_DATA_DIR = tmp_path / "data"
    settings.AUTOTUA_TREE = tmp_path / "no-branch-here"
    assert "no tree yet" in text(Client().get("/browse/"))
    from .conftest import client_for

    assert "no tree yet" in text(client_for("alice").get("/jobs/new"))
    assert Client().get("/browse/jobuilds/alice/x-1/").status_code == 404
    assert Client().get("/").status_code == 200
