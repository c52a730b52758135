"""End to end, as root: a live master pinned to the snapshots of a real (local) Gentoo mirror, and the
real `autotua-slave`, which fetches the pinned snapshot (from the claim's mirror hint: its own mirror
has no snapshots/), verifies it against the snapshot key, unpacks it into its cache, holds it for
the job, and records the run's inputs; the job's API and page show the pin and what the run used."""

from __future__ import annotations

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.slaves import SlaveSetup
from autotua.linux import mounts_under
from autotua_master.live import LiveMaster
from tests.slave.helpers import needs_root
from tests.support.live import create, job, latest, run_once, start

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]


@pytest.fixture(scope="module")
def snapshot_server(snapshots):
    with MirrorServer(snapshots[0].mirror) as m:
        yield m


@pytest.fixture(scope="module")
def stage3_server(stage3):
    with MirrorServer(stage3.mirror) as m:
        yield m


@pytest.fixture(scope="module")
def master(tmp_path_factory, sample, snapshot_server):
    m = LiveMaster(tmp_path_factory.mktemp("master"), tree=sample.branch, LEASE_SECONDS=20, HEARTBEAT_SECONDS=1,
                   RETRY_AFTER=1, SNAPSHOT_MIRROR=snapshot_server.url)
    m.migrate()
    m.refreshed = m.manage("refreshsnapshots")
    m.people = {u: m.person_session(m.add_maintainer(u, fpr)) for u, fpr in sample.fingerprints.items()}
    try:
        yield start(m)
    finally:
        m.stop()


def test_a_job_runs_against_its_pinned_snapshot_and_records_its_inputs(tmp_path, master, stage3_server, stage3,
                                                                        release_key, snapshot_key, snapshots,
                                                                        snapshot_server):
    newest = snapshots[-1].date
    assert f"latest {newest}" in master.refreshed
    token = master.add_slave("repo-box", arch="amd64", flavours=("openrc",))
    cache = tmp_path / "cache"
    slave = SlaveSetup(tmp_path / "slave", master.url, token, stage3_server.url, str(release_key.key_file),
                       cache_dir=str(cache),
                       extra={"repository": "snapshot", "snapshot_key": str(snapshot_key.key_file),
                              "snapshot_key_fingerprint": snapshot_key.fingerprint})
    try:
        j = create(master, "alice", "alice/toolchain-sanity")
        assert j["snapshot"]["date"] == newest
        run_once(slave)
        j = job(master, j["id"])
        assert j["state"] == "passed", j
        inputs = latest(j)["inputs"]
        assert inputs["stage3"] == {"name": stage3.tarball.name, "timestamp": stage3.timestamp}
        assert inputs["revision"] == j["revision"]
        assert inputs["repository"]["source"] == "snapshot" and inputs["repository"]["snapshot"] == newest
        assert inputs["repository"]["timestamp_chk"].endswith("00:45:00 +0000")
        assert inputs["emerge_info"] is None  # from inside the job container, later
        # the snapshot was fetched from the claim's hint, verified, unpacked, and stays cached
        assert (cache / f"repos/gentoo-{newest}/profiles/repo_name").read_text() == "gentoo\n"
        assert (cache / f"snapshots/gentoo-{newest}.tar.xz.verified").exists()
        assert ("GET", f"/snapshots/gentoo-{newest}.tar.xz", None) in snapshot_server.requests
        page = requests.get(f"{master.url}/jobs/{j['id']}/", timeout=60).text
        assert f"gentoo-{newest}.tar.xz" in page and stage3.tarball.name in page
        assert "not the pinned snapshot" not in page
    finally:
        slave.stop()
    assert mounts_under(tmp_path) == []


def test_a_snapshot_that_does_not_verify_is_an_error(tmp_path, master, stage3_server, release_key):
    """The slave trusts another snapshot key: the job ends in error (then again), saying why."""
    token = master.add_slave("wrong-key-box", arch="amd64", flavours=("openrc",))
    slave = SlaveSetup(tmp_path / "slave", master.url, token, stage3_server.url, str(release_key.key_file),
                       extra={"repository": "snapshot", "snapshot_key": str(release_key.key_file),
                              "snapshot_key_fingerprint": release_key.fingerprint})
    try:
        j = create(master, "alice", "alice/toolchain-sanity")
        run_once(slave)
        j = job(master, j["id"])
        run = latest(j)
        assert j["state"] in ("queued", "error") and run["end"] == "finished", j
        assert "repository: " in j["reason"] and f"not by the Gentoo snapshot key {release_key.fingerprint}" in \
            j["reason"], j["reason"]
        assert run["inputs"] is None
        assert not list((tmp_path / "slave/cache/repos").glob("gentoo-*[0-9]"))
    finally:
        slave.stop()
