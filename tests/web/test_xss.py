"""Nothing a jobuild, a log, a result or a reason says becomes markup on any page.

A hostile maintainer writes a jobuild whose DESCRIPTION, SIDEPEND target and text hold HTML; a slave
sends result keys and values, attachment names and a log with HTML; a cancel reason holds HTML. Every
page shows them as text.
"""

from __future__ import annotations

import pytest
from django.test import Client

from autotua_master.jobs.models import Job

from .conftest import XSS, SlaveDriver, client_for

pytestmark = pytest.mark.django_db

MARKUP = ("<script>window", "<img src=x")  # escaped, they are text: &lt;script&gt;...


def assert_inert(html: str) -> None:
    for m in MARKUP:
        assert m not in html, f"{m!r} reached the page unescaped"


@pytest.fixture
def hostile(web, master_settings, tree_writer, make_branch):
    """A tree with alice's hostile jobuild (signed: she is trusted, but not with our pages)."""
    quoted = XSS.replace('"', "'")
    tree_writer.jobuild("alice/evil-1.0", f'SIDEPEND="alice/plain"\n# {XSS}\nsrc_test() {{ einfo "{quoted}"; }}\n',
                        description=quoted)
    tree_writer.jobuild("alice/plain-1.0", description=quoted + " plain")
    master_settings.AUTOTUA_TREE = make_branch(tree_writer.root)
    job = Job.objects.create_job(root="alice/evil", owner=web.alice)
    assert job.state == "waiting", job.errors
    return job


@pytest.mark.bad_input('web', "<script> in a jobuild's description and text", 'escaped on every page')
def test_jobuild_text_and_metadata_are_escaped(hostile):
    c = Client()
    for url in [f"/jobs/{hostile.pk}/", "/browse/r1/", "/browse/jobuilds/alice/evil-1.0/",
                "/browse/maintainers/alice/", "/jobs/", "/"]:
        page = c.get(url).content.decode()
        assert_inert(page)
    page = c.get("/browse/jobuilds/alice/evil-1.0/").content.decode()
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page  # shown, as text


def test_the_inline_graph_escapes_descriptions(hostile):
    page = Client().get(f"/jobs/{hostile.pk}/").content.decode()
    graph = page.split('<div class="graph">')[1].split("</div>")[0]
    assert "<svg" in graph and "&lt;script&gt;" in graph  # the tooltip, escaped by dot
    assert_inert(graph)


@pytest.mark.bad_input('web', '<script> in logs, result values, attachment names and cancel reasons',
                       'escaped; attachments only downloaded')
def test_results_attachments_logs_and_reasons_are_escaped(hostile, web):
    drv = SlaveDriver("evil-box")
    Job.objects.filter(pk=hostile.pk).update(state="cancelled")  # let the SIDEPEND job run alone
    claimed = drv.claim()
    run = claimed["run"]
    drv.run_jobuild(run, 0, log=XSS.encode() * 3, results={XSS: XSS, "k": XSS},
                    attachments={"x.html": XSS.encode()})
    drv.finish(run)
    job_id = claimed["job"]["id"]
    c = Client()
    page = c.get(f"/jobs/{job_id}/").content.decode()
    assert_inert(page)
    assert page.count("&lt;script&gt;window.__xss=1&lt;/script&gt;") >= 3
    assert_inert(c.get(f"/jobs/{job_id}/runs/{run}/jobuilds/0/log").content.decode())
    assert_inert(c.get("/browse/jobuilds/alice/plain-1.0/").content.decode())
    # the raw log and attachments are never HTML to a browser
    raw = c.get(f"/jobs/{job_id}/runs/{run}/jobuilds/0/log.txt")
    assert raw["Content-Type"].startswith("text/plain") and raw["X-Content-Type-Options"] == "nosniff"
    att = c.get(f"/jobs/{job_id}/runs/{run}/jobuilds/0/attachments/x.html")
    assert att["Content-Type"] == "application/octet-stream" and att["Content-Disposition"].startswith("attachment")
    # a cancel reason
    other = Job.objects.create_job(root="alice/plain", owner=web.alice)
    client_for("alice").post(f"/jobs/{other.pk}/cancel", {"reason": XSS})
    for url in [f"/jobs/{other.pk}/", "/jobs/", "/"]:
        assert_inert(c.get(url).content.decode())


def test_the_job_form_echoes_input_escaped(web):
    r = client_for("alice").post("/jobs/new", {"atom": XSS, "arch": XSS, "stage3": XSS})
    assert r.status_code == 400
    assert_inert(r.content.decode())
    r = client_for("alice").get("/jobs/new", {"atom": XSS})
    assert_inert(r.content.decode())
    r = Client().get("/jobs/", {"atom": XSS, "owner": XSS})
    assert_inert(r.content.decode())


@pytest.mark.bad_input('web', "<script> between colour sequences in a failed jobuild's log (its excerpt)",
                       'escaped on the job page and the log page')
def test_the_failed_log_excerpt_is_escaped(hostile, web):
    drv = SlaveDriver("evil-box")
    Job.objects.filter(pk=hostile.pk).update(state="cancelled")
    claimed = drv.claim()
    log = (b"\x1b[32;01m>>>\x1b[0m Running \x1b[36;01msrc_test\x1b[0m\n \x1b[31;01m*\x1b[0m " + XSS.encode()
           + b"\n\x1b[1m" + XSS.encode() + b"\x1b[0m\n")
    drv.run_jobuild(claimed["run"], 0, log=log, status="failed")
    drv.finish(claimed["run"], "failed")
    page = Client().get(f"/jobs/{claimed['job']['id']}/").content.decode()
    excerpt = page.split('id="failure"')[1].split("</section>")[0]
    assert_inert(page)
    assert excerpt.count("&lt;script&gt;window.__xss=1&lt;/script&gt;") == 2
    assert '<span class="ansi-bold">&lt;script&gt;' in excerpt
