"""SIDEPENDs pipelined, end to end on two real slaves (issue 14).

bob/piped runs alice/toolchain-sanity first (DEPEND), then its own jobuild, which needs bob/slow-side
(SIDEPEND) — a jobuild that takes twelve seconds, which the master queues by itself. One slave
(started first) takes bob/slow-side; the other gets bob/piped as soon as bob/slow-side runs, runs
toolchain-sanity meanwhile, is told ``wait`` — its container up, its heartbeats going on — and goes on
the moment bob/slow-side passes. When the SIDEPEND fails instead, the waiting slave is told to abort,
with the reason.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest

from autotua_master.jobs.models.job import FINAL
from tests.slave.helpers import needs_root
from tests.support.live import add_jobuilds, create, job, latest, slave_log, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

SLOW_SIDE = '''# A SIDEPEND that takes a while (and fails when bob/piped's test says so).
DESCRIPTION="Take {seconds} seconds, then {outcome}"

src_test() {{
	local i
	for (( i = 0; i < {seconds}; i++ )); do einfo "slow side: ${{i}}"; sleep 1; done
	{end}
}}
'''
PIPED = '''# Needs bob/slow-side to have passed somewhere before its own jobuild runs; toolchain-sanity first.
DESCRIPTION="Pipelined on a SIDEPEND"
DEPEND="alice/toolchain-sanity"
SIDEPEND="bob/slow-side"

src_test() {
	einfo "piped: the SIDEPEND had passed"
	result piped yes
}
'''


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def piped_tree(tree, outcome: str) -> None:
    end = 'einfo "slow side: done"' if outcome == "pass" else 'die "slow side: failed on purpose"'
    add_jobuilds(tree, {"bob/slow-side/slow-side-1.0.jobuild": SLOW_SIDE.format(seconds=12, outcome=outcome, end=end),
                        "bob/piped/piped-1.0.jobuild": PIPED}, f"bob/piped, its SIDEPEND {outcome}ing")


def start_both(e2e_master, make_slave, tree, outcome: str):
    piped_tree(tree, outcome)
    master = e2e_master(LONGPOLL_SECONDS=5)
    side_box = make_slave(master, "box-side", max_poll_interval=1)
    piped_box = make_slave(master, "box-piped", max_poll_interval=1)
    j = create(master, "bob", "bob/piped")
    assert j["state"] == "waiting" and [e["jobuild"] for e in j["plan"]] == ["alice/toolchain-sanity-1.0",
                                                                             "bob/piped-1.0"]
    provider = j["sidepends"][0]["provider"]
    side_box.start()
    wait_for(lambda: job(master, provider)["state"] == "running", 120, "bob/slow-side to be claimed")
    piped_box.start()
    return master, side_box, piped_box, j, provider


def test_the_dependent_job_starts_before_its_sidepend_passes_waits_then_passes(e2e_master, make_slave, tree):
    master, _, piped_box, j, provider = start_both(e2e_master, make_slave, tree, "pass")
    # bob/piped is claimed while bob/slow-side runs, and its first jobuild runs meanwhile
    wait_for(lambda: job(master, j["id"])["state"] == "running", 120, "bob/piped to be claimed")
    waiting = wait_for(lambda: "waiting (SIDEPEND bob/slow-side-1.0 has not passed yet" in slave_log(piped_box),
                       120, "bob/piped's slave to be told to wait")
    assert waiting and job(master, provider)["state"] == "running"
    run = latest(job(master, j["id"]))
    assert [r["index"] for r in run["results"]] == [0] and not run["ended"]
    # while it waits its lease is kept by heartbeats (expires moves on), and its container stays up
    lease = run["lease_expires"]
    time.sleep(3)
    assert latest(job(master, j["id"]))["lease_expires"] > lease
    assert list((piped_box.base / "work/jobs").iterdir()), "the waiting slave's job directory is gone"
    wait_for(lambda: job(master, j["id"])["state"] in FINAL, 180, "bob/piped to end")
    done, side = job(master, j["id"]), job(master, provider)
    assert done["state"] == "passed" and side["state"] == "passed", (done, side)
    assert len(done["runs"]) == 1 and done["attempts"] == 1
    run, side_run = latest(done), latest(side)
    assert run["slave"] == "box-piped" and side_run["slave"] == "box-side"
    # pipelined: claimed before its SIDEPEND passed; its own jobuild began only after it had
    side_passed = when(side_run["results"][-1]["received"])
    assert when(run["claimed"]) < side_passed
    assert when(run["results"][0]["finished"]) < side_passed
    assert when(run["results"][1]["started"]) >= side_passed - 0.5  # the slave's and the master's clocks: one host
    assert run["results"][1]["results"] == {"piped": "yes"}
    passed = re.compile(r"job \d+ \(bob/piped, run [0-9a-f]{8}\): passed")
    wait_for(lambda: passed.search(slave_log(piped_box)), 60, "the slave to log that the job passed")
    assert " ERROR " not in slave_log(piped_box)


def test_a_failing_sidepend_aborts_the_waiting_job_with_the_reason(e2e_master, make_slave, tree):
    master, _, piped_box, j, provider = start_both(e2e_master, make_slave, tree, "fail")
    wait_for(lambda: "waiting (SIDEPEND bob/slow-side-1.0" in slave_log(piped_box), 120, "the wait")
    wait_for(lambda: job(master, j["id"])["state"] in FINAL, 180, "bob/piped to end")
    done, side = job(master, j["id"]), job(master, provider)
    assert side["state"] == "failed" and done["state"] == "failed", (done, side)
    assert "SIDEPEND bob/slow-side-1.0 failed" in done["reason"]
    run = latest(done)
    assert run["end"] == "aborted" and [r["index"] for r in run["results"]] == [0]
    wait_for(lambda: "aborted on the master's request: SIDEPEND bob/slow-side-1.0 failed" in slave_log(piped_box),
             60, "the slave to say why it stopped")
    # it tore down and took the next job as usual: nothing of the aborted job is left
    wait_for(lambda: not list((piped_box.base / "work/jobs").iterdir()), 60, "its job directory to go")
