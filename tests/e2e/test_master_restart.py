"""The master goes away while a slave is in the middle of reporting, and comes back on the same port
with the same data dir and database: the slave retries, and nothing is lost or doubled.

The job's plan is bob/talk-first then bob/talk-second (tests/e2e/jobuilds.py), which know the
master's port and wait, inside the job's container, until nothing listens on it any more: the slave
runs with ``network = "host"`` for that (the volunteer's opt-in; by default a job cannot reach the
host's 127.0.0.1, tests/hardening/test_container.py). So, whatever the
load on the machine: talk-first's result is sent while the master is dead (killed with SIGKILL, as a
crash), and talk-second's log streams while the master is stopped (SIGTERM, as an admin restarts
it), with heartbeats due all along.
"""

from __future__ import annotations

import re

import pytest

from autotua_master.jobs.models.job import FINAL
from tests.e2e.jobuilds import talk_first, talk_second
from tests.slave.helpers import needs_root
from tests.support.live import add_jobuilds, create, job, latest, log_has, log_of, printed, slave_log, start, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]


def retried(slave, call: str) -> list[str]:
    """The slave's log lines about ``call`` (``"PUT runs/<run>/jobuilds/0/result"``...) failing and
    being tried again."""
    return re.findall(rf"WARNING autotua\.slave\.api: {re.escape(call)}: .*retrying in.*", slave_log(slave))


def test_the_master_restarted_while_a_slave_reports(tree, e2e_master, make_slave):
    master = e2e_master(start_it=False, LEASE_SECONDS=60)
    add_jobuilds(tree, {"bob/talk-first/talk-first-1.0.jobuild": talk_first(master.port),
                        "bob/talk-second/talk-second-1.0.jobuild": talk_second(master.port)},
                 f"bob/talk-first and bob/talk-second, for the master on port {master.port}")
    start(master)
    slave = make_slave(master, "box", retry_for=300, network="host")
    j = create(master, "bob", "bob/talk-second")
    assert [e["jobuild"] for e in j["plan"]] == ["bob/talk-first-1.0", "bob/talk-second-1.0"]
    slave.start()

    # a crash while jobuild 0 waits to end: its result then meets a dead master
    wait_for(lambda: log_has(master, j["id"], 0, "first: last words"), 180, "jobuild 0 to wait")
    run = latest(job(master, j["id"]))["uuid"]
    master.kill()
    wait_for(lambda: retried(slave, f"PUT runs/{run}/jobuilds/0/result"), 60, "the slave to retry the result")
    start(master)

    # a restart while jobuild 1's log streams
    wait_for(lambda: log_has(master, j["id"], 1, "second says 10"), 120, "jobuild 1 to wait")
    master.stop()
    wait_for(lambda: retried(slave, f"PATCH runs/{run}/jobuilds/1/log"), 60, "the slave to retry the log")
    start(master)

    wait_for(lambda: job(master, j["id"])["state"] in FINAL, 180, "the job to end")
    done = job(master, j["id"])
    assert done["state"] == "passed", done
    # one attempt, one run, finished by the slave
    assert done["attempts"] == 1 and [r["uuid"] for r in done["runs"]] == [run]
    r = done["runs"][0]
    assert (r["end"], r["attempt"]) == ("finished", 1)
    # each result once, in order, passed
    assert [(x["index"], x["jobuild"], x["status"], x["results"]) for x in r["results"]] == [
        (0, "bob/talk-first-1.0", "passed", {"said": "30"}), (1, "bob/talk-second-1.0", "passed", {"said": "40"})]
    # each log whole, every byte once (the log is exactly what the jobuild printed, and the bridge's headers)
    expected = ["".join(f"first says {i}\n" for i in range(1, 31)) + " * first: last words\n",
                "".join(f"second says {i}\n" for i in range(1, 41))]
    logs = [log_of(master, done, i) for i in (0, 1)]
    assert [printed(t) for t in logs] == expected
    assert [x["log_size"] for x in r["results"]] == [len(t.encode()) for t in logs]
    assert r["logs"] == {"0": len(logs[0].encode()), "1": len(logs[1].encode())}
    # the heartbeats went unanswered too, and nothing went wrong on the slave
    text = slave_log(slave)
    assert retried(slave, f"POST runs/{run}/heartbeat"), text
    assert " ERROR " not in text, text
