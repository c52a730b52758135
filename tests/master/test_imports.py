"""The master's import graph has no circle (issue 14): not between modules, counting the imports
hidden inside functions, and not between its apps (tree <- jobs <- slaves' admin; api, web and the
management commands above them)."""

from tests.support.imports import app_graph, cycles, graph


def test_no_module_imports_itself_through_others():
    edges = graph()
    assert edges.get("autotua_master.jobs.protocol")  # it reads them
    assert cycles(edges) == []


def test_the_apps_are_layered():
    apps = app_graph(graph())
    assert cycles(apps) == []
    assert "jobs" not in apps["tree"] and "slaves" not in apps["jobs"]  # a run is a job's: jobs owns it
    assert {"jobs", "slaves"} <= apps["api"]


def test_a_circle_is_seen():
    """The check itself: the graph of the master before issue 14 had this circle."""
    edges = {"jobs.models.job": {"slaves.models"}, "slaves.models": {"slaves.protocol"},
             "slaves.protocol": {"jobs.models.job"}, "tree": set()}
    assert cycles(edges) == [["jobs.models.job", "slaves.models", "slaves.protocol"]]
