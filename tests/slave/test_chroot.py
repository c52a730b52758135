"""The chroot in its own namespaces, as root: overlayfs roots from the cache, the Handbook's mounts,
nothing of it visible on the host, and nothing left after teardown or after the slave is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotua.linux import mounts_under
from autotua.slave import SlaveError
from autotua.slave.chroot import INSIDE, JobNamespace
from autotua.slave.fsutil import remove_tree
from autotua.slave.rootfs import RootCache
from tests.slave.helpers import needs_root

pytestmark = [pytest.mark.root, needs_root]


def spec(lower, job, **kw):
    (job / "tree").mkdir(parents=True, exist_ok=True)
    (job / "out").mkdir(exist_ok=True)
    s = {"lower": str(lower), "upper": str(job / "upper"), "work": str(job / "ovl"), "resolv_conf": "/etc/resolv.conf",
         "binds": [{"source": str(job / "tree"), "at": f"{INSIDE}/tree", "readonly": True},
                   {"source": str(job / "out"), "at": f"{INSIDE}/out"}],
         "dirs": [{"path": f"{INSIDE}/jobs/0/work"}]}
    s.update(kw)
    return s


def sh(ns, script):
    p = ns.popen(["/bin/bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT)
    out = p.communicate(timeout=60)[0].decode()
    return p.returncode, out


def test_fresh_root_mounts_and_teardown(tmp_path, cached_root):
    job = tmp_path / "job"
    (job / "tree").mkdir(parents=True)
    (job / "tree/hello").write_text("from the tree\n")
    ns = JobNamespace(job, spec(cached_root, job))
    info = ns.start()
    try:
        assert info["root"] == "overlay"
        rc, out = sh(ns, "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                         f"cat {INSIDE}/tree/hello; touch {INSIDE}/tree/x 2>&1; echo made >/newfile; "
                         "test -e /dev/null && echo devnull; "
                         "while read -r src mp fs opts rest; do [[ $mp == /dev/shm ]] && echo \"$fs $opts\"; done "
                         "</proc/mounts; true")
        assert rc == 0, out
        assert "autotua.slave.keeper" in out  # PID 1 of the namespace is the keeper
        assert "from the tree" in out
        assert "Read-only file system" in out
        assert "devnull" in out
        assert "noexec" in out and "nosuid" in out  # /dev/shm
        # nothing of it is visible on the host, and the cache is untouched
        assert mounts_under(job) == []
        assert (job / "upper/newfile").read_text() == "made\n"
        assert not (cached_root / "newfile").exists()
        assert (job / "root/etc/resolv.conf").exists() is False  # only inside the namespace
    finally:
        ns.teardown()
    assert mounts_under(job) == []
    remove_tree(job)


def test_each_job_gets_its_own_root(tmp_path, cached_root):
    a, b = JobNamespace(tmp_path / "a", spec(cached_root, tmp_path / "a")), \
        JobNamespace(tmp_path / "b", spec(cached_root, tmp_path / "b"))
    a.start()
    b.start()
    try:
        sh(a, "echo a >/etc/only-in-a")
        _rc, out = sh(b, "cat /etc/only-in-a 2>&1; echo rc=$?")
        assert "No such file" in out
    finally:
        a.teardown()
        b.teardown()


def test_killall_kills_background_processes(tmp_path, cached_root):
    ns = JobNamespace(tmp_path / "job", spec(cached_root, tmp_path / "job"))
    ns.start()
    try:
        p = ns.popen(["/bin/bash", "-c", "sleep 1000 & sleep 1000 & echo started; wait"],
                     env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE)
        assert p.stdout.readline() == b"started\n"
        ns.killall()
        assert p.wait(timeout=10) != 0
        _rc, out = sh(ns, "n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n")
        assert int(out.strip()) == 2  # the keeper and this bash: the sleeps are gone
    finally:
        ns.teardown()


def test_plain_copy_when_overlay_is_not_wanted(tmp_path, cached_root):
    ns = JobNamespace(tmp_path / "job", spec(cached_root, tmp_path / "job", overlay=False))
    assert ns.start()["root"] == "copy"
    try:
        _rc, out = sh(ns, "echo x >/etc/copied && cat /etc/os-release")
        assert "AutotuA test stage3" in out
    finally:
        ns.teardown()
    assert not (cached_root / "etc/copied").exists()


def test_resolv_conf_is_copied_never_written_through_a_link(tmp_path, cached_root):
    """A root whose /etc/resolv.conf is a link to a host path: the copy replaces the link."""
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    job = tmp_path / "job"
    lower = tmp_path / "lower"
    subprocess.run(["cp", "-a", f"{cached_root}/.", str(lower)], check=True)
    os.symlink(victim, lower / "etc/resolv.conf")
    ns = JobNamespace(job, spec(lower, job))
    ns.start()
    try:
        _rc, out = sh(ns, "test -L /etc/resolv.conf && echo link || echo file")
        assert out.strip() == "file"
    finally:
        ns.teardown()
    assert victim.read_text() == "host file\n"


def test_setup_failure_leaves_nothing(tmp_path, cached_root):
    job = tmp_path / "job"
    s = spec(cached_root, job)
    s["binds"].append({"source": str(tmp_path / "nonexistent"), "at": "mnt/x"})
    with pytest.raises(SlaveError, match=r"chroot: .*nonexistent is not a directory"):
        JobNamespace(job, s).start()
    assert mounts_under(job) == []


def test_keeper_exits_and_mounts_vanish_when_the_slave_is_killed(tmp_path, cached_root):
    """SIGKILL the process that started the namespace: the keeper sees EOF, everything goes."""
    job = tmp_path / "job"
    script = f"""
