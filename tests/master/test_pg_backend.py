"""The master's PostgreSQL backend (autotua_master.postgresql): a health check that asks the socket
before the server, and the hot statements prepared. Against the suite's real cluster."""

from __future__ import annotations

import select
import time
import uuid
from urllib.parse import urlsplit

import pytest
from django.db import IntegrityError, connections
from django.db.backends.postgresql import base as django_base

from autotua_master.postgresql.base import DatabaseWrapper
from autotua_master.settings.env import database_from_url
from tests.support.slaveclient import SlaveClient


@pytest.fixture
def pg(postgres, django_db_blocker):
    """Our backend on a fresh database, outside Django's configured connections."""
    url = postgres.createdb(f"b_{uuid.uuid4().hex[:10]}")
    wrapper = DatabaseWrapper(connections.configure_settings({"default": database_from_url(url)})["default"], "probe")
    with django_db_blocker.unblock():
        wrapper.ensure_connection()
        yield wrapper, postgres
        wrapper.close()


def _terminate(postgres, wrapper) -> None:
    pid = wrapper.connection.info.backend_pid
    with postgres.connect(autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    deadline = time.monotonic() + 10
    while not select.select([wrapper.connection.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server never closed the connection"


def test_a_quiet_connection_is_usable_without_a_statement(pg, monkeypatch):
    wrapper, _ = pg
    asked = []
    monkeypatch.setattr(django_base.DatabaseWrapper, "is_usable", lambda self: asked.append(1) or True)
    assert wrapper.is_usable() and asked == []


def test_a_connection_the_server_ended_is_found_unusable_and_replaced(pg):
    wrapper, postgres = pg
    _terminate(postgres, wrapper)
    assert not wrapper.is_usable()
    wrapper.health_check_done = False
    assert wrapper.execute_prepared("SELECT %s::int + 1", [41]).fetchone() == (42,)  # on a new connection


def test_the_hot_statements_are_prepared_and_their_errors_are_djangos(pg):
    wrapper, _ = pg
    wrapper.execute_prepared("CREATE TABLE t (id int PRIMARY KEY)", [])
    for i in range(3):
        wrapper.execute_prepared("INSERT INTO t VALUES (%s)", [i])
    names = wrapper.execute_prepared("SELECT statement FROM pg_prepared_statements", []).fetchall()
    assert ("INSERT INTO t VALUES ($1)",) in names
    with pytest.raises(IntegrityError):
        wrapper.execute_prepared("INSERT INTO t VALUES (%s)", [1])


@pytest.mark.slow
def test_a_slave_call_after_the_database_ended_every_connection_is_answered(postgres, live_master, sample):
    """A restart of PostgreSQL, as the master sees it: no slave call fails for a connection it kept."""
    url = postgres.createdb(f"t_{uuid.uuid4().hex[:10]}")
    m = live_master(sample.branch, database_url=url, workers=1, threads=2)
    client = SlaveClient(m.url, m.add_slave("box1"))
    m.start()
    assert client.claim().status_code == 200
    name = urlsplit(url).path.lstrip("/")
    with postgres.connect(autocommit=True) as other:
        ended = other.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                              (name,)).fetchone()[0]
    assert ended >= 1
    time.sleep(0.5)
    for _ in range(4):  # each of the worker's threads, on the connection it kept
        r = client.claim()
        assert r.status_code == 200, r.text
