"""Arch testing end to end with real emerge: gentoo/arch-test (not the stand-in) on two real slaves
whose stage3s carry real portage (autotua.demo.portage), one openrc and one systemd, against the
snapshot the master pinned (repository = "snapshot"), fetching distfiles from the local mirror
(GENTOO_MIRRORS; network = "host", as the mirror is on 127.0.0.1). A bug's package list of two
packages makes the group; hello's USE=broken-test combination fails in portage's src_test, is
classified as a test failure, is asked again on the other openrc slave, and the report names
exactly it. The list is smaller than the stand-in's (tests/e2e/test_archtest.py: libgreet's all
on/off and reverse dependency rows stay proven there) because every job here is a real emerge.
"""

from __future__ import annotations

import shutil

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.stage3 import publish_stage3, timestamp_now
from tests.slave.helpers import needs_root
from tests.support.live import group, job, latest, log_of, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]
LIST = "=app-misc/hello-1.0 amd64\n=app-misc/tiny-1.1 ^\n"
BROKEN = "=app-misc/hello-1.0 USE='broken-test english -french'"


@pytest.fixture(scope="module")
def stage3_mirror(tmp_path_factory, release_key):
    """Overrides tests/e2e/conftest.py's: a stage3 with real portage of each flavour on one mirror
    (the same root, saying its flavour in /etc/autotua-stage3); slowlib, hello's dependency,
    compiles for no time (SLOWLIB_SECONDS=0 in make.conf, as a stage3's own setting)."""
    from autotua.demo.portage import build_portage_rootfs, portage_wheel
    from autotua.demo.repository import PROFILE

    root = build_portage_rootfs(tmp_path_factory.mktemp("portage-stage3") / "root", portage_wheel(), PROFILE)
    conf = root / "etc/portage/make.conf"
    conf.write_text(conf.read_text() + "SLOWLIB_SECONDS=0\n")
    mirror, stamp = tmp_path_factory.mktemp("portage-mirror"), timestamp_now()
    for flavour in ("openrc", "systemd"):
        (root / "etc/autotua-stage3").write_text(f"{flavour}\n")
        publish_stage3(mirror, release_key, flavour=flavour, rootfs=root, timestamp=stamp, compression="gz")
    shutil.rmtree(root)
    with MirrorServer(mirror) as m:
        yield m


