"""New revisions of the tree, as maintainers make them: a ``brz push`` over HTTP from a maintainer's
checkout to the master (``/tree/push``, their API token), with jobuilds signed by ``autotua-jobuild sign``.

* A job re-validated to the new revision before any slave accepted it runs the new content.
* A running slave picks the pushed revision up with an incremental pull of its cached branch.
"""

from __future__ import annotations

import os
import re

import pytest

from autotua_master.jobs.models.job import FINAL
from tests.e2e.jobuilds import revved
from tests.slave.helpers import needs_root
from tests.support.live import create, job, latest, log_of, run_once, slave_log, wait_for
from tests.support.maintainer import MaintainerCheckout

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

PUSHED = '''# New in the tree: pushed by alice from her checkout.
DESCRIPTION="A jobuild that arrived with a push"

src_test() {
	einfo "pushed by alice, running on $(</etc/autotua-stage3)"
	result arrived pushed
}
'''


def checkout(tmp_path, tree, master, user: str) -> MaintainerCheckout:
    """``user``'s checkout of the master's tree, branched over the master's /tree/, logged in to push."""
    token = master.people[user].headers["Authorization"].split()[1]
    return MaintainerCheckout(tmp_path / f"checkout-{user}", user, tree.fingerprints[user],
                              tree.gnupghome).branch(master.url + "/tree/").login(master.url, token)


def revalidate(master, user: str, job_id: int, **body):
    return master.people[user].post(f"{master.url}/api/v1/jobs/{job_id}/revalidate", json=body, timeout=120)


def test_a_job_revalidated_before_a_slave_accepted_it_runs_the_new_revision(tmp_path, tree, e2e_master, make_slave):
    master = e2e_master()
    slave = make_slave(master, "box")
    before = create(master, "bob", "bob/revved")   # runs at revision 2
    pinned = create(master, "bob", "bob/revved")   # re-validated to revision 3 before it runs
    assert (before["state"], before["revno"], pinned["state"], pinned["revno"]) == ("queued", 2, "queued", 2)
    old_digest = pinned["plan"][-1]["digest"]
    run_once(slave)  # takes the older job; the slave's cached branch now holds revision 2
    assert job(master, before["id"])["state"] == "passed"
    assert job(master, pinned["id"])["state"] == "queued"

    bob = checkout(tmp_path, tree, master, "bob")
    bob.write("bob/revved/revved-1.0.jobuild", revved("two"))
    assert "1 file(s) signed" in bob.sign("bob/revved/revved-1.0.jobuild")
    bob.commit("bob/revved: say two")
    bob.push(master.url)
    assert job(master, pinned["id"])["revno"] == 2  # a push alone moves no job

    r = revalidate(master, "bob", pinned["id"])  # to the tip
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["state"], moved["revno"], moved["frozen"]) == ("queued", 3, False)
    new_digest = moved["plan"][-1]["digest"]
    assert moved["plan"][-1]["jobuild"] == "bob/revved-1.0" and new_digest != old_digest
    assert moved["revision"] != pinned["revision"]

    err = run_once(slave)
    assert re.search(r"tree at revision 3 .*pulled from .*revno 2 -> 3", err), err
    done = job(master, pinned["id"])
    assert done["state"] == "passed", done
    [result] = latest(done)["results"]
    assert (result["jobuild"], result["digest"], result["results"]) == ("bob/revved-1.0", new_digest,
                                                                       {"revision": "two"})
    assert "this is revision two" in log_of(master, done, 0)
    first = job(master, before["id"])
    [result] = latest(first)["results"]
    assert (result["digest"], result["results"]) == (old_digest, {"revision": "one"})
    assert "this is revision one" in log_of(master, first, 0)
    # accepted by a slave: frozen, never re-validated again
    r = revalidate(master, "bob", pinned["id"], revision="2")
    assert r.status_code == 409 and r.json()["code"] == "frozen", r.text
    assert job(master, pinned["id"])["revno"] == 3


def _packs(cache) -> dict[str, int]:
    """The cached branch's pack files: name -> inode."""
    return {p.name: p.stat().st_ino for p in (cache / "tree/.bzr/repository/packs").iterdir()}


def test_a_push_reaches_a_running_slave_through_an_incremental_pull(tmp_path, tree, e2e_master, make_slave):
    master = e2e_master()
    slave = make_slave(master, "box")
    proc = slave.start()
    first = create(master, "alice", "alice/toolchain-sanity")
    wait_for(lambda: job(master, first["id"])["state"] in FINAL, 180, "the first job")
    assert job(master, first["id"])["state"] == "passed"
    cache = slave.base / "cache"
    bzrdir = os.stat(cache / "tree/.bzr").st_ino
    packs = _packs(cache)
    assert packs

    alice = checkout(tmp_path, tree, master, "alice")
    alice.write("alice/pushed/pushed-1.0.jobuild", PUSHED)
    alice.sign("alice/pushed")
    alice.commit("alice/pushed: new")
    out = alice.push(master.url)
    assert "revision 3" in out, out

    second = create(master, "alice", "alice/pushed")
    assert (second["state"], second["revno"]) == ("queued", 3), second
    wait_for(lambda: job(master, second["id"])["state"] in FINAL, 180, "the pushed jobuild's job")
    done = job(master, second["id"])
    assert done["state"] == "passed", done
    assert latest(done)["results"][0]["results"] == {"arrived": "pushed"}
    assert "pushed by alice, running on openrc" in log_of(master, done, 0)
    assert proc.poll() is None  # the same slave process all along

    # the cached branch was pulled, not branched again: one branch, then a pull of the new revision;
    # the packs it had are still there, untouched, beside the new one
    log = slave_log(slave)
    assert len(re.findall(r"tree at revision \d+ .*: branched from ", log)) == 1, log
    assert re.search(r"tree at revision 3 .*: pulled from http://127\.0\.0\.1:\d+/tree/, revno 2 -> 3", log), log
    assert os.stat(cache / "tree/.bzr").st_ino == bzrdir
    now = _packs(cache)
    assert {n: now.get(n) for n in packs} == packs
    assert set(now) - set(packs)
