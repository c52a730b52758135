"""The autotua-slave command without a master: fetch-stage3, clean after a crash, status, the lock."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.slaves import SlaveSetup
from autotua.linux import MNT_DETACH, mount, mounts_under, umount
from autotua.slave import SlaveError
from autotua.slave.fsutil import remove_tree
from autotua.slave.locks import Lock
from tests.slave.helpers import needs_root

pytestmark = [pytest.mark.root, needs_root]


@pytest.fixture
def setup(tmp_path, stage3, release_key):
    with MirrorServer(stage3.mirror) as m:
        yield SlaveSetup(tmp_path / "slave", "http://127.0.0.1:9/", "s_token", m.url, str(release_key.key_file))


def test_fetch_stage3_and_status(setup):
    r = setup.run("fetch-stage3")
    assert r.returncode == 0, r.stderr
    assert "amd64 openrc: stage3-amd64-openrc-" in r.stdout and "verified, unpacked in" in r.stdout
    r = setup.run("status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["running"] == "no"
    assert status["stage3_roots"] and status["stage3_roots"][0].startswith("stage3-amd64-openrc-")
    assert status["on_the_master"].startswith("unknown:")


def test_fetch_snapshot_status_and_prune(tmp_path, stage3, release_key, snapshots, snapshot_key):
    with MirrorServer(snapshots[0].mirror) as m:
        s = SlaveSetup(tmp_path / "slave", "http://127.0.0.1:9/", "t", m.url, str(release_key.key_file),
                       extra={"snapshot_key": str(snapshot_key.key_file), "keep_snapshots": 1,
                              "snapshot_key_fingerprint": snapshot_key.fingerprint, "repository": "snapshot"})
        old, new = (x.date for x in snapshots)
        r = s.run("fetch-snapshot", old)
        assert r.returncode == 0, r.stderr
        assert f"gentoo-{old}.tar.xz verified (the snapshot key), unpacked in " in r.stdout
        r = s.run("fetch-snapshot")  # gentoo-latest: yesterday's; with keep_snapshots = 1, the older goes
        assert r.returncode == 0 and f"gentoo-{new}.tar.xz verified" in r.stdout, r.stderr
    status = json.loads(s.run("status", "--json").stdout)
    assert status["snapshots"] == [new] and status["repository"] == "snapshot"
    assert not (tmp_path / f"slave/cache/repos/gentoo-{old}").exists()
    r = s.run("fetch-snapshot", "../etc")
    assert r.returncode == 1 and "not a snapshot date" in r.stderr


def test_fetch_stage3_refuses_a_tarball_with_a_device_node(tmp_path, release_key):
    import tarfile

    from autotua.demo.stage3 import publish_stage3

    dev = tarfile.TarInfo("./dev/sda")
    dev.type, dev.devmajor, dev.devminor = tarfile.BLKTYPE, 8, 0
    bad = publish_stage3(tmp_path / "mirror", release_key, extra=[(dev, None)])
    with MirrorServer(bad.mirror) as m:
        s = SlaveSetup(tmp_path / "slave", "http://127.0.0.1:9/", "t", m.url, str(release_key.key_file))
        r = s.run("fetch-stage3")
    assert r.returncode == 1
    assert "refusing entry './dev/sda': it is a device node" in r.stderr
    roots = tmp_path / "slave/cache/roots"
    assert not roots.exists() or not [p for p in roots.iterdir() if p.is_dir()]


def test_clean_after_a_crash(setup):
    """A slave killed with its job's namespace up: the keeper goes by itself; clean removes the rest,
    including a mount someone left on the host, and never deletes below a mount."""
    r = setup.run("fetch-stage3")
    assert r.returncode == 0, r.stderr
    work = setup.base / "work/jobs/crashed-run"
    roots = sorted(p for p in (setup.base / "cache/roots").iterdir() if p.is_dir())
    script = f"""
import json, sys, time
from autotua.slave.chroot import JobNamespace
from autotua.slave.job import Workspace
ws = Workspace({str(setup.base / "work/jobs")!r}, "crashed-run")
ws.create()
ns = JobNamespace(ws.dir, ws.spec(__import__("pathlib").Path({str(roots[0])!r}), [], ws.tree, "", []))
ns.start()
print(ns.pid, flush=True)
time.sleep(1000)
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=setup.env())
    keeper = int(p.stdout.readline())
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{keeper}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{keeper}")
    assert work.is_dir()
    # something mounted below the job on the host (as an older crash might leave): clean unmounts it first
    mount("tmpfs", work / "tree", "tmpfs")
    assert mounts_under(work)
    # and a throw-away keyring the crashed run was verifying with
    (setup.base / "work/tmp/autotua-gpg-crashed").mkdir(parents=True)
    (setup.base / "work/tmp/autotua-gpg-crashed/pubring.kbx").write_text("x")
    r = setup.run("clean")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "crashed-run: removed (unmounted what was left)" in r.stdout
    assert "autotua-gpg-crashed: removed (a temporary file of an earlier run)" in r.stdout
    assert not work.exists() and list((setup.base / "work/tmp").iterdir()) == []
    assert mounts_under(setup.base) == []


def test_nothing_is_deleted_below_a_mount(tmp_path):
    d = tmp_path / "job"
    (d / "mnt").mkdir(parents=True)
    mount("tmpfs", d / "mnt", "tmpfs")
    try:
        (d / "mnt/precious").write_text("x")
        with pytest.raises(SlaveError, match=r"refusing to delete .* still mounted there"):
            remove_tree(d)
        assert (d / "mnt/precious").exists()
    finally:
        umount(d / "mnt", MNT_DETACH)


def test_one_slave_per_work_directory(setup):
    lock = Lock(setup.base / "work/slave.lock").acquire()
    try:
        r = setup.run("run", "--once")
        assert r.returncode == 1
        assert "another autotua-slave runs with this work directory" in r.stderr
        r = setup.run("clean")
        assert r.returncode == 1 and "another autotua-slave" in r.stderr
    finally:
        lock.release()


def test_no_token_and_unreachable_master(setup, tmp_path):
    (setup.base / "slave.token").unlink()
    r = setup.run("run", "--once")
    assert r.returncode == 1 and "run `autotua-slave register` first" in r.stderr
