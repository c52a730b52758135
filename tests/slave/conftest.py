"""The slave's fixtures: a local HTTP mirror serving a private copy of the session's tiny stage3 (no
internet here), and a root cache holding it unpacked. The release key and the stage3 itself
(``release_key``, ``stage3``) are in tests/conftest.py: the end-to-end tests use them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.portage import build_portage_rootfs, portage_wheel
from autotua.demo.repository import PROFILE
from autotua.demo.stage3 import copy_release
from autotua.slave.rootfs import RootCache
from autotua.slave.snapshot import SnapshotStore
from autotua.slave.stage3 import Stage3Store


@pytest.fixture
def mirror(tmp_path, stage3):
    """A private copy of the published stage3 (a test may spoil it) on a local HTTP server."""
    release = copy_release(stage3, tmp_path / "mirror")
    with MirrorServer(release.mirror) as server:
        server.release = release
        yield server
    shutil.rmtree(tmp_path / "mirror", ignore_errors=True)


@pytest.fixture(scope="module")
def cached_root(tmp_path_factory, stage3, release_key):
    """The tiny stage3, fetched over HTTP, verified, unpacked into a root cache (one per module)."""
    cache = tmp_path_factory.mktemp("cache")
    with MirrorServer(stage3.mirror) as m:
        tarball = Stage3Store(m.url, cache, release_key.key_file).fetch("amd64", "openrc")
    return RootCache(cache).get(tarball)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """What a slave with the test limits (tests/support/container.py) works out about this host."""
    from autotua.slave.preflight import Host
    from tests.support.container import slave_config

    return Host.of(slave_config(tmp_path_factory.mktemp("host")))


# -- real portage in a chroot of the portage stage3, against the test repository's verified snapshot
# (test_emerge.py, test_archtest_jobuild.py; each module gets its own module-scoped instances)
@pytest.fixture(scope="module")
def portage_root(tmp_path_factory) -> Path:
    return build_portage_rootfs(tmp_path_factory.mktemp("stage3") / "root", portage_wheel(), PROFILE)


@pytest.fixture(scope="module")
def served(snapshots):
    with MirrorServer(snapshots[0].mirror) as m:
        yield m


@pytest.fixture(scope="module")
def repository(tmp_path_factory, served, snapshot_key, snapshots):
    store = SnapshotStore([served.url], tmp_path_factory.mktemp("cache"), snapshot_key.key_file,
                          fingerprint=snapshot_key.fingerprint)
    return store.get(snapshots[1].date)


@pytest.fixture
def root(tmp_path, portage_root, served) -> Path:
    """A fresh copy of the portage stage3, fetching distfiles from the local mirror."""
    copy = tmp_path / "root"
    subprocess.run(["cp", "-a", str(portage_root), str(copy)], check=True)
    conf = copy / "etc/portage/make.conf"
    conf.write_text(conf.read_text() + f'GENTOO_MIRRORS="{served.url}"\nSLOWLIB_SECONDS=1\n')
    yield copy
    shutil.rmtree(copy, ignore_errors=True)
