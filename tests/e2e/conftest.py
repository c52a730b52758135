"""The whole system, as root: live gunicorn masters, real `autotua-slave` daemons, the signed sample
tree (plus tests/e2e/jobuilds.py) in a real bzr branch, a tiny stage3 of two flavours in Gentoo's
autobuilds layout on a local HTTP mirror.

Every test gets its own tree, master(s) and slaves. After each one, nothing may be mounted below the
session's temporary directory and no process the test started may be left (tests.support.leftovers).
"""

from __future__ import annotations

import json
import shutil

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.rootfs import build_rootfs
from autotua.demo.slaves import SlaveSetup
from autotua.demo.stage3 import publish_stage3, timestamp_now
from autotua.linux import mounts_under
from tests.e2e.jobuilds import JOBUILDS
from tests.support.leftovers import ProcessWatch
from tests.support.live import extend_tree, start

FLAVOURS = {"openrc": "xz", "systemd": "gz"}  # flavour -> compression (xz as Gentoo's; gz is quicker)


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path_factory):
    """No process of the test alive, nothing mounted below the session's directories, after the test."""
    watch = ProcessWatch().start()
    yield
    try:
        left = watch.leftovers(grace=15)
        if left:
            watch.kill(left)
    finally:
        watch.stop()
    mounts = mounts_under(tmp_path_factory.getbasetemp())
    assert not left, "processes left behind:\n" + "\n".join(map(str, left))
    assert mounts == []


@pytest.fixture(scope="session")
def stage3_flavours(tmp_path_factory, release_key):
    """One mirror with a stage3 of each flavour; each says its flavour in /etc/autotua-stage3."""
    mirror = tmp_path_factory.mktemp("e2e-gentoo-mirror")
    stamp = timestamp_now()
    releases = {}
    for flavour, compression in FLAVOURS.items():
        root = build_rootfs(tmp_path_factory.mktemp(f"rootfs-{flavour}"))
        (root / "etc/autotua-stage3").write_text(f"{flavour}\n")
        releases[flavour] = publish_stage3(mirror, release_key, arch="amd64", flavour=flavour, rootfs=root,
                                           timestamp=stamp, compression=compression)
        shutil.rmtree(root)
    return releases


@pytest.fixture(scope="session")
def stage3_mirror(stage3_flavours):
    with MirrorServer(stage3_flavours["openrc"].mirror) as m:
        yield m


@pytest.fixture
def snapshot_mirror(snapshots):
    """The tiny repository's snapshots and distfiles (tests/conftest.py), served."""
    with MirrorServer(snapshots[0].mirror) as m:
        yield m


@pytest.fixture
def tree(tmp_path, sample):
    """The sample branch plus tests/e2e/jobuilds.py, as revision 2, owned by this test's master."""
    return extend_tree(sample, tmp_path / "jobtage", JOBUILDS, "the end-to-end tests' jobuilds")


@pytest.fixture
def e2e_master(live_master, tree):
    """A factory: ``e2e_master(**settings)`` -> a started master of ``tree`` with maintainers alice and
    bob (``master.people[user]`` is their API session); quick leases and retries. ``start=False``
    leaves it migrated but not started; other keywords go to ``live_master``."""
    def make(*, start_it: bool = True, people: bool = True, **kw):
        settings = {"LEASE_SECONDS": 30, "HEARTBEAT_SECONDS": 1, "RETRY_AFTER": 1, "WAIT_RETRY_AFTER": 1,
                    "MAX_ATTEMPTS": 3, "DISTFILES_DIR": tree.distdir,
                    "MIRRORS": json.dumps({"autotua-samples": ["/distfiles/"]}), **kw}
        m = live_master(tree.branch, **settings)
        if people:
            m.people = {u: m.person_session(m.add_maintainer(u, fpr)) for u, fpr in tree.fingerprints.items()}
            for session in m.people.values():
                # a new connection per call: a kept-alive one that gunicorn closes (after 2 s idle) just
                # as the next request goes out resets it, and a POST is not repeated by requests
                session.headers["Connection"] = "close"
        return start(m) if start_it else m
    return make


@pytest.fixture
def make_slave(tmp_path, stage3_mirror, release_key):
    """A factory: ``make_slave(master, name, flavours=("openrc",), **config)`` -> a SlaveSetup, made
    active on the master, not yet started. Every slave is stopped (SIGTERM) after the test and must
    leave nothing mounted."""
    made: list[SlaveSetup] = []

    def make(master, name: str, flavours=("openrc",), token: str | None = None, **config) -> SlaveSetup:
        token = token or master.add_slave(name, arch="amd64", flavours=tuple(flavours))
        s = SlaveSetup(tmp_path / "slaves" / name, master.url, token, stage3_mirror.url, str(release_key.key_file),
                       name=name, flavours=list(flavours), extra=config)
        made.append(s)
        return s

    yield make
    codes = {s.name: s.stop() for s in made}
    for s in made:
        assert mounts_under(s.base) == []
    assert all(c in (0, None) for c in codes.values()), f"slaves exited with {codes}: see {tmp_path}/slaves/*/slave.log"

