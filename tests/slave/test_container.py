"""The job container, as root, step by step: the user namespace and its idmapped root, the mounts
(locked), /dev, /proc, /sys, /run of its own, the disk, the cgroup limits, the init, and nothing of
it on the host, after teardown, after the slave is killed, after the keeper is killed.

The attacks a hostile signed jobuild makes through a real slave are in tests/hardening/; these
test the parts on their own, as the slave's code uses them."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from autotua.linux import mounts_under
from autotua.slave import SlaveError
from autotua.slave.container import INSIDE, Container
from autotua.slave.container.idmap import IdRange, shift_tree
from autotua.slave.fsutil import remove_tree
from autotua.slave.preflight import Host
from autotua.slave.rootfs import RootCache
from tests.slave.helpers import needs_root
from tests.support.container import left_behind, sh, slave_config, start, wait_nothing_left, workspace

pytestmark = [pytest.mark.root, needs_root]


@pytest.fixture
def ws(tmp_path):
    return workspace(tmp_path)


def test_fresh_root_its_mounts_and_teardown(tmp_path, ws, cached_root, host):
    (ws.tree / "hello").write_text("from the tree\n")
    c = start(ws, cached_root, host)
    try:
        rc, out = sh(c, f"""id -u; cat /proc/self/uid_map; echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo
            cat {INSIDE}/tree/hello; touch {INSIDE}/tree/x 2>&1; echo made >/newfile; stat -c '%u:%g %n' / /bin/bash
            echo "dev: $(ls /dev | tr '\\n' ' ')"; grep -E ' /(dev|dev/pts|dev/shm|run|proc|sys) ' /proc/mounts""")
        assert rc == 0, out
        lines = out.splitlines()
        assert lines[0] == "0"  # root inside...
        assert lines[1].split() == ["0", str(host.ids.base), "65536"]  # ...is host.ids.base outside
        assert "autotua.slave.container.keeper" in out  # PID 1 is the job's init (a fork of the keeper)
        assert "from the tree" in out and "Read-only file system" in out
        assert "0:0 /" in out and "0:0 /bin/bash" in out  # the idmapped stage3: owned by the job's root
        dev = next(line for line in lines if line.startswith("dev: "))
        assert dev.split()[1:] == sorted(["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                                          "stdout", "tty", "urandom", "zero"])
        mounts = {line.split()[1]: line for line in lines[lines.index(dev) + 1:]}
        assert set(mounts) == {"/dev", "/dev/pts", "/dev/shm", "/run", "/proc", "/sys"}
        assert "tmpfs" in mounts["/dev"] and "devpts" in mounts["/dev/pts"] and "sysfs ro" in mounts["/sys"].replace(
            "sysfs sysfs ro", "sysfs ro")
        assert "nosuid" in mounts["/dev/shm"] and "nodev" in mounts["/dev/shm"]
        # nothing of it is visible on the host, the cache is untouched, the writes are on the job's disk
        assert mounts_under(tmp_path) == []
        assert not (cached_root / "newfile").exists()
        rc, out = sh(c, "cat /newfile")
        assert out == "made\n"
        info = c.info
        assert info["idmapped"] and info["loop"].startswith("/dev/loop")
        assert json.loads((ws.dir / "container.json").read_text())["init_pid"] == c.pid
    finally:
        c.teardown()
    assert wait_nothing_left(tmp_path, [ws.run], [info["netns"]]) == {}
    remove_tree(ws.dir)


def test_each_job_gets_its_own_root(tmp_path, cached_root, host):
    a = start(workspace(tmp_path / "a"), cached_root, host)
    b = start(workspace(tmp_path / "b"), cached_root, host)
    try:
        sh(a, "echo a >/etc/only-in-a")
        _rc, out = sh(b, "cat /etc/only-in-a 2>&1; echo rc=$?")
        assert "No such file" in out
    finally:
        a.teardown()
        b.teardown()


def test_killall_kills_background_processes(ws, cached_root, host):
    c = start(ws, cached_root, host)
    try:
        _rc, out = sh(c, "sleep 1000 & sleep 1000 & setsid sleep 1000 & echo started")
        assert "started" in out
        c.killall()
        _rc, out = sh(c, "n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n")
        assert int(out.strip()) == 2  # the init and this bash: the sleeps are gone
    finally:
        c.teardown()


def test_without_idmapped_mounts_the_stage3_is_shifted_once(tmp_path, ws, cached_root):
    cfg = slave_config(tmp_path / "slave", idmapped_mounts=False)
    host = Host.of(cfg)
    assert not host.idmap
    cache = RootCache(cached_root.parent.parent)
    t = time.monotonic()
    shifted = cache.shifted(cached_root, host.ids)
    assert time.monotonic() - t < 60
    assert shifted.stat().st_uid == host.ids.base and cache.shifted(cached_root, host.ids) == shifted
    c = start(ws, shifted, host)
    try:
        rc, out = sh(c, "stat -c '%u:%g' / /bin/bash /etc/passwd; echo x >/etc/shifted && stat -c %u /etc/shifted")
        assert rc == 0 and out.split() == ["0:0", "0:0", "0:0", "0"], out
        assert not c.info["idmapped"]
    finally:
        c.teardown()


def test_shift_tree_keeps_setuid_bits(tmp_path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin/su").write_text("#!/bin/sh\n")
    os.chown(src / "bin/su", 0, 250)
    os.chmod(src / "bin/su", 0o6755)
    os.symlink("su", src / "bin/link")
    shift_tree(src, tmp_path / "dest", IdRange(1879048192))
    st = os.stat(tmp_path / "dest/bin/su")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1879048192, 1879048192 + 250, 0o6755)
    assert os.lstat(tmp_path / "dest/bin/link").st_uid == 1879048192


def test_resolv_conf_is_written_never_through_a_link(tmp_path, ws, cached_root, host):
    """A root whose /etc/resolv.conf links to a host path: the file replaces the link."""
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    lower = tmp_path / "lower"
    subprocess.run(["cp", "-a", f"{cached_root}/.", str(lower)], check=True)
    os.symlink(victim, lower / "etc/resolv.conf")
    c = start(ws, lower, host)
    try:
        _rc, out = sh(c, "test -L /etc/resolv.conf && echo link || cat /etc/resolv.conf")
        assert "nameserver 10.0.2.3" in out
    finally:
        c.teardown()
    assert victim.read_text() == "host file\n"


@pytest.mark.bad_input("container", "a bind of a directory that does not exist", "SlaveError naming the step; "
                       "nothing left")
def test_a_failed_setup_leaves_nothing(tmp_path, ws, cached_root, host):
    c = Container(ws.dir, {**ws.spec(cached_root, [], tmp_path / "no-distfiles", host)})
    with pytest.raises(SlaveError, match=r"container: mounts: .*no-distfiles is not a directory"):
        c.start()
    assert wait_nothing_left(tmp_path, [ws.run]) == {}


def _crash(parent_code: str, ws, cached_root, host) -> tuple[dict, subprocess.Popen]:
    script = f"""
