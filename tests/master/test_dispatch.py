"""Dispatch (issue 14), over a real in-process server on SQLite: long-poll claims, the trust a slave
names, fair turns across owners and staff priorities, SIDEPENDs pipelined with ``wait`` (held as a
long-poll too), and what a provider's failure, requeue or a wait past its limit do to the waiting run.
PostgreSQL, several masters and gunicorn's stop are in tests/master/test_longpoll.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from autotua_master.jobs.models import Job, JobState, Run, RunEnd
from autotua_master.slaves.models import Slave
from tests.support.slaveclient import SlaveClient

pytestmark = pytest.mark.django_db(transaction=True)


def claimed(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def in_thread(fn, *args):
    """Run ``fn(*args)`` in a thread; returns (thread, box) where box["value"] is its answer, box["t"] when."""
    box: dict = {}

    def run():
        box["value"] = fn(*args)
        box["t"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# -- long-poll claims --------------------------------------------------------------------------------
def test_a_long_poll_is_answered_when_a_job_is_queued(master, settings):
    settings.AUTOTUA_LONGPOLL_SECONDS = 20
    slave = master.slave()
    t0 = time.monotonic()
    thread, box = in_thread(lambda: slave.claim(wait=20, timeout=60))
    time.sleep(0.5)
    assert thread.is_alive()  # held: nothing to do yet
    job = master.create_job("alice/toolchain-sanity")
    created = time.monotonic()
    thread.join(30)
    r = box["value"]
    assert claimed(r)["job"]["id"] == job["id"]
    assert r.headers["Preference-Applied"] == "wait=20"
    assert box["t"] - created < 1.5 and box["t"] - t0 < 10  # woken at once, not at the end of its wait


def test_a_long_poll_with_nothing_to_do_ends_in_time_and_says_ask_again(master, settings):
    settings.AUTOTUA_LONGPOLL_SECONDS = 2
    slave = master.slave()
    t0 = time.monotonic()
    r = slave.claim(wait=600)  # at most the master's own bound
    took = time.monotonic() - t0
    assert claimed(r) == {"run": None, "retry_after": 0} and r.headers["Preference-Applied"] == "wait=2"
    assert 1.5 < took < 8
    # an older slave's claim (no Prefer) is answered at once, as before
    t0 = time.monotonic()
    r = slave.claim()
    assert claimed(r) == {"run": None, "retry_after": 30} and "Preference-Applied" not in r.headers
    assert time.monotonic() - t0 < 2


def test_a_long_poll_is_not_woken_for_a_job_it_cannot_run(master, settings):
    settings.AUTOTUA_LONGPOLL_SECONDS = 3
    systemd = master.slave("box-systemd", flavours=("systemd",))
    thread, box = in_thread(lambda: systemd.claim(flavours=("systemd",), wait=3, timeout=30))
    time.sleep(0.3)
    master.create_job("alice/toolchain-sanity")  # openrc
    thread.join(30)
    assert claimed(box["value"])["run"] is None
    assert claimed(master.slave("box-openrc").claim())["run"]


# -- trust ---------------------------------------------------------------------------------------------
def test_a_slave_gets_only_jobs_whose_every_signer_it_trusts(master, keys):
    """bob/integration uses alice's jobuilds too (DEPEND alice/toolchain-sanity): a slave trusting only
    bob does not get it; alice's own job is claimed past it by a slave trusting alice."""
    integration = master.create_job("bob/integration", "bob")  # waits on its SIDEPEND: not claimable
    provider = integration["sidepends"][0]["provider"]
    bobs = master.create_job("bob/fail-on-purpose", "bob")
    alices = master.create_job("alice/toolchain-sanity", "alice")
    assert Job.objects.get(pk=bobs["id"]).signers == [keys["bob"]]
    assert Job.objects.get(pk=provider).signers == [keys["alice"]]
    assert Job.objects.get(pk=integration["id"]).maintainers == {"alice": keys["alice"], "bob": keys["bob"]}
    only_alice = master.slave("trusts-alice")
    got = claimed(only_alice.claim(trust=[keys["alice"].lower()]))  # any case; stored upper-case
    assert got["job"]["id"] in (provider, alices["id"]) and got["job"]["maintainers"] == {"alice": keys["alice"]}
    assert Slave.objects.get(name="trusts-alice").trust == [keys["alice"]]
    only_bob = master.slave("trusts-bob")
    got = claimed(only_bob.claim(trust=[keys["bob"]]))
    assert got["job"]["id"] == bobs["id"]
    only_bob.run_through(got, "failed")
    assert claimed(only_bob.claim(trust=[keys["bob"]]))["run"] is None  # the rest needs alice's key too
    nobody = master.slave("trusts-nobody")
    assert claimed(nobody.claim(trust=[]))["run"] is None and Slave.objects.get(name="trusts-nobody").trust == []
    everyone = master.slave("trusts-all")
    assert claimed(everyone.claim())["run"] and Slave.objects.get(name="trusts-all").trust is None
    # each claim says it again: a slave that stops naming whom it trusts trusts everyone
    claimed(only_alice.claim(trust=[keys["alice"], keys["bob"]]))
    assert Slave.objects.get(name="trusts-alice").trust == sorted([keys["alice"], keys["bob"]])