import json, sys, time
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.dirname(__file__)))!r})
from autotua.slave.chroot import JobNamespace
ns = JobNamespace({str(job)!r}, json.loads(sys.argv[1]))
ns.start()
p = ns.popen(["/bin/bash", "-c", "sleep 1000"], env={{}})
print(ns.pid, p.pid, flush=True)
time.sleep(1000)
"""
    import json

    parent = subprocess.Popen([sys.executable, "-c", script, json.dumps(spec(cached_root, job))],
                              stdout=subprocess.PIPE, text=True)
    keeper, nsenter = map(int, parent.stdout.readline().split())
    assert os.path.exists(f"/proc/{keeper}")
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (os.path.exists(f"/proc/{keeper}") or _alive(nsenter)):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{keeper}")
    assert not _alive(nsenter)
    assert mounts_under(job) == []
    remove_tree(job)
    assert not job.exists()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_root_cache_prune_spares_roots_in_use(tmp_path, cached_root):
    cache = RootCache(tmp_path)
    one = cache.dir / "stage3-amd64-openrc-1"
    two = cache.dir / "stage3-amd64-openrc-2"
    for r in (one, two):
        (r / "etc").mkdir(parents=True)
        Path(f"{r}.complete").write_text("x\n")
    fd = cache.hold(one)
    try:
        assert cache.prune(keep=set()) == [two]
    finally:
        os.close(fd)
    assert cache.prune(keep=set()) == [one]


def test_portconf_unpacked_into_the_root_and_a_bad_one_refused(tmp_path, cached_root):
    import io
    import tarfile

    def tarball(path, members):
        with tarfile.open(path, "w:gz") as tar:
            for name, data, link in members:
                info = tarfile.TarInfo(name)
                if link:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return str(path)

    good = tarball(tmp_path / "good.tar.gz", [("etc/portage/make.conf", b'FEATURES="test"\n', None)])
    ns = JobNamespace(tmp_path / "job", spec(cached_root, tmp_path / "job", portconf=[good]))
    ns.start()
    try:
        _rc, out = sh(ns, "cat /etc/portage/make.conf")
        assert out == 'FEATURES="test"\n'
    finally:
        ns.teardown()
    bad = tarball(tmp_path / "bad.tar.gz", [("etc/portage/make.conf", b"x\n", None),
                                            ("etc/portage/evil", None, "../../../../../etc/shadow")])
    job = tmp_path / "job2"
    with pytest.raises(SlaveError, match=r"bad\.tar\.gz: refusing entry 'etc/portage/evil'.*points outside the root"):
        JobNamespace(job, spec(cached_root, job, portconf=[bad])).start()
    assert not (job / "upper/etc/portage").exists()  # nothing of it was written
    assert mounts_under(job) == []
