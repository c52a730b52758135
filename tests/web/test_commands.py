"""The commands that give people a web UI login and slaves an owner."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from autotua_master.slaves.models import Slave

pytestmark = pytest.mark.django_db


def run(monkeypatch, *args, stdin: str = "") -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createmaintainer_with_a_password(monkeypatch, keys):
    run(monkeypatch, "createmaintainer", "alice", "--fingerprint", keys["alice"], "--password-stdin", stdin="s3cret\n")
    assert authenticate(username="alice", password="s3cret") is not None
    with pytest.raises(CommandError, match="empty password"):
        run(monkeypatch, "createmaintainer", "bob", "--fingerprint", keys["bob"], "--password-stdin", stdin="\n")


def test_createuser_volunteer_and_staff(monkeypatch):
    assert "user vera created" in run(monkeypatch, "createuser", "vera", "--password-stdin", stdin="pw\n")
    vera = authenticate(username="vera", password="pw")
    assert vera is not None and not vera.is_staff and not hasattr(vera, "maintainer")
    run(monkeypatch, "createuser", "root", "--password-stdin", "--staff", stdin="pw2\n")
    assert authenticate(username="root", password="pw2").is_staff


def test_createslave_with_an_owner(monkeypatch):
    run(monkeypatch, "createuser", "vera", "--password-stdin", stdin="pw\n")
    token = run(monkeypatch, "createslave", "box", "--arch", "amd64", "--owner", "vera", "--quiet-token").strip()
    slave = Slave.objects.authenticate(token)
    assert slave.owner.username == "vera"
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run(monkeypatch, "createslave", "box2", "--arch", "amd64", "--owner", "nobody")
