"""`make demo`, for real: the whole system, then a Ctrl-C that stops everything and leaves no mount."""

import os
import signal
import subprocess
import sys
import time

import pytest

from autotua.demo.main import main
from autotua.linux import mounts_under
from tests.support.leftovers import ProcessWatch, descendants

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the demo's slaves need root")


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    """The stage3s and slave caches, built by the first demo and used by the next (as on a real machine)."""
    return tmp_path_factory.mktemp("demo-cache")


def test_demo_without_slaves_validates_and_queues(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path / "demo"), "--cache", str(tmp_path / "cache"), "--no-slaves",
                 "--exit-when-done"]) == 0
    out = capsys.readouterr().out
    assert "bob/integration        by bob    waiting" in out
    assert "=alice/hello-suite-1.1 (openrc) queued by the master for a SIDEPEND: queued" in out
    assert "login   admin" in out and "/admin/" in out
    assert "no mount left behind; all stopped" in out


@pytest.mark.slow
@pytest.mark.root
@needs_root
def test_demo_runs_the_whole_story(tmp_path, capsys, demo_cache):
    work = tmp_path / "demo"
    watch = ProcessWatch().start()  # other tests' servers and daemons may be running: only new ones count
    try:
        assert main(["--workdir", str(work), "--cache", str(demo_cache), "--exit-when-done"]) == 0
        left = watch.leftovers()
    finally:
        watch.stop()
    assert left == [], [str(p) for p in left]
    out = capsys.readouterr().out
    # the SIDEPEND the master queued by itself ran on the openrc slave, its dependent on the systemd one
    assert "#3 =alice/hello-suite-1.1: running on demo-openrc" in out
    assert "#2   bob/integration-1.0 PASSED on demo-systemd" in out
    assert "bob/fail-on-purpose-1.0 FAILED on demo-openrc [pkg_setup:ok src_unpack:ok src_compile:ok " \
           "src_test:failed]" in out
    assert "#5 bob/needs-failing: waiting -> failed (SIDEPEND bob/fail-on-purpose-1.0 failed" in out
    assert "#7 bob/slow: running -> cancelled (cancelled by bob: the demo shows a cancel)" in out
    summary = out[out.index("Where things ended"):]
    for line in ("#1   alice/hello-suite        passed", "#2   bob/integration          passed",
                 "#4   bob/fail-on-purpose      failed", "#7   bob/slow                 cancelled"):
        assert line in summary
    assert "no mount left behind; all stopped" in out
    assert mounts_under(work) == []


@pytest.mark.slow
@pytest.mark.root
@needs_root
def test_ctrl_c_stops_everything_and_leaves_no_mount(tmp_path, demo_cache):
    work = tmp_path / "demo"
    watch = ProcessWatch().start()
    proc = subprocess.Popen([sys.executable, "-m", "autotua.demo.main", "--workdir", str(work), "--cache",
                             str(demo_cache)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        lines.append(line)
        if "Running until Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert "Running until Ctrl-C" in lines[-1], "".join(lines)
    assert len(descendants(proc.pid)) >= 3  # the master, the slaves
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(120) == 0
    assert "Ctrl-C: stopping the slaves, the mirror and the master" in rest
    assert "no mount left behind; all stopped" in rest
    assert mounts_under(work) == []
    try:
        left = watch.leftovers()
    finally:
        watch.stop()
    assert left == [], [str(p) for p in left]
