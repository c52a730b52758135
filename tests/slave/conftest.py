"""The slave's fixtures: a release key made at run time, a tiny stage3 published in Gentoo's
autobuilds layout, and a local HTTP mirror serving it (no internet here)."""

from __future__ import annotations

import shutil

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.sampletree import stop_agent
from autotua.demo.stage3 import ReleaseKey, copy_release, publish_stage3


@pytest.fixture(scope="session")
def release_key(tmp_path_factory):
    key = ReleaseKey.make(tmp_path_factory.mktemp("release-gpg"))
    yield key
    stop_agent(key.gnupghome)


@pytest.fixture(scope="session")
def stage3(tmp_path_factory, release_key):
    """The tiny stage3 (amd64, openrc), published once per session."""
    return publish_stage3(tmp_path_factory.mktemp("gentoo-mirror"), release_key, arch="amd64", flavour="openrc")


@pytest.fixture
def mirror(tmp_path, stage3):
    """A private copy of the published stage3 (a test may spoil it) on a local HTTP server."""
    release = copy_release(stage3, tmp_path / "mirror")
    with MirrorServer(release.mirror) as server:
        server.release = release
        yield server
    shutil.rmtree(tmp_path / "mirror", ignore_errors=True)