def test_a_maintainers_new_key_reaches_the_jobs_not_yet_run(master, keys):
    from autotua_master.tree.models import Maintainer

    job = master.create_job("alice/toolchain-sanity", "alice")
    new = "ABCDEF0123456789ABCDEF0123456789ABCDEF01"
    m = Maintainer.objects.get(name="alice")
    m.fingerprint = new
    m.save()
    row = Job.objects.get(pk=job["id"])
    assert row.maintainers == {"alice": new} and row.signers == [new]
    got = claimed(master.slave().claim())
    assert got["job"]["maintainers"] == {"alice": new}  # the slave verifies against the key recorded now


# -- fair shares ------------------------------------------------------------------------------------------
def test_one_owners_thousand_jobs_do_not_starve_anothers_one(master):
    """alice floods the queue with 1,000 jobs; bob's one job, queued after them, is claimed within two
    claims; staff's priority puts one of alice's last jobs first."""
    from django.contrib.auth import get_user_model

    users = {u.username: u for u in get_user_model().objects.all()}
    first = Job.objects.create_job(root="alice/toolchain-sanity", owner=users["alice"])
    flood = [first] + [Job.objects.create_job(root="alice/toolchain-sanity", owner=users["alice"])
                       for _ in range(999)]
    assert [j.turn for j in flood] == list(range(1, 1001))  # one past the owner's latest queued turn
    slave = master.slave()

    def take() -> int:
        got = claimed(slave.claim())
        slave.run_through(got)
        return got["job"]["id"]

    got = [take()]
    bobs = Job.objects.create_job(root="bob/fail-on-purpose", owner=users["bob"])
    assert bobs.turn == 2  # the head of the queue's turn: it goes next, not after alice's 999
    got += [take() for _ in range(3)]
    assert got[0] == first.pk and bobs.pk in got[1:3], got
    # staff raise the priority of alice's last job: it is claimed next, fair turns or not
    Job.objects.filter(pk=flood[-1].pk).update(priority=10)
    assert take() == flood[-1].pk
    # three owners' queued jobs are taken in turns
    carol = [Job.objects.create_job(root="alice/toolchain-sanity", owner=users["carol"]) for _ in range(3)]
    bob2 = [Job.objects.create_job(root="bob/fail-on-purpose", owner=users["bob"]) for _ in range(3)]
    order = [take() for _ in range(8)]
    assert [order.index(j.pk) for j in carol] == sorted(order.index(j.pk) for j in carol)
    assert max(order.index(carol[0].pk), order.index(bob2[0].pk)) < 4  # each owner's first within the first round


# -- SIDEPENDs pipelined ------------------------------------------------------------------------------------
def pipelined(master) -> tuple[dict, dict, SlaveClient, SlaveClient]:
    """bob/integration (toolchain-sanity, portconf-check, integration: the last needs alice/hello-suite-1.1)
    with its provider claimed by one slave: integration is queued at once, and claimed by another."""
    integration = master.create_job("bob/integration", "bob")
    assert integration["state"] == "waiting"
    provider_slave, waiter_slave = master.slave("provider-box"), master.slave("waiter-box")
    provider = claimed(provider_slave.claim())
    assert provider["job"]["id"] == integration["sidepends"][0]["provider"]
    row = Job.objects.get(pk=integration["id"])
    assert row.state == JobState.QUEUED and row.reason.startswith("pipelined: SIDEPEND alice/hello-suite-1.1")
    dependent = claimed(waiter_slave.claim())
    assert dependent["job"]["id"] == integration["id"]
    return provider, dependent, provider_slave, waiter_slave


