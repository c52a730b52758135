"""Two slaves with different settings on one master: a SIDEPEND chain that crosses between them.

bob/chain-top (openrc) SIDEPENDs on bob/chain-middle (systemd), which SIDEPENDs on
<alice/hello-suite-2 (openrc). The master queues a job of its own for each SIDEPEND; one slave serves
only openrc, the other only systemd, so the chain goes openrc -> systemd -> openrc.
"""

from __future__ import annotations

import pytest

from autotua_master.jobs.models.job import FINAL
from tests.slave.helpers import needs_root
from tests.support.live import create, job, latest, log_of, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]


def test_a_sidepend_chain_runs_across_two_slaves(e2e_master, make_slave):
    master = e2e_master()
    openrc = make_slave(master, "box-openrc", ["openrc"])
    systemd = make_slave(master, "box-systemd", ["systemd"], max_poll_interval=1, keep_failed_roots=True,
                         phase_timeout=600)

    top = create(master, "bob", "bob/chain-top")
    assert top["state"] == "waiting", top
    assert [e["jobuild"] for e in top["plan"]] == ["alice/toolchain-sanity-1.0", "bob/chain-top-1.0"]
    [need] = top["sidepends"]
    assert (need["jobuild"], need["state"], need["required_by"]) == (
        "bob/chain-middle-1.0", "pending", "bob/chain-top-1.0")
    middle = job(master, need["provider"])  # queued by the master itself
    assert middle["automatic"] and middle["owner"] is None
    assert (middle["root"], middle["stage3"], middle["state"]) == ("=bob/chain-middle-1.0", "systemd", "waiting")
    assert middle["plan"][-1]["digest"] == need["digest"]
    [need2] = middle["sidepends"]
    assert (need2["atom"], need2["jobuild"]) == ("<alice/hello-suite-2", "alice/hello-suite-1.1")
    hello = job(master, need2["provider"])
    assert hello["automatic"]
    assert (hello["root"], hello["stage3"], hello["state"]) == ("=alice/hello-suite-1.1", "openrc", "queued")

    openrc.start()
    systemd.start()
    wait_for(lambda: job(master, top["id"])["state"] in FINAL, 300, "the chain to end")

    jobs = {name: job(master, j["id"]) for name, j in (("hello", hello), ("middle", middle), ("top", top))}
    for name, j in jobs.items():
        assert j["state"] == "passed", (name, j)
        assert len(j["runs"]) == 1 and j["attempts"] == 1, (name, j["runs"])
        run = j["runs"][0]
        assert run["end"] == "finished", (name, run)
        # every jobuild of the plan reported once, in order, passed, with the digest the master validated
        assert [(r["index"], r["jobuild"], r["digest"], r["status"]) for r in run["results"]] == [
            (e["index"], e["jobuild"], e["digest"], "passed") for e in j["plan"]], name
        assert [p["status"] for r in run["results"] for p in r["phases"]] == ["passed"] * 4 * len(j["plan"])
        assert run["logs"] == {str(r["index"]): r["log_size"] for r in run["results"]}
    # which slave ran what: openrc -> systemd -> openrc
    assert {n: latest(j)["slave"] for n, j in jobs.items()} == {
        "hello": "box-openrc", "middle": "box-systemd", "top": "box-openrc"}
    # the jobuild that needs a SIDEPEND ran only once it had passed (its result, not its job's finish,
    # satisfies it: the job that provided it may still be finishing). chain-middle, its plan's only
    # jobuild, needs it first: it was claimed after; chain-top's job was pipelined, claimed while
    # chain-middle still ran, its toolchain-sanity run meanwhile
    assert latest(jobs["hello"])["results"][-1]["received"] <= latest(jobs["middle"])["claimed"]
    assert latest(jobs["middle"])["results"][-1]["received"] <= latest(jobs["top"])["results"][1]["started"]
    # every jobuild's result
    results = {n: [r["results"] for r in latest(j)["results"]] for n, j in jobs.items()}
    assert results["hello"][0]["machine"] and results["top"][0]["machine"]  # alice/toolchain-sanity
    assert results["hello"][1] == {"tests.passed": "5", "tests.failed": "0"}
    assert results["middle"] == [{"flavour": "systemd"}]
    assert results["top"][1] == {"flavour": "openrc"}
    assert "chain-middle ran on systemd" in log_of(master, jobs["middle"], 0)
    assert "chain-top ran on openrc" in log_of(master, jobs["top"], 1)
    report = latest(jobs["hello"])["results"][1]["attachments"]
    assert [a["label"] for a in report] == ["test report"]
    # the SIDEPENDs as the waiting jobs see them now
    assert [(s["state"], s["provider"]) for s in jobs["top"]["sidepends"]] == [("passed", middle["id"])]
    assert [(s["state"], s["provider"]) for s in jobs["middle"]["sidepends"]] == [("passed", hello["id"])]
    # each slave fetched only its own flavour's stage3, into its own cache
    for s, flavour in ((openrc, "openrc"), (systemd, "systemd")):
        names = [p.name for p in (s.base / "cache/stage3").rglob("stage3-*.tar.*") if p.suffix in (".xz", ".gz")]
        assert names and all(f"-{flavour}-" in n for n in names), names