import json, os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2] / "slave")!r})
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from autotua.slave.container import Container
c = Container({str(ws.dir)!r}, json.loads(sys.argv[1]))
info = c.start()
from tests.support.container import sh
p = c.spawn(["/bin/bash", "-c", "sleep 1000 & sleep 1000"], {{}}, {{}})
print(json.dumps({{**info, "keeper": c.proc.pid}}), flush=True)
{parent_code}
time.sleep(1000)
"""
    (ws.dir.parent / "distfiles").mkdir(exist_ok=True)
    spec = ws.spec(cached_root, [], ws.dir.parent / "distfiles", host)
    parent = subprocess.Popen([sys.executable, "-c", script, json.dumps(spec)], stdout=subprocess.PIPE, text=True)
    return json.loads(parent.stdout.readline()), parent


def test_everything_goes_when_the_slave_is_killed(tmp_path, ws, cached_root, host, request):
    """SIGKILL the process that started the container: the keeper sees EOF and undoes every step."""
    info, parent = _crash("", ws, cached_root, host)
    request.addfinalizer(parent.kill)
    assert left_behind(tmp_path, [ws.run], [info["netns"]])["cgroups"]  # it is up
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_nothing_left(tmp_path, [ws.run], [info["netns"]], timeout=20) == {}
    remove_tree(ws.dir)


def test_everything_but_the_cgroups_goes_when_the_keeper_is_killed(tmp_path, ws, cached_root, host, request):
    """SIGKILL the keeper itself: the init dies with it (PR_SET_PDEATHSIG) and every process with the
    init, the kernel drops the mounts, the loop device clears itself, slirp4netns sees its exit
    descriptor close; the empty cgroups stay for Container.kill (or the next start) to remove."""
    info, parent = _crash("", ws, cached_root, host)
    request.addfinalizer(parent.kill)
    os.kill(info["keeper"], signal.SIGKILL)

    def left():  # but the process that started it, which lives on here
        out = left_behind(tmp_path, [ws.run], [info["netns"]])
        out["processes"] = [p for p in out.get("processes", []) if not str(p).startswith(f"{parent.pid}:")]
        return {k: v for k, v in out.items() if v}

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(left()) - {"cgroups"}:
        time.sleep(0.05)
    assert set(left()) == {"cgroups"}, left()
    from autotua.slave.container import cgroups

    assert cgroups.remove_dirs(info["cgroups"]) == []  # empty: nothing of the job survived
    assert left() == {}
    parent.kill()
    parent.wait()


def test_root_cache_prune_spares_roots_in_use(tmp_path):
    cache = RootCache(tmp_path)
    one = cache.dir / "stage3-amd64-openrc-1"
    two = cache.dir / "stage3-amd64-openrc-2"
    for r in (one, two, Path(f"{two}@1879048192")):
        (r / "etc").mkdir(parents=True)
        Path(f"{r}.complete").write_text("x\n")
    fd = cache.hold(one)
    try:
        assert cache.prune(keep=set()) == [two]
        assert not Path(f"{two}@1879048192").exists()
    finally:
        os.close(fd)
    assert cache.prune(keep=set()) == [one]


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data, link, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_portconf_unpacked_into_the_root_owned_by_the_job(tmp_path, ws, cached_root, host):
    good = _tarball(tmp_path / "good.tar.gz", [("etc/portage/make.conf", b'FEATURES="test"\n', None, 0o644),
                                                ("etc/portage/make.profile", None, "/var/db/repos/gentoo/x", 0o777)])
    c = start(ws, cached_root, host, portconf=[str(good)])
    try:
        _rc, out = sh(c, "cat /etc/portage/make.conf; stat -c %u:%g /etc/portage/make.conf; readlink "
                         "/etc/portage/make.profile")
        assert out.splitlines() == ['FEATURES="test"', "0:0", "/var/db/repos/gentoo/x"]
    finally:
        c.teardown()


@pytest.mark.bad_input("tarball", "a PORTCONF tarball with an entry {case}", "TarballError naming the entry; the "
                       "container is not built")
@pytest.mark.parametrize("case,entry,why", [
    ("under run/", ("run/evil", b"x", None, 0o644), "may only hold etc/portage/"),
    ("under dev/", ("dev/null", b"x", None, 0o644), "may only hold etc/portage/"),
    ("elsewhere in etc/", ("etc/passwd", b"x", None, 0o644), "may only hold etc/portage/"),
    ("setuid", ("etc/portage/bashrc", b"x", None, 0o4755), "setuid or setgid"),
    ("a link climbing out", ("etc/portage/evil", None, "../../../../../etc/shadow", 0o777), "points outside the root"),
])
def test_a_bad_portconf_is_refused_naming_its_entry(tmp_path, ws, cached_root, host, case, entry, why):
    bad = _tarball(tmp_path / "bad.tar.gz", [("etc/portage/make.conf", b"x\n", None, 0o644), entry])
    c = Container(ws.dir, {**ws.spec(cached_root, [], tmp_path / "distfiles", host), "portconf": [str(bad)]})
    (tmp_path / "distfiles").mkdir()
    with pytest.raises(SlaveError, match=rf"portconf: bad\.tar\.gz: refusing entry '{entry[0]}': .*{why}"):
        c.start()
    assert wait_nothing_left(tmp_path, [ws.run]) == {}
    assert not (Path("/run/evil").exists())
