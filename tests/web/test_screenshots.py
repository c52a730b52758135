"""A screenshot of each main page, from real pages with the sample data, in a real browser.

Run as a test (pictures in a temporary directory, every page checked to render without a script
error), or with ``AUTOTUA_SCREENSHOTS=docs/screenshots`` (``make screenshots``) to refresh the ones
the README shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from autotua_master.jobs.models import Job

pytestmark = pytest.mark.slow

def _h(phase: str) -> bytes:
    return b"\x1b[32;01m>>>\x1b[0m Running \x1b[36;01m" + phase.encode() + b"\x1b[0m\n"


LOG = (_h("pkg_setup") + _h("src_unpack") + b" \x1b[32;01m*\x1b[0m Unpacking hello-suite-1.1.tar.gz to "
       b"/var/tmp/autotua/jobs/1/work\n" + _h("src_compile") + _h("src_test")
       + b" \x1b[32;01m*\x1b[0m Running run-tests.sh of hello-suite-1.1\n"
       b"PASS: greeting\nPASS: exit status\nPASS: empty input\n"
       b"FAIL: locale\n \x1b[33;01m*\x1b[0m FAIL: locale\nPASS: long input\n"
       b" \x1b[31;01m*\x1b[0m ERROR: alice/hello-suite-1.1 failed (src_test):\n"
       b" \x1b[31;01m*\x1b[0m   1 test(s) failed (exit status 1)\n")
FAILED = (_h("pkg_setup") + _h("src_unpack") + _h("src_compile") + _h("src_test")
          + b" \x1b[32;01m*\x1b[0m Testing fail-on-purpose-1.0\n"
          + b"".join(b"check %02d: ok\n" % i for i in range(1, 12))
          + b" \x1b[33;01m*\x1b[0m check 12 is the one that fails, on purpose\n"
          b" \x1b[31;01m*\x1b[0m ERROR: bob/fail-on-purpose-1.0 failed (src_test):\n"
          b" \x1b[31;01m*\x1b[0m   failing on purpose\n \x1b[31;01m*\x1b[0m \n \x1b[31;01m*\x1b[0m Call stack:\n"
          b" \x1b[31;01m*\x1b[0m   bob/fail-on-purpose/fail-on-purpose-1.0.jobuild, line 6: called die\n"
          b" \x1b[31;01m*\x1b[0m src_test failed (exit status 1)\n")
PHASES = [{"name": p, "status": "passed", "exit_code": 0, "started": f"2026-11-23T16:01:0{i}Z",
           "finished": f"2026-11-23T16:01:0{i}.4Z"} for i, p in enumerate(("pkg_setup", "src_unpack", "src_compile"))]


def test_screenshots(live_web, tmp_path):
    out = Path(os.environ.get("AUTOTUA_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    people = live_web.people
    box1 = live_web.slave("box1", owner=people.vera)
    live_web.slave("box2", flavours=("openrc", "systemd"), owner=people.vera)
    # the demo's jobs: some wait on a SIDEPEND, one fails on purpose, one is invalid
    for owner, root in [("bob", "bob/fail-on-purpose"), ("alice", "alice/toolchain-sanity"),
                        ("alice", "alice/hello-suite"), ("bob", "bob/portconf-check"), ("bob", "bob/integration"),
                        ("bob", "bob/needs-failing"), ("bob", "bob/no-such-jobuild")]:
        Job.objects.create_job(root=root, owner=getattr(people, owner))
    # box1 passes alice/toolchain-sanity, fails bob/fail-on-purpose, and is running hello-suite-1.1
    live = failed = None
    for _ in range(8):
        claimed = box1.claim().json()
        run = claimed["run"]
        if claimed["job"]["root"] == "=alice/hello-suite-1.1":
            box1.log(run, 0, 0, b" \x1b[32;01m*\x1b[0m bash and coreutils work\n")
            box1.result(run, 0, "passed", log_size=len(b" \x1b[32;01m*\x1b[0m bash and coreutils work\n"),
                        phases=[{"name": "src_test", "status": "passed", "exit_code": 0,
                                 "started": "2026-11-23T16:01:02Z", "finished": "2026-11-23T16:01:03.2Z"}])
            box1.log(run, 1, 0, LOG)
            live = claimed
            break
        if "fail-on-purpose" in claimed["job"]["root"]:
            box1.log(run, 0, 0, FAILED)
            box1.result(run, 0, "failed", log_size=len(FAILED), phases=[*PHASES, {
                "name": "src_test", "status": "failed", "exit_code": 1, "started": "2026-11-23T16:01:03Z",
                "finished": "2026-11-23T16:01:04.1Z"}])
            box1.finish(run, "failed")
            failed = claimed["job"]["id"]
            continue
        box1.run_through(claimed, "passed")
    assert live is not None
    integration = Job.objects.get(root="bob/integration")
    pages = {
        "dashboard": "/",
        "jobs": "/jobs/",
        "job": f"/jobs/{integration.pk}/",
        "failed": f"/jobs/{failed}/",
        "log": f"/jobs/{live['job']['id']}/runs/{live['run']}/jobuilds/1/log",
        "new-job": "/jobs/new",
        "slaves": "/slaves/",
        "tree": "/browse/r1/",
        "jobuild": "/browse/jobuilds/alice/toolchain-sanity-1.0/",
    }
    page = live_web.page("bob", width=1280, height=860)
    for name, url in pages.items():
        page.goto(live_web.url + url)
        if name == "log":
            expect(page.locator("#log")).to_contain_text("1 test(s) failed")
        if name == "new-job":
            page.fill("#id_atom", "bob/integration")
        page.screenshot(path=str(out / f"{name}.png"), full_page=name not in ("log",))
        assert (out / f"{name}.png").stat().st_size > 10000
    assert not page.js_errors
