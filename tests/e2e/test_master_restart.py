"""The master goes away while a slave is in the middle of reporting, and comes back on the same port
with the same data dir: the slave retries, and nothing is lost or doubled.

The job's plan is bob/talk-first then bob/talk-second (tests/e2e/jobuilds.py). The master is killed
(SIGKILL, as a crash) while talk-first pauses before its end, so its last log bytes and its result
meet a dead master; then it is stopped (SIGTERM, as an admin restarts it) while talk-second's log
streams, with heartbeats due.
"""

from __future__ import annotations

import re

import pytest

from autotua_master.jobs.models.job import FINAL
from tests.slave.helpers import needs_root
from tests.support.live import create, job, latest, log_has, log_of, slave_log, start, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]


def retried(slave, call: str) -> list[str]:
    """The slave's log lines about ``call`` (``"PUT runs/<run>/jobuilds/0/result"``...) failing and
    being tried again."""
    return re.findall(rf"WARNING autotua\.slave\.api: {re.escape(call)}: .*retrying in.*", slave_log(slave))


def said(text: str, who: str, count: int) -> None:
    """Each of ``who``'s numbered lines is in the log exactly once, in order, and nothing else of it."""
    lines = re.findall(rf"^{who} says (\d+)$", text, re.M)
    assert lines == [str(i) for i in range(1, count + 1)], lines


def test_the_master_restarted_while_a_slave_reports(e2e_master, make_slave):
    master = e2e_master(LEASE_SECONDS=60)
    slave = make_slave(master, "box", retry_for=180)
    j = create(master, "bob", "bob/talk-second")
    assert [e["jobuild"] for e in j["plan"]] == ["bob/talk-first-1.0", "bob/talk-second-1.0"]
    slave.start()

    # a crash while jobuild 0 pauses before its end: its last log bytes and its result meet a dead master
    wait_for(lambda: log_has(master, j["id"], 0, "first: last words"), 120, "jobuild 0 to pause")
    run = latest(job(master, j["id"]))["uuid"]
    master.kill()
    result0 = f"PUT runs/{run}/jobuilds/0/result"
    wait_for(lambda: retried(slave, result0), 60, "the slave to retry jobuild 0's result")
    start(master)

    # a restart while jobuild 1's log streams
    wait_for(lambda: log_has(master, j["id"], 1, "second says 10"), 120, "jobuild 1 to talk")
    master.stop()
    log1 = f"PATCH runs/{run}/jobuilds/1/log"
    wait_for(lambda: retried(slave, log1), 60, "the slave to retry jobuild 1's log")
    start(master)

    wait_for(lambda: job(master, j["id"])["state"] in FINAL, 180, "the job to end")
    done = job(master, j["id"])
    assert done["state"] == "passed", done
    # one attempt, one run, finished by the slave
    assert done["attempts"] == 1 and [r["uuid"] for r in done["runs"]] == [run]
    r = done["runs"][0]
    assert (r["end"], r["attempt"]) == ("finished", 1)
    # each result once, in order, passed, and each log whole: every byte once
    assert [(x["index"], x["jobuild"], x["status"]) for x in r["results"]] == [
        (0, "bob/talk-first-1.0", "passed"), (1, "bob/talk-second-1.0", "passed")]
    assert [x["results"] for x in r["results"]] == [{"said": "30"}, {"said": "60"}]
    logs = [log_of(master, done, i) for i in (0, 1)]
    said(logs[0], "first", 30)
    said(logs[1], "second", 60)
    assert logs[0].count("first: last words") == 1
    for i, x in enumerate(r["results"]):
        assert x["log_size"] == len(logs[i].encode()) == r["logs"][str(i)]
    # the same job run without a restart logs exactly the same bytes
    again = create(master, "bob", "bob/talk-second")
    wait_for(lambda: job(master, again["id"])["state"] in FINAL, 180, "the second job to end")
    again = job(master, again["id"])
    assert again["state"] == "passed"
    assert [log_of(master, again, i) for i in (0, 1)] == logs
    # the slave saw the master go away, and its heartbeats too
    text = slave_log(slave)
    assert retried(slave, f"POST runs/{run}/heartbeat"), text
    assert " ERROR " not in text, text
