"""Fixtures for the master's tests.

* ``master``: an in-process live server (pytest-django's ``live_server``, SQLite) configured with the
  sample branch, maintainers alice/bob/carol, and an :class:`Api` helper to call it over HTTP.
* ``postgres``, ``live_master`` and ``master_cache`` are in tests/conftest.py (the end-to-end tests
  use them too).
* ``make_branch``: turn a directory written with ``tree_writer`` into a bzr branch.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.slaveclient import SlaveClient


def make_branch_from(src: Path, dest: Path) -> Path:
    """A bzr branch at ``dest`` holding the files of ``src`` as revision 1."""
    import breezy.bzr  # noqa: F401
    from breezy import controldir

    fmt = controldir.format_registry.make_controldir("2a")
    controldir.ControlDir.create_standalone_workingtree(str(dest), format=fmt)
    shutil.copytree(src, dest, dirs_exist_ok=True)
    commit(dest, "test tree")
    return dest


def commit(branch: Path, message: str) -> str:
    from breezy.workingtree import WorkingTree

    wt = WorkingTree.open(str(branch))
    with wt.lock_write():
        wt.smart_add([str(branch)])
        return wt.commit(message, committer="tests <tests@jobtage.example>").decode()


@pytest.fixture
def make_branch(tmp_path):
    def make(src: Path) -> Path:
        return make_branch_from(src, tmp_path / f"branch-{uuid.uuid4().hex[:8]}")
    return make


class Api:
    """An in-process live master: make slaves and people, call it over HTTP."""

    def __init__(self, url: str):
        self.url = url

    def slave(self, name: str = "box", arch: str = "amd64", flavours=("openrc",)) -> SlaveClient:
        from autotua_master.slaves.models import Slave, SlaveState

        _, token = Slave.objects.create_with_token(name=name, arch=arch, flavours=list(flavours),
                                                   state=SlaveState.ACTIVE)
        return SlaveClient(self.url, token, name)

    def person(self, username: str, *, staff: bool = False) -> requests.Session:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": staff})
        s = requests.Session()
        s.headers["Authorization"] = f"Token {Token.objects.get_or_create(user=user)[0].key}"
        return s

    def create_job(self, root: str, user: str = "alice", **body) -> dict:
        r = self.person(user).post(self.url + "/api/v1/jobs/", json={"root": root, **body})
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, job_id: int) -> dict:
        return requests.get(self.url + f"/api/v1/jobs/{job_id}/").json()


@pytest.fixture
def master_settings(settings, tmp_path, sample, master_cache, keys):
    settings.AUTOTUA_DATA_DIR = tmp_path / "data"
    settings.AUTOTUA_TREE = sample.branch
    settings.AUTOTUA_CACHE = master_cache
    settings.AUTOTUA_MIRRORS = {"autotua-samples": ["/distfiles/"]}
    settings.AUTOTUA_DISTFILES_DIR = sample.distdir
    return settings


@pytest.fixture
def maintainers(transactional_db, keys):
    """alice, bob and carol as maintainers with their session keys (mallory is never trusted)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from autotua_master.tree.models import Maintainer

    for name in ("alice", "bob", "carol"):
        user = get_user_model().objects.create(username=name)
        Maintainer.objects.create(user=user, name=name, fingerprint=keys[name])
        # made now, before any server thread runs: the in-process live server shares the test's one
        # in-memory SQLite connection, and a transaction begun here while a long-polling claim's is
        # open there fails ("cannot start a transaction within a transaction"; seen once)
        Token.objects.create(user=user)


@pytest.fixture
def master(master_settings, maintainers, live_server) -> Api:
    return Api(live_server.url)
