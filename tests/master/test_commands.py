"""The management commands and the demo's entry point."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from autotua_master.jobs import dispatch
from autotua_master.jobs.models import Job, Run
from autotua_master.slaves.models import Slave, SlaveState
from autotua_master.tree.models import Maintainer

pytestmark = pytest.mark.django_db(transaction=True)


def test_createmaintainer_and_createslave(capsys, keys):
    call_command("createmaintainer", "alice", "--fingerprint", keys["alice"].lower(), "--token")
    out = capsys.readouterr().out
    assert Maintainer.objects.get().fingerprint == keys["alice"] and "token " in out
    with pytest.raises(CommandError, match="not a full OpenPGP fingerprint"):
        call_command("createmaintainer", "bob", "--fingerprint", "1234")
    assert Maintainer.objects.count() == 1
    call_command("createslave", "box1", "--arch", "amd64", "--flavour", "openrc", "--flavour", "systemd")
    token = capsys.readouterr().out.split("token ")[1].strip()
    slave = Slave.objects.authenticate(token)
    assert slave.name == "box1" and slave.state == SlaveState.ACTIVE and slave.flavours == ["openrc", "systemd"]
    with pytest.raises(CommandError, match="exists"):
        call_command("createslave", "box1", "--arch", "amd64")


def test_sweepleases(master_settings, maintainers, capsys):
    job = Job.objects.create_job(root="alice/toolchain-sanity")
    slave, _ = Slave.objects.create_with_token(name="b", arch="amd64", flavours=["openrc"], state="active")
    run = dispatch.claim(slave, "0b6f7c7e-4f1a-4c55-9a4e-5d1c1f2e9a10", "amd64", ["openrc"], None)
    call_command("sweepleases")
    assert capsys.readouterr().out.strip() == "0 expired run(s) swept"
    Run.objects.filter(pk=run.pk).update(lease_expires="2000-01-01T00:00:00Z")
    call_command("sweepleases")
    assert capsys.readouterr().out.strip() == "1 expired run(s) swept"
    job.refresh_from_db()
    assert job.state == "queued" and "lease expired" in job.reason


def test_demosetup(master_settings, sample, capsys):
    call_command("demosetup", "--fingerprint", f"alice={sample.fingerprints['alice']}",
                 "--fingerprint", f"bob={sample.fingerprints['bob']}")
    out = capsys.readouterr().out
    assert "bob/integration" in out and "waiting" in out and "invalid" in out
    assert "queued by the master itself" in out and "=alice/hello-suite-1.1" in out
    assert "=bob/fail-on-purpose-1.0" in out
    token = next(line.split()[-1] for line in out.splitlines() if line.startswith("token demo-slave"))
    assert Slave.objects.authenticate(token).state == SlaveState.ACTIVE
    assert Job.objects.filter(owner=None).count() == 2