def test_a_pipelined_job_waits_then_continues(master):
    provider, dependent, p_slave, w_slave = pipelined(master)
    run = dependent["run"]
    assert claimed(w_slave.result(run, 0)) == {"action": "continue"}  # needs nothing
    answer = claimed(w_slave.result(run, 1))  # the next one needs the SIDEPEND: wait (an older slave: at once)
    assert answer["action"] == "wait" and answer["retry_after"] == 60
    assert "alice/hello-suite-1.1 has not passed yet" in answer["reason"] and f"job #{provider['job']['id']}" in \
        answer["reason"]
    assert Run.objects.get(uuid=run).waiting_since is not None
    assert claimed(w_slave.heartbeat(run))["action"] == "continue"  # the lease goes on while it waits
    # a long-polling slave's repeat is held until the provider's result passes it
    thread, box = in_thread(lambda: w_slave.result(run, 1, wait=20))
    time.sleep(0.5)
    assert thread.is_alive()
    for i, _ in enumerate(provider["job"]["plan"]):
        claimed(p_slave.result(provider["run"], i))
    passed = time.monotonic()
    thread.join(30)
    assert claimed(box["value"]) == {"action": "continue"} and box["t"] - passed < 1.5
    assert Run.objects.get(uuid=run).waiting_since is None
    last = claimed(w_slave.result(run, 2))
    assert last["finished"] and last["job"] == {"id": dependent["job"]["id"], "state": "passed"}


def test_a_pipelined_job_is_aborted_with_the_reason_when_its_sidepend_fails(master):
    provider, dependent, p_slave, w_slave = pipelined(master)
    run = dependent["run"]
    claimed(w_slave.result(run, 0))
    assert claimed(w_slave.result(run, 1))["action"] == "wait"
    thread, box = in_thread(lambda: w_slave.result(run, 1, wait=20))
    time.sleep(0.3)
    claimed(p_slave.result(provider["run"], 0))
    claimed(p_slave.result(provider["run"], 1, "failed", phases=[{"name": "src_test", "status": "failed"}]))
    thread.join(30)
    answer = claimed(box["value"])
    assert answer["action"] == "abort" and "SIDEPEND alice/hello-suite-1.1 failed" in answer["reason"]
    assert claimed(w_slave.heartbeat(run))["action"] == "abort"
    job = master.job(dependent["job"]["id"])
    assert job["state"] == "failed" and "SIDEPEND alice/hello-suite-1.1 failed" in job["reason"]
    # the slave's finish after the abort is taken, and says how the job ended
    assert claimed(w_slave.finish(run, "cancelled", "aborted")) == {"job": {"id": job["id"], "state": "failed"}}
    assert Run.objects.get(uuid=run).end == RunEnd.ABORTED


def test_a_wait_on_a_provider_that_stopped_running_gives_the_slave_back(master):
    """The provider's slave vanished (its lease ran out): the job it ran is queued again, the job waiting
    on it is held again, and the waiting run is told to stop, not counted as a lost attempt."""
    provider, dependent, _, w_slave = pipelined(master)
    run = dependent["run"]
    claimed(w_slave.result(run, 0))
    assert claimed(w_slave.result(run, 1))["action"] == "wait"
    Run.objects.filter(uuid=provider["run"]).update(lease_expires=timezone.now() - timedelta(seconds=1))
    claimed(master.slave("sweeper").claim(arch="x86"))  # a claim sweeps expired leases
    assert Job.objects.get(pk=provider["job"]["id"]).state == JobState.QUEUED
    answer = claimed(w_slave.result(run, 1))
    assert answer["action"] == "abort" and "is not running anywhere now" in answer["reason"]
    job = Job.objects.get(pk=dependent["job"]["id"])
    assert job.state == JobState.WAITING and job.attempts == 1
    assert Run.objects.get(uuid=run).end == RunEnd.WAITED


def test_a_wait_longer_than_the_limit_puts_the_job_back_in_the_queue(master, settings):
    settings.AUTOTUA_WAIT_LIMIT = 1
    _, dependent, _, w_slave = pipelined(master)
    run = dependent["run"]
    claimed(w_slave.result(run, 0))
    assert claimed(w_slave.result(run, 1))["action"] == "wait"
    Run.objects.filter(uuid=run).update(waiting_since=timezone.now() - timedelta(seconds=5))
    answer = claimed(w_slave.result(run, 1))
    assert answer["action"] == "abort" and "longer than the limit of 1 s" in answer["reason"]
    job = Job.objects.get(pk=dependent["job"]["id"])
    assert job.state == JobState.QUEUED and job.reason.startswith("pipelined")  # its provider still runs
    again = claimed(w_slave.claim())  # claimed anew; the given-up wait is no lost attempt
    assert again["job"]["id"] == job.pk and again["job"]["attempt"] == 2
    assert Job.objects.get(pk=job.pk).attempts - 1 < Job.objects.get(pk=job.pk).max_attempts


def test_a_job_whose_first_jobuild_needs_the_sidepend_is_not_pipelined(master):
    """bob/needs-failing's only jobuild needs its SIDEPEND: there is nothing to run meanwhile, so it
    waits, its provider running or not (a slave holding it would only wait)."""
    needs = master.create_job("bob/needs-failing", "bob")
    provider = needs["sidepends"][0]["provider"]
    slave = master.slave()
    assert claimed(slave.claim())["job"]["id"] == provider
    assert Job.objects.get(pk=needs["id"]).state == JobState.WAITING
