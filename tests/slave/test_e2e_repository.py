"""End to end, as root: a live master pinned to the snapshots of a real (local) Gentoo mirror, and the
real `autotua-slave`, which fetches the pinned snapshot (from the claim's mirror hint: its own mirror
has no snapshots/), verifies it against the snapshot key, unpacks it into its cache, holds it for
the job, and records the run's inputs; the job's API and page show the pin and what the run used."""

from __future__ import annotations

import json

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.repository import PROFILE
from autotua.demo.slaves import SlaveSetup
from autotua.linux import mounts_under
from autotua_master.live import LiveMaster
from tests.slave.helpers import needs_root
from tests.support.live import create, job, latest, log_of, run_once, start

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
        assert inputs["emerge_info"] is None  # the tiny stage3 has no portage (the emerge test below has)
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


# -- emerge in the job: DISTDIR, the binary package cache, emerge --info (issue 12) -------------------
@pytest.fixture(scope="module")
def portage_stage3_server(tmp_path_factory, release_key):
    """A stage3 that carries real portage (autotua.demo.portage), published on a mirror of its own;
    slowlib's compile takes SLOWLIB_SECONDS=3 (set in its make.conf, as a stage3's own setting)."""
    from autotua.demo.portage import build_portage_rootfs, portage_wheel
    from autotua.demo.repository import PROFILE
    from autotua.demo.stage3 import publish_stage3

    root = build_portage_rootfs(tmp_path_factory.mktemp("portage-stage3") / "root", portage_wheel(), PROFILE)
    conf = root / "etc/portage/make.conf"
    conf.write_text(conf.read_text() + "SLOWLIB_SECONDS=3\n")
    mirror = tmp_path_factory.mktemp("portage-mirror")
    release = publish_stage3(mirror, release_key, rootfs=root, compression="gz")
    with MirrorServer(mirror) as m:
        m.release = release
        yield m


def run_until_final(slave, master, j: dict, most: int = 4) -> dict:
    """``run --once`` until ``j`` has ended (the module's other tests may have left a job queued)."""
    for _ in range(most):
        run_once(slave)
        j = job(master, j["id"])
        if j["state"] not in ("queued", "running"):
            break
    return j


def test_a_job_emerges_and_the_next_installs_its_dependency_from_the_binary_package_cache(
        tmp_path, master, portage_stage3_server, release_key, snapshot_key, snapshots, snapshot_server, sample):
    """gentoo/arch-test on a real slave, in the job container: portage fetches hello and slowlib
    into the job's DISTDIR (from the slave's GENTOO_MIRRORS), builds, tests (FEATURES=test) and
    installs them, packaging each into the slave's binary package cache; emerge --info goes with the
    run's inputs and as an attachment, with hello's build log. The distfiles are harvested into the
    slave's cache (verified against the snapshot's Manifests); the second job of the same package
    installs slowlib from its binary package and fetches nothing."""
    token = master.add_slave("emerge-box", arch="amd64", flavours=("openrc",))
    cache = tmp_path / "cache"
    slave = SlaveSetup(tmp_path / "slave", master.url, token, portage_stage3_server.url, str(release_key.key_file),
                       cache_dir=str(cache), mirrors={"gentoo": [snapshot_server.url]},
                       extra={"repository": "snapshot", "snapshot_key": str(snapshot_key.key_file),
                              "snapshot_key_fingerprint": snapshot_key.fingerprint,
                              "network": "host",  # the local mirror is on the host's 127.0.0.1
                              "cpus": 2})
    params = {"atom": "=app-misc/hello-1.0", "use": "-broken-test english -french"}
    distfiles = [("GET", f"/distfiles/{n}", None) for n in ("slowlib-1.0.tar.gz", "hello-1.0.tar.gz")]
    try:
        first = run_until_final(slave, master, create(master, "alice", "gentoo/arch-test", parameters=params))
        assert first["state"] == "passed", first
        run = latest(first)
        [result] = run["results"]
        assert result["results"]["archtest.built"] == "dev-libs/slowlib-1.0 app-misc/hello-1.0"
        assert result["results"]["archtest.binary"] == ""
        assert [a["label"] for a in result["attachments"]] == ["emerge --info", "build log"]
        build_log = requests.get(f"{master.url}/api/v1/jobs/{first['id']}/runs/{run['uuid']}/jobuilds/0/"
                                 f"attachments/{result['attachments'][1]['name']}", timeout=60).text
        assert "Completed testing app-misc/hello-1.0" in build_log
        info = run["inputs"]["emerge_info"]
        assert "Portage 3.0.83" in info and 'PKGDIR="/var/cache/binpkgs"' in info
        features = info.split('\nFEATURES="', 1)[1].split('"', 1)[0].split()
        assert {"userpriv", "ipc-sandbox", "network-sandbox", "pid-sandbox", "buildpkg"} <= set(features)
        assert run["inputs"]["stage3"]["timestamp"] == portage_stage3_server.release.timestamp
        # portage fetched the distfiles in the job; the slave harvested them, verified
        assert all(d in snapshot_server.requests for d in distfiles)
        assert sorted(p.name for p in (cache / "distfiles").iterdir() if not p.name.startswith(".")) == [
            "hello-1.0.tar.gz", "slowlib-1.0.tar.gz"]
        # the binary packages are in the cache of the job's signers (gentoo/arch-test's: gentoo alone)
        [pkgdir] = [p for p in (cache / "binpkgs").glob("*/pkgdir") if list(p.glob("dev-libs/slowlib/*.gpkg.tar"))]
        key = json.loads((pkgdir.parent / "key.json").read_text())
        assert key["signers"] == [sample.fingerprints["gentoo"]] and key["repository"] == snapshots[-1].date
        assert key["stage3"] == portage_stage3_server.release.timestamp and key["profile"] == PROFILE
        page = requests.get(f"{master.url}/jobs/{first['id']}/", timeout=60).text
        assert '<details id="emerge-info">' in page and "Portage 3.0.83 (python" in page  # the job page shows it

        fetched = len(snapshot_server.requests)
        second = run_until_final(slave, master, create(master, "alice", "gentoo/arch-test", parameters=params))
        assert second["state"] == "passed", second
        results = latest(second)["results"][0]["results"]
        assert results["archtest.binary"] == "dev-libs/slowlib-1.0"  # from the binary package cache
        assert results["archtest.built"] == "app-misc/hello-1.0"  # the package under test, from source
        log = log_of(master, second, 0)
        assert "Emerging binary (1 of 1) dev-libs/slowlib-1.0" in log and "Completed testing app-misc/hello-1.0" in log
        assert not [r for r in snapshot_server.requests[fetched:] if r[1].startswith("/distfiles/")]  # none fetched
    finally:
        slave.stop()
    assert mounts_under(tmp_path) == []
