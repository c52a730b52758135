"""Arch testing end to end on real slaves, with the stand-in for emerge (gentoo/arch-test-standin: the
real template's setup, classification and report, portage's output faked from the job's USE flags,
for slaves whose stage3 has no portage, as the demo's): a bug's package list of two packages makes
the group on a real master that fetched and verified the snapshot itself; two real slaves with
different flavours run it; the combination with USE=broken-test fails, classified as a test
failure, and is asked again on the other slave; the report names exactly it. And values reach a
real slave's phases as data.

The same with real emerge (gentoo/arch-test, stage3s that carry portage, repository = "snapshot")
is tests/e2e/test_archtest_emerge.py, on a smaller list; this one keeps the larger group (libgreet's
all-off/all-on rows and reverse dependencies) quick.
"""

from __future__ import annotations

import pytest
import requests

from autotua_master.jobs.models.job import FINAL
from tests.slave.helpers import needs_root
from tests.support.live import create, group, job, latest, log_of, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]
LIST = "=app-misc/hello-1.0 amd64\n=dev-libs/libgreet-1.0 ^\n"


def test_a_bugs_package_list_on_two_slaves(e2e_master, make_slave, snapshot_mirror, snapshot_key, snapshots):
    master = e2e_master(SNAPSHOT_MIRROR=snapshot_mirror.url, SNAPSHOT_KEY=snapshot_key.key_file,
                        SNAPSHOT_KEY_FINGERPRINT=snapshot_key.fingerprint,
                        ARCHTEST_JOBUILD="gentoo/arch-test-standin")
    assert "verified and unpacked" in master.manage("refreshsnapshots")
    only_openrc = make_slave(master, "box-openrc", ["openrc"])
    both = make_slave(master, "box-both", ["openrc", "systemd"])
    r = master.people["alice"].post(master.url + "/api/v1/groups/archtest", timeout=120, json={
        "packages": LIST, "bug": 424242, "flavours": ["openrc", "systemd"], "combinations": 2, "rdeps": 10,
        "seed": 1})
    assert r.status_code == 201, r.text
    g = r.json()
    labels = [row["label"] for row in g["rows"]]
    # only combinations satisfying REQUIRED_USE; libgreet's all-off/all-on pair; its reverse dependencies
    assert labels == [
        "=app-misc/hello-1.0 USE defaults",
        "=app-misc/hello-1.0 USE='-broken-test english -french'",
        "=app-misc/hello-1.0 USE='broken-test english -french'",
        "=dev-libs/libgreet-1.0 USE defaults",
        "=dev-libs/libgreet-1.0 all USE off",
        "=dev-libs/libgreet-1.0 all USE on",
        "=dev-libs/libgreet-1.0 USE='-doc static-libs -unicode'",
        "=dev-libs/libgreet-1.0 USE='-doc -static-libs unicode'",
        "=dev-libs/libgreet-1.0 reverse dependency =app-misc/greeter-1.0",
        "=dev-libs/libgreet-1.0 reverse dependency =app-misc/greeter-extras-1.0 USE='fancy'",
    ]
    broken = labels.index("=app-misc/hello-1.0 USE='broken-test english -french'")
    only_openrc.start()
    both.start()
    done = wait_for(lambda: (lambda x: x if x["state"] not in ("queued", "running") else None)(
        group(master, g["id"])), 600, "the group to end")
    cells = {(c["row"], c["flavour"]): c for c in done["cells"]}
    assert len(cells) == 2 * len(labels)
    failed = sorted(k for k, c in cells.items() if c["verdict"] != "passed")
    assert failed == [(broken, "openrc"), (broken, "systemd")], [cells[k] for k in failed]
    on_openrc, on_systemd = cells[(broken, "openrc")], cells[(broken, "systemd")]
    # openrc: failed on one slave, the second opinion on the other (never on the same)
    assert on_openrc["verdict"] == "failed" and on_openrc["failure"] == "test"
    assert sorted(on_openrc["slaves"]) == ["box-both", "box-openrc"] and len(on_openrc["jobs"]) == 2
    assert on_openrc["text"].startswith("failed (test) on 2 slaves: ")
    # systemd: only one slave serves it
    assert on_systemd["slaves"] == ["box-both"]
    assert on_systemd["text"] == "failed (test) on box-both; no other slave could give a second opinion"
    assert done["state"] == "failed"
    # every job ran on a slave that serves its flavour; both slaves worked
    ran = {c["slaves"][0] for c in cells.values()}
    assert ran == {"box-openrc", "box-both"}
    assert {c["slaves"][0] for (_, f), c in cells.items() if f == "systemd"} == {"box-both"}
    # the phases saw the values as data: the stand-in said what it tested, the classification is the template's
    first = job(master, on_openrc["jobs"][0])
    assert "Testing =app-misc/hello-1.0 with USE='broken-test english -french'" in log_of(master, first, 0)
    results = latest(first)["results"][0]["results"]
    assert results == {"archtest.outcome": "failed", "archtest.step": "build", "archtest.failure": "test",
                       "archtest.package": "app-misc/hello-1.0", "archtest.phase": "test",
                       "archtest.message": "src_test fails on purpose: USE=broken-test"}
    assert first["reason"] == "gentoo/arch-test-standin-1 failed in src_test"
    # the report: exactly it, as a test failure, on 2 slaves (openrc) and on one (systemd)
    text = requests.get(f"{master.url}/api/v1/groups/{g['id']}/report.txt", timeout=60).text
    failures = [line.strip() for line in text.splitlines() if "[FAILED]" in line]
    assert failures == [f"[FAILED] USE='broken-test english -french': {on_openrc['text']}",
                        f"[FAILED] USE='broken-test english -french': {on_systemd['text']}"]
    assert text.count("[passed]") == 2 * len(labels) - 2
    assert f"Repository: gentoo-{snapshots[1].date}" in text and "Bug: https://bugs.gentoo.org/424242" in text
    # each slave's stage3 and emerge --info (the stand-in's), linked
    for name, flavour in (("box-openrc", "openrc"), ("box-both", "openrc"), ("box-both", "systemd")):
        line = next(x for x in text.splitlines() if x.startswith(f"  {name} (amd64, {flavour}): "))
        assert f"stage3-amd64-{flavour}-" in line and "/attachments/" in line
        info = requests.get(line.rsplit(" ", 1)[1], timeout=60)
        assert info.status_code == 200 and "a stand-in: no emerge --info ran" in info.text


def test_values_reach_a_real_slave_as_data(e2e_master, make_slave):
    master = e2e_master()
    slave = make_slave(master, "box")
    note = "$(touch /tmp/pwned) `touch /tmp/pwned` '\"; touch /tmp/pwned\nsecond line\n  Grüße \\ $HOME"
    j = create(master, "alice", "alice/params-echo", parameters={"note": note})
    assert j["state"] == "queued" and j["parameters"] == {"note": note, "mode": "fast"}
    slave.start()
    j = wait_for(lambda: (lambda x: x if x["state"] in FINAL else None)(job(master, j["id"])), 300, "the job")
    assert j["state"] == "passed", j["reason"]
    result = latest(j)["results"][0]
    assert result["results"] == {"mode": "fast", "note.length": str(len(note.encode()))}  # bytes: LC_ALL=C
    [att] = result["attachments"]
    got = requests.get(f"{master.url}/api/v1/jobs/{j['id']}/runs/{latest(j)['uuid']}/jobuilds/0/attachments/"
                       f"{att['name']}", timeout=60)
    assert got.content == note.encode()