def test_a_bugs_package_list_emerged_on_two_slaves(e2e_master, make_slave, snapshot_mirror, snapshot_key,
                                                   snapshots):
    master = e2e_master(SNAPSHOT_MIRROR=snapshot_mirror.url, SNAPSHOT_KEY=snapshot_key.key_file,
                        SNAPSHOT_KEY_FINGERPRINT=snapshot_key.fingerprint)  # ARCHTEST_JOBUILD: gentoo/arch-test
    assert "verified and unpacked" in master.manage("refreshsnapshots")
    config = {"repository": "snapshot", "snapshot_key": str(snapshot_key.key_file),
              "snapshot_key_fingerprint": snapshot_key.fingerprint, "network": "host",
              "mirrors": {"gentoo": [snapshot_mirror.url]}}
    only_openrc = make_slave(master, "box-openrc", ["openrc"], **config)
    both = make_slave(master, "box-both", ["openrc", "systemd"], **config)
    r = master.people["alice"].post(master.url + "/api/v1/groups/archtest", timeout=120, json={
        "packages": LIST, "bug": 434343, "flavours": ["openrc", "systemd"], "combinations": 2, "rdeps": 2,
        "seed": 1})
    assert r.status_code == 201, r.text
    g = r.json()
    labels = [row["label"] for row in g["rows"]]
    # hello: REQUIRED_USE leaves no all-off/all-on; tiny has no USE flags; neither has reverse dependencies
    assert labels == ["=app-misc/hello-1.0 USE defaults", "=app-misc/hello-1.0 USE='-broken-test english -french'",
                      BROKEN, "=app-misc/tiny-1.1 USE defaults"]
    broken = labels.index(BROKEN)
    only_openrc.start()
    both.start()
    done = wait_for(lambda: (lambda x: x if x["state"] not in ("queued", "running") else None)(
        group(master, g["id"])), 900, "the group to end", interval=1)
    cells = {(c["row"], c["flavour"]): c for c in done["cells"]}
    assert len(cells) == 2 * len(labels)
    failed = sorted(k for k, c in cells.items() if c["verdict"] != "passed")
    assert failed == [(broken, "openrc"), (broken, "systemd")], [cells[k] for k in failed]
    on_openrc, on_systemd = cells[(broken, "openrc")], cells[(broken, "systemd")]
    # openrc: failed on one slave, the second opinion on the other (never on the same)
    assert on_openrc["verdict"] == "failed" and on_openrc["failure"] == "test"
    assert sorted(on_openrc["slaves"]) == ["box-both", "box-openrc"] and len(on_openrc["jobs"]) == 2
    assert on_openrc["text"].startswith("failed (test) on 2 slaves: ")
    assert on_systemd["verdict"] == "failed" and on_systemd["failure"] == "test"
    assert on_systemd["slaves"] == ["box-both"]
    assert on_systemd["text"] == "failed (test) on box-both; no other slave could give a second opinion"
    assert done["state"] == "failed"
    ran = {c["slaves"][0] for c in cells.values()}
    assert ran == {"box-openrc", "box-both"}
    assert {c["slaves"][0] for (_, f), c in cells.items() if f == "systemd"} == {"box-both"}
    # portage itself failed hello's src_test; the template classified it
    for jid in on_openrc["jobs"]:
        j = job(master, jid)
        results = latest(j)["results"][0]["results"]
        assert results == {"archtest.outcome": "failed", "archtest.step": "build", "archtest.failure": "test",
                           "archtest.package": "app-misc/hello-1.0", "archtest.phase": "test",
                           "archtest.message": "src_test fails on purpose: USE=broken-test"}
        assert j["reason"].startswith("gentoo/arch-test-1 failed"), j["reason"]
        assert latest(j)["inputs"]["repository"]["snapshot"] == snapshots[-1].date
    log = log_of(master, job(master, on_openrc["jobs"][0]), 0)
    assert "src_test fails on purpose: USE=broken-test" in log and "ERROR: app-misc/hello-1.0::gentoo failed" in log
    # a passing cell really built, tested and installed its package
    passed = job(master, cells[(labels.index("=app-misc/tiny-1.1 USE defaults"), "systemd")]["jobs"][0])
    assert latest(passed)["results"][0]["results"]["archtest.built"] == "app-misc/tiny-1.1"
    assert "Completed testing app-misc/tiny-1.1" in log_of(master, passed, 0)
    # the report: exactly it, as a test failure, on 2 slaves (openrc) and on one (systemd)
    text = requests.get(f"{master.url}/api/v1/groups/{g['id']}/report.txt", timeout=60).text
    failures = [line.strip() for line in text.splitlines() if "[FAILED]" in line]
    assert failures == [f"[FAILED] USE='broken-test english -french': {on_openrc['text']}",
                        f"[FAILED] USE='broken-test english -french': {on_systemd['text']}"]
    assert text.count("[passed]") == 2 * len(labels) - 2
    assert f"Repository: gentoo-{snapshots[1].date}" in text and "Bug: https://bugs.gentoo.org/434343" in text
    # each slave's stage3 and its real emerge --info (in the run's inputs: the job page shows it), linked
    for name, flavour in (("box-openrc", "openrc"), ("box-both", "openrc"), ("box-both", "systemd")):
        line = next(x for x in text.splitlines() if x.startswith(f"  {name} (amd64, {flavour}): "))
        assert f"stage3-amd64-{flavour}-" in line and line.endswith("#emerge-info"), line
        page = requests.get(line.rsplit(" ", 1)[1], timeout=60)
        assert page.status_code == 200 and '<details id="emerge-info">' in page.text
        assert "Portage 3.0.83 (python" in page.text
