"""The dependency graph: DEPEND and SIDEPEND edges drawn apart, nodes by status, cached, and a clear
sentence when Graphviz is missing."""

from __future__ import annotations

import re
import shutil

import pytest
from django.test import Client

from autotua_master.web import graph
from autotua_master.web.queries.jobpage import job_page

pytestmark = pytest.mark.django_db


def test_depend_and_sidepend_edges(scene):
    page = job_page(scene.integration.pk)
    dot = graph.job_dot(page)
    plan = [e["jobuild"] for e in scene.integration.plan]
    assert plan == ["alice/toolchain-sanity-1.0", "bob/portconf-check-1.0", "bob/integration-1.0"]
    # DEPEND: integration needs both others (solid edges), SIDEPEND: a dashed violet edge to hello-suite
    assert "p2 -> p0;" in dot and "p2 -> p1;" in dot
    assert re.search(r'p2 -> s0 \[style=dashed, color="#7b3fb5"', dot)
    assert 'label="alice/hello-suite-1.1\\nSIDEPEND running' not in dot  # provision states, not job states
    assert f"SIDEPEND pending (job #{scene.provider.pk})" in dot
    svg = graph.render_svg(dot)
    assert svg.startswith("<svg") and svg.count('class="node"') == 4 and svg.count('class="edge"') == 3
    assert 'stroke-dasharray' in svg  # the SIDEPEND edge and node


def test_nodes_coloured_by_status(scene):
    svg = Client().get(f"/jobs/{scene.provider.pk}/graph.svg")
    assert svg["Content-Type"] == "image/svg+xml"
    body = svg.content.decode()
    assert graph.FILL["running"] in body and graph.FILL["pending"] in body
    svg = Client().get(f"/jobs/{scene.toolchain.pk}/graph.svg").content.decode()
    assert graph.FILL["passed"] in svg


def test_graph_is_cached(scene, settings):
    page = Client().get(f"/jobs/{scene.integration.pk}/").content.decode()
    assert '<div class="graph"><svg' in page
    cached = list((settings.AUTOTUA_DATA_DIR / "graphs").glob("*.svg"))
    assert cached
    settings.AUTOTUA_DOT = "/nonexistent/dot"  # cached: dot is not needed again
    assert '<div class="graph"><svg' in Client().get(f"/jobs/{scene.integration.pk}/").content.decode()


def test_without_dot_the_page_says_so(scene, settings):
    settings.AUTOTUA_DOT = "/nonexistent/dot"
    shutil.rmtree(settings.AUTOTUA_DATA_DIR / "graphs", ignore_errors=True)
    r = Client().get(f"/jobs/{scene.integration.pk}/")
    page = r.content.decode()
    assert r.status_code == 200 and 'id="graph-error"' in page
    assert "needs Graphviz" in page and "apt-get install graphviz" in page
    assert "bob/portconf-check-1.0" in page  # everything else is there
    r = Client().get(f"/jobs/{scene.integration.pk}/graph.svg")
    assert r.status_code == 503 and b"needs Graphviz" in r.content


def test_a_failing_dot_is_reported(scene, settings, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    settings.AUTOTUA_DOT = str(fake)
    page = Client().get(f"/jobs/{scene.toolchain.pk}/").content.decode()
    assert "Graphviz failed (1): syntax error in line 1" in page


def test_active_svg_is_refused():
    for bad in ['<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
                '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
                '<a xlink:href="javascript:alert(1)"/></svg>']:
        with pytest.raises(graph.GraphUnavailable):
            graph.clean(bad)
    ok = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"><a href="/jobs/1/"/></svg>'
    assert graph.clean(ok).startswith("<svg")


def test_dot_strings_cannot_escape():
    assert graph._q('a"b\\N') == '"a\\"b\\\\N"'
