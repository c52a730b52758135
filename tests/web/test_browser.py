"""The web UI in a real browser (Debian's chromium through Playwright) against a live master: log in,
create a job and see it validated with its graph, follow a live log while the test acts as the slave
over the HTTP API, cancel jobs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from autotua_master.jobs.models import Job, JobState

pytestmark = pytest.mark.slow

EINFO = b" \x1b[32;01m*\x1b[0m Running run-tests.sh of hello-suite-1.1\n"
EWARN = b" \x1b[33;01m*\x1b[0m FAIL: one test is flaky\n"
EERROR = b" \x1b[31;01m*\x1b[0m ERROR: alice/hello-suite-1.1 failed (src_test):\n"
HOSTILE = b"<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">\n"


def test_create_validate_graph_follow_log_cancel(live_web):
    page = live_web.page("bob")
    # log in worked: the header names bob and offers a new job
    expect(page.locator("header .user")).to_contain_text("bob")
    page.click("header nav >> text=New job")
    assert page.locator("#atoms option[value='bob/integration']").count() == 1  # suggestions from the index
    expect(page.locator("#id_revision")).to_have_value("")  # the tip by default
    page.fill("#id_atom", "bob/integration")
    page.click("#create-job button[type=submit]")

    # validated at once: waiting on its SIDEPEND, the plan, the report, the graph
    expect(page.locator("ul.messages")).to_contain_text("created: waiting")
    job = Job.objects.get(owner=live_web.people.bob)
    assert page.url.endswith(f"/jobs/{job.pk}/")
    expect(page.locator("h1 .state")).to_have_text("waiting")
    expect(page.locator("#plan tbody > tr")).to_have_count(3)
    expect(page.locator("#validation .report.warnings")).to_contain_text("bob/no-such-jobuild")
    svg = page.locator("#graph .graph svg")
    expect(svg).to_be_visible()
    assert svg.locator("g.node").count() == 4 and svg.locator("g.edge").count() == 3
    assert svg.locator("g.edge path[stroke-dasharray]").count() == 1  # the SIDEPEND edge
    assert svg.bounding_box()["width"] > 100

    # the master queued a job for the SIDEPEND; a slave (this test, over HTTP) takes it
    provider = Job.objects.get(owner=None)
    slave = live_web.slave("box1")
    claimed = slave.claim().json()
    assert claimed["job"]["id"] == provider.pk
    run = claimed["run"]
    page.click(f"#sidepends a[href='/jobs/{provider.pk}/']")
    expect(page.locator("h1 .state")).to_have_text("running")
    expect(page.locator("#plan tbody > tr").first.locator(".state")).to_have_text("running")
    page.click("#plan tbody > tr >> nth=0 >> text=follow")
    expect(page.locator("#log-status")).to_have_text("following…")

    # the log follows as chunks arrive, coloured, escaped
    offset = slave.log(run, 0, 0, EINFO).json()["offset"]
    expect(page.locator("#log")).to_contain_text("Running run-tests.sh of hello-suite-1.1")
    einfo = page.locator("#log .line.l-einfo")
    expect(einfo).to_have_count(1)
    assert einfo.locator(".ansi-32").evaluate("e => getComputedStyle(e).color") == "rgb(110, 224, 122)"
    offset = slave.log(run, 0, offset, EWARN + HOSTILE + b"partial line, no newline yet").json()["offset"]
    expect(page.locator("#log .line.l-ewarn")).to_contain_text("FAIL: one test is flaky")
    expect(page.locator("#log")).to_contain_text("<script>window.__xss = 1</script>")
    expect(page.locator("#log")).not_to_contain_text("partial line")  # whole lines only, until the end
    offset = slave.log(run, 0, offset, b" and its end\n" + EERROR).json()["offset"]
    expect(page.locator("#log .line.l-eerror")).to_contain_text("failed (src_test)")
    expect(page.locator("#log")).to_contain_text("partial line, no newline yet and its end")
    assert page.evaluate("window.__xss") is None and page.locator("#log img, #log script").count() == 0
    r = slave.result(run, 0, "passed", log_size=offset)
    assert r.status_code == 200, r.text
    expect(page.locator("#log-status")).to_have_text("complete")
    assert page.locator("#log .line").count() == 5
    assert not page.js_errors

    # bob cancels his waiting job
    page.goto(live_web.url + f"/jobs/{job.pk}/")
    page.fill("#cancel input[name=reason]", "not today")
    page.click("#cancel button")
    expect(page.locator("h1 .state")).to_have_text("cancelled")
    expect(page.locator("#reason")).to_have_text("cancelled by bob: not today")
    expect(page.locator("#cancel")).to_have_count(0)

    # bob may not cancel the master's running job; staff may, and the slave hears of it
    page.goto(live_web.url + f"/jobs/{provider.pk}/")
    expect(page.locator("#cancel")).to_have_count(0)
    root = live_web.page("root")
    root.goto(live_web.url + f"/jobs/{provider.pk}/")
    root.click("#cancel button")
    expect(root.locator("h1 .state")).to_have_text("cancelled")
    assert slave.heartbeat(run).json() == {"action": "abort", "reason": "cancelled by root"}
    provider.refresh_from_db()
    assert provider.state == JobState.CANCELLED
    assert not root.js_errors


def test_a_large_log_tail_first_earlier_on_demand(live_web):
    """2.5 MB of numbered lines: the page shows the tail, loads earlier parts on demand, and ends up with
    every line exactly once, in order (no line cut or doubled at a Range boundary)."""
    Job.objects.create_job(root="alice/toolchain-sanity", owner=live_web.people.alice)
    slave = live_web.slave("big")
    claimed = slave.claim().json()
    run = claimed["run"]
    lines = [f"line {i:06d} " + "é" * (i % 50) + (" \x1b[1mbold\x1b[0m" if i % 7 == 0 else "") for i in range(40000)]
    data = ("\n".join(lines) + "\n").encode()
    offset = 0
    while offset < len(data):
        offset = slave.log(run, 0, offset, data[offset:offset + 1048576]).json()["offset"]
    assert slave.result(run, 0, "passed", log_size=offset).status_code == 200
    page = live_web.page()
    page.goto(live_web.url + f"/jobs/{claimed['job']['id']}/runs/{run}/jobuilds/0/log")
    expect(page.locator("#log-status")).to_have_text("complete")
    shown = page.locator("#log .line")
    expect(page.locator("#log")).to_contain_text("line 039999")
    first = int(shown.first.inner_text().split()[1])
    assert 0 < first < 39000  # only the tail
    assert len(data) > 2_500_000
    earlier = page.locator("#log-earlier")
    while earlier.is_visible():
        before = shown.count()
        earlier.click()
        expect(shown).not_to_have_count(before)
    got = page.locator("#log").inner_text().splitlines()
    assert [int(g.split()[1]) for g in got] == list(range(40000))
    assert got[7] == "line 000007 " + "é" * 7 + " bold"
    assert page.locator("#log .line").nth(7).locator(".ansi-bold").count() == 1
    assert not page.js_errors


def test_volunteer_adds_a_slave_and_sees_its_token(live_web):
    page = live_web.page("vera")
    page.goto(live_web.url + "/slaves/")
    page.click("text=Add a slave")
    page.fill("#id_name", "vera-box")
    page.fill("#id_flavours", "openrc systemd")
    page.click("#add-slave button")
    token = page.locator("#token").inner_text().strip()
    from autotua_master.slaves.models import Slave

    slave = Slave.objects.get(name="vera-box")
    assert Slave.objects.authenticate(token) == slave and slave.owner == live_web.people.vera
    page.click("text=Go to vera-box")
    page.click("#token-actions >> text=Make a new token")
    new = page.locator("#token").inner_text().strip()
    assert new != token and Slave.objects.authenticate(token) is None
    assert not page.js_errors


def test_logging_out(live_web):
    page = live_web.page("alice")
    page.click("header button:has-text('Log out')")
    expect(page.locator("header .who")).to_contain_text("Log in")
    page.goto(live_web.url + "/jobs/new")
    assert "/login/?next=/jobs/new" in page.url


G, C, N = "\x1b[32;01m", "\x1b[36;01m", "\x1b[0m"


def _header(phase: str) -> bytes:
    return f"{G}>>>{N} Running {C}{phase}{N}\n".encode()


def test_a_failed_log_in_colour_and_the_jump_to_its_failing_phase(live_web):
    """The job page's excerpt links the failing phase; the log page opens at its tail, loads back to where
    src_test began (600 KB earlier) and scrolls to its header; the phase links jump too."""
    Job.objects.create_job(root="bob/fail-on-purpose", owner=live_web.people.bob)
    slave = live_web.slave("box1")
    claimed = slave.claim().json()
    run, job_id = claimed["run"], claimed["job"]["id"]
    body = b"".join(b"test %06d passed\n" % i for i in range(30000))  # ~600 KB: far past the tail's 256 KiB
    data = (_header("pkg_setup") + EINFO + _header("src_unpack") + _header("src_compile") + _header("src_test")
            + EWARN + body + EERROR + b" \x1b[31;01m*\x1b[0m src_test failed (exit status 1)\n")
    offset = 0
    while offset < len(data):
        offset = slave.log(run, 0, offset, data[offset:offset + 262144]).json()["offset"]
    phases = [{"name": p, "status": "passed", "exit_code": 0} for p in ("pkg_setup", "src_unpack", "src_compile")]
    phases.append({"name": "src_test", "status": "failed", "exit_code": 1})
    assert slave.result(run, 0, "failed", log_size=offset, phases=phases).status_code == 200
    assert slave.finish(run, "failed").status_code == 200

    page = live_web.page("bob")
    page.goto(live_web.url + f"/jobs/{job_id}/")
    excerpt = page.locator("#failure pre.log")
    expect(excerpt).to_contain_text("src_test failed (exit status 1)")
    assert excerpt.locator(".ansi-31").last.evaluate("e => getComputedStyle(e).color") == "rgb(255, 107, 107)"
    page.click("#failure-log")
    assert page.url.endswith("/jobuilds/0/log#phase-src_test")
    header = page.locator("#log .line.phase[data-phase='src_test']")
    expect(header).to_have_class("line phase jumped")
    expect(header).to_be_in_viewport()
    # colours: >>> green, the phase's name cyan, einfo green, ewarn yellow, eerror red
    assert header.locator(".ansi-32").evaluate("e => getComputedStyle(e).color") == "rgb(110, 224, 122)"
    assert header.locator(".ansi-36").evaluate("e => getComputedStyle(e).color") == "rgb(95, 224, 224)"
    expect(page.locator("#log .line.l-ewarn")).to_contain_text("FAIL: one test is flaky")
    expect(page.locator("#log .line.l-eerror").last).to_contain_text("src_test failed (exit status 1)")
    # every line from src_test's header to the end, each once
    text = page.locator("#log").inner_text()
    assert text.count("test 000000 passed") == 1 and text.count("test 029999 passed") == 1
    # the phase links: back to pkg_setup (loads the rest), then to the failed one again
    expect(page.locator("#log-jump a.failed")).to_have_text("src_test (failed)")
    page.click("#log-jump >> text=pkg_setup")
    expect(page.locator("#log .line.phase[data-phase='pkg_setup']")).to_be_in_viewport()
    assert page.locator("#log").inner_text().count("Running run-tests.sh of hello-suite-1.1") == 1
    page.click("#log-jump >> text=src_test (failed)")
    expect(header).to_be_in_viewport()
    assert not page.js_errors


def test_the_error_pages_are_in_the_site_s_layout(live_web):
    page = live_web.page("vera")
    response = page.goto(live_web.url + "/jobs/new")
    assert response.status == 403
    expect(page.locator("header .brand")).to_be_visible()
    expect(page.locator("header .user")).to_contain_text("vera")
    expect(page.locator("#error-403 .why")).to_have_text(
        "Only maintainers (users with a recorded key) and staff create jobs.")
    expect(page.locator("#error-403")).to_contain_text("createmaintainer vera")
    response = page.goto(live_web.url + "/jobs/424242/")
    assert response.status == 404
    expect(page.locator("#error-404 .why")).to_have_text("No job #424242.")
    page.click("#error-404 >> text=Back to the dashboard")
    assert page.url == live_web.url + "/"
    assert not page.js_errors
