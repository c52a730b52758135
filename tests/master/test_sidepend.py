"""SIDEPEND: held until passed anywhere, failed when the provider fails, cycles failed, not deadlocked."""

from __future__ import annotations

import pytest

from autotua_master.jobs.models import Job, Provision
from autotua_master.tree.models import Maintainer

pytestmark = pytest.mark.django_db(transaction=True)


def test_provider_passes_then_dependents_run(master):
    a = master.create_job("bob/integration", "bob")
    b = master.create_job("bob/integration", "alice")
    provider_id = a["sidepends"][0]["provider"]
    slave = master.slave()
    claimed = slave.claim().json()
    assert claimed["job"]["id"] == provider_id  # the dependents wait; only the provider is queued
    slave.run_through(claimed, "passed")
    assert master.job(a["id"])["state"] == "queued" and master.job(b["id"])["state"] == "queued"
    assert Provision.objects.get(jobuild="alice/hello-suite-1.1").state == "passed"
    # a later job needing the same jobuild at the same digest is queued at once
    c = master.create_job("bob/integration", "bob")
    assert c["state"] == "queued" and c["sidepends"][0]["state"] == "passed"
    assert Job.objects.filter(owner=None).count() == 1


def test_provider_fails_then_dependents_fail(master):
    a = master.create_job("bob/needs-failing", "bob")
    slave = master.slave()
    claimed = slave.claim().json()
    assert claimed["job"]["root"] == "=bob/fail-on-purpose-1.0"
    slave.run_through(claimed, "failed")
    job = master.job(a["id"])
    assert job["state"] == "failed"
    assert job["reason"].startswith(f"SIDEPEND bob/fail-on-purpose-1.0 failed in job #{claimed['job']['id']}")
    later = master.create_job("bob/needs-failing", "bob")
    assert later["state"] == "failed" and "SIDEPEND bob/fail-on-purpose-1.0 failed" in later["reason"]
    assert slave.claim().json()["run"] is None


def test_passed_anywhere_counts(master):
    """A pass of the same jobuild and digest in someone else's job satisfies the SIDEPEND."""
    a = master.create_job("bob/integration", "bob")
    mine = master.create_job("=alice/hello-suite-1.1", "alice")
    slave = master.slave()
    first = slave.claim().json()
    # the provider was queued first; cancel it and run alice's own job instead
    assert first["job"]["id"] == a["sidepends"][0]["provider"]
    slave.finish(first["run"], "error", "disk full")
    Job.objects.get(pk=first["job"]["id"]).cancel(by="staff")
    assert master.job(a["id"])["state"] == "failed"  # its provider was cancelled
    a = master.create_job("bob/integration", "bob")  # a new provider is made
    slave.run_through(slave.claim().json(), "passed")  # alice's job, queued before the new provider
    assert master.job(mine["id"])["state"] == "passed"
    assert master.job(a["id"])["state"] == "queued"


def test_provider_error_after_attempts_fails_dependents(master, settings):
    a = master.create_job("bob/integration", "bob")
    slave = master.slave()
    for _ in range(3):
        claimed = slave.claim().json()
        slave.finish(claimed["run"], "error", "no network")
    job = master.job(a["id"])
    assert job["state"] == "failed" and "error" in job["reason"] and "no network" in job["reason"]
    # an error says nothing of the jobuild: the next job gets a fresh provider
    b = master.create_job("bob/integration", "bob")
    assert b["state"] == "waiting" and b["sidepends"][0]["provider"] != a["sidepends"][0]["provider"]


@pytest.fixture
def cyclic(master_settings, tree_writer, make_branch):
    w = tree_writer
    w.jobuild("carol/ping-1", 'SIDEPEND="carol/pong"')
    w.jobuild("carol/pong-1", 'SIDEPEND="carol/ping"')
    w.jobuild("carol/top-1", 'SIDEPEND="carol/ping"')
    master_settings.AUTOTUA_TREE = make_branch(w.root)


def test_waiting_cycle_fails_with_a_reason(master, cyclic):
    top = master.create_job("carol/top", "carol")
    assert top["state"] == "failed", top
    assert "SIDEPEND cycle" in top["reason"] and "carol/ping-1" in top["reason"] and "carol/pong-1" in top["reason"]
    ping = master.create_job("carol/ping", "carol")
    assert ping["state"] == "failed" and "SIDEPEND" in ping["reason"]
    assert not Job.objects.filter(state__in=["waiting", "queued"]).exists()


def test_sidepend_on_untrusted_jobuild(master, keys):
    """The provider cannot be validated: the dependent fails, saying why."""
    Maintainer.objects.filter(name="alice").update(fingerprint=keys["mallory"])
    job = master.create_job("bob/integration", "bob")
    assert job["state"] == "invalid"  # toolchain-sanity (alice) is in its own plan
    assert any(e["kind"] == "untrusted-key" for e in job["errors"])
