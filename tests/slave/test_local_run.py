"""`autotua-jobuild run`, as root, for real: the signed sample tree's jobs run on this machine in the job
container, on the tiny stage3 fetched over HTTP from a local mirror and verified, with the sample
distfiles from another; no master. Their outcomes are the ones a slave gets for them
(tests/slave/test_e2e.py's SAMPLE_OUTCOMES); a failing (and unsigned) jobuild exits 1 with its log;
a Ctrl-C in the middle of a phase tears everything down; bad inputs are refused clearly.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.slaves import SlaveSetup
from autotua.linux import mounts_under
from tests.slave.helpers import needs_root
from tests.slave.test_e2e import SAMPLE_OUTCOMES, assert_outcome
from tests.support.container import left_behind
from tests.support.leftovers import alive

pytestmark = [pytest.mark.root, needs_root]
EXIT = {"passed": 0, "failed": 1, "error": 3}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def servers(stage3, sample):
    """The stage3 mirror and the sample distfiles' mirror (what `mirror://autotua-samples/` names)."""
    with MirrorServer(stage3.mirror) as s3, MirrorServer(sample.distdir) as dist:
        yield s3, dist


@pytest.fixture(scope="module")
def slave(tmp_path_factory, servers, release_key):
    """A slave's configuration, as a volunteer's /etc/autotua/slave.toml: the local runs reuse it and
    its caches (the stage3 is fetched and unpacked once, by the first run)."""
    s3, dist = servers
    return SlaveSetup(tmp_path_factory.mktemp("slave"), "http://127.0.0.1:9/", "unused", s3.url,
                      str(release_key.key_file), mirrors={"autotua-samples": [dist.url]})


def run(slave: SlaveSetup, *args: str, timeout: float = 300, by_env: bool = False) -> subprocess.CompletedProcess:
    """``autotua-jobuild run`` with the slave's configuration (``--config``, or ``by_env``: $AUTOTUA_SLAVE_CONFIG,
    as the demo's maintainer env sets it)."""
    cmd = [sys.executable, "-m", "autotua.cli.jobuild", "--no-cache", "run", *args]
    env = {**slave.env(), "AUTOTUA_SLAVE_CONFIG": str(slave.config)} if by_env else slave.env()
    return subprocess.run(cmd + ([] if by_env else ["--config", str(slave.config)]), env=env, capture_output=True,
                          text=True, timeout=timeout)


def nothing_left(slave: SlaveSetup, out: Path | None = None) -> None:
    """No job directory, and nothing of the run's container (its cgroups are named by the run's id)."""
    jobs = slave.base / "work/local/jobs"
    runs = [p.name for p in jobs.iterdir()] if jobs.is_dir() else []
    if out is not None and (out / "results.json").exists():
        runs.append(json.loads((out / "results.json").read_text())["run"])
    assert left_behind(slave.base, [r for r in runs if r]) == {}
    assert not jobs.is_dir() or list(jobs.iterdir()) == []
    if out is not None:
        assert mounts_under(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("root", sorted(SAMPLE_OUTCOMES))
def test_the_sample_jobs_end_locally_as_on_a_slave(tmp_path, slave, sample, root):
    out = tmp_path / "out"
    r = run(slave, root, "--tree", str(sample.branch), "--out", str(out))
    state, reason, _ = SAMPLE_OUTCOMES[root]
    assert r.returncode == EXIT[state], r.stdout + r.stderr
    got = json.loads((out / "results.json").read_text())
    assert_outcome(root, got["state"], got["reason"], {res["jobuild"]: res["results"] for res in got["results"]})
    # every plan jobuild ran, in order, with its log (the bytes the slave sends: colour and phase headers)
    assert [res["jobuild"] for res in got["results"]] == [e["jobuild"] for e in got["plan"]]
    for res in got["results"]:
        log = (out / res["log"]).read_bytes()
        assert len(log) == res["log_size"] and b"\x1b[" in log
        assert ">>> Running src_test" in ANSI.sub("", log.decode())
    # the terminal saw the logs as they came, each jobuild's result line, and the outcome
    assert f">>> [1/{len(got['plan'])}] {got['plan'][0]['jobuild']}" in r.stdout
    assert f">>> {root} {state}" + (f": {reason}" if reason else "") in r.stdout
    assert "\x1b[" not in r.stdout  # not a terminal: no colour (--color always keeps it)
    assert got["unsigned"] == []  # the sample tree is signed, by the keys it holds
    if root == "bob/integration":
        assert got["sidepends_not_checked"] == ["<alice/hello-suite-2"]
        assert "SIDEPEND not checked locally" in r.stderr
        last = got["results"][-1]
        att = last["attachments"][0]
        assert att["label"] == "environment report"
        assert "JOBUILD_USER=bob" in (out / att["path"]).read_text()
    if state == "failed":
        assert "this jobuild fails on purpose" in (out / got["results"][-1]["log"]).read_text()
    assert got["inputs"]["stage3"]["name"].startswith("stage3-amd64-openrc-") and len(got["run"]) == 32
    nothing_left(slave, out)


def _bare_slave(base: Path, servers, release_key) -> SlaveSetup:
    """A slave's configuration with no mirrors and caches of its own (nothing fetched yet)."""
    return SlaveSetup(base, "http://127.0.0.1:9/", "unused", servers[0].url, str(release_key.key_file))


def test_distfiles_come_through_a_mirrors_file_verified(tmp_path, servers, release_key, sample):
    """mirror:// names from --mirrors, as `autotua-jobuild manifest` takes them; the PORTCONF tarball
    is fetched into the slave's distfiles cache, checked against the Manifest, and unpacked in the root."""
    bare = _bare_slave(tmp_path / "slave", servers, release_key)
    mirrors = tmp_path / "mirrors"
    mirrors.write_text(f"autotua-samples {servers[1].url}\n")
    out = tmp_path / "out"
    r = run(bare, "bob/portconf-check", "--tree", str(sample.branch), "--out", str(out), "--mirrors", str(mirrors))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PORTCONF settings are in place" in r.stdout
    fetched = tmp_path / "slave/cache/distfiles/bob-portconf-1.tar.gz"
    assert fetched.read_bytes() == (sample.distdir / "bob-portconf-1.tar.gz").read_bytes()
    nothing_left(bare, out)


@pytest.mark.bad_input("manifest", "autotua-jobuild run: a PORTCONF_URI file the mirror serves altered",
                       "exit 3: distfiles: digest mismatch, the download deleted, nothing built")
def test_a_distfile_that_does_not_match_its_manifest(tmp_path, servers, release_key, sample):
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    data = bytearray((sample.distdir / "bob-portconf-1.tar.gz").read_bytes())
    data[-10] ^= 0xFF
    (bad / "bob-portconf-1.tar.gz").write_bytes(bytes(data))
    bare = _bare_slave(tmp_path / "slave", servers, release_key)
    out = tmp_path / "out"
    with MirrorServer(bad) as m:
        (tmp_path / "mirrors").write_text(f"autotua-samples {m.url}\n")
        r = run(bare, "bob/portconf-check", "--tree", str(sample.branch), "--out", str(out), "--mirrors",
                str(tmp_path / "mirrors"))
    assert r.returncode == 3, r.stdout + r.stderr
    got = json.loads((out / "results.json").read_text())
    assert got["state"] == "error" and got["reason"].startswith("distfiles: bob-portconf-1.tar.gz"), got["reason"]
    assert "(the download was deleted)" in got["reason"] and got["results"] == []
    assert not list((tmp_path / "slave/cache/distfiles").glob("bob-portconf-1.tar.gz*"))
    nothing_left(bare, out)


UNSIGNED_FAILING = '''# never signed: run locally as it is
src_test() {
	echo "some output" >"${T}/notes.txt"
	attach "${T}/notes.txt" "notes"
	result answer 42
	die "it does not work yet"
}
'''


def test_an_unsigned_failing_jobuild_exits_1_with_its_log(tmp_path, slave, tree_writer):
    tree_writer.jobuild("alice/wip-1.0", UNSIGNED_FAILING, sign_as=None)
    out = tmp_path / "out"
    r = run(slave, "alice/wip", "--tree", str(tree_writer.root), "--out", str(out), "--color", "always", by_env=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.count("signature does not verify") == 1
    assert "alice/wip/wip-1.0.jobuild" in r.stderr
    got = json.loads((out / "results.json").read_text())
    assert (got["state"], got["reason"]) == ("failed", "alice/wip-1.0 failed in src_test")
    assert got["unsigned"] == ["alice/wip/wip-1.0.jobuild"]
    res = got["results"][0]
    assert res["results"] == {"answer": "42"} and res["phases"][-1]["status"] == "failed"
    assert (out / res["attachments"][0]["path"]).read_text() == "some output\n"
    log = (out / res["log"]).read_text()
    assert "it does not work yet" in log and "it does not work yet" in r.stdout
    assert "\x1b[" in r.stdout  # --color always: the log's colours on the terminal
    nothing_left(slave, out)


SLEEPER = '''# deaf to Ctrl-C, and leaving a process behind
src_test() {
	trap "" INT TERM HUP
	( trap "" INT TERM HUP; sleep 300 ) &
	einfo "going to sleep"
	sleep 120
	einfo "woke up"
}
'''


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_a_phase_tears_it_all_down(tmp_path, slave, tree_writer):
    tree_writer.jobuild("bob/sleeper-1.0", SLEEPER)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "autotua.cli.jobuild", "--no-cache", "run", "bob/sleeper", "--tree",
           str(tree_writer.root), "--out", str(out), "--config", str(slave.config)]
    proc = subprocess.Popen(cmd, env=slave.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 180
    try:
        while b"going to sleep" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([proc.stdout], [], [], 1)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, seen + proc.stderr.read()
                seen += chunk
        jobs = list((slave.base / "work/local/jobs").iterdir())
        assert len(jobs) == 1 and mounts_under(jobs[0]) == []  # its mounts are in the keeper's namespace
        keeper, init = (int(w) for w in (jobs[0] / "keeper.pid").read_text().split())
        assert alive(keeper) and alive(init)
        proc.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    got = json.loads((out / "results.json").read_text())
    assert got["state"] == "error" and got["reason"] == "interrupted (SIGINT)"
    log = next(out.glob("1-bob_sleeper-1.0.log")).read_text()
    assert "going to sleep" in log and "woke up" not in log and ">>> autotua-slave: interrupted; killed" in log
    assert b"interrupted (SIGINT)" in rest
    nothing_left(slave, out)
    assert left_behind(slave.base, [jobs[0].name]) == {}  # its cgroups too
    assert not alive(keeper) and not alive(init)  # the job's PID 1 is gone: the kernel killed the rest with it
    assert not jobs[0].exists()


def test_ctrl_c_while_the_stage3_is_fetched_stops_at_once(tmp_path, slave, sample):
    """Before the container exists a Ctrl-C interrupts whatever runs (here: a mirror that never answers)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "autotua.cli.jobuild", "--no-cache", "run", "alice/toolchain-sanity", "--tree",
           str(sample.branch), "--out", str(out), "--config", str(slave.config), "--stage3-url",
           f"http://127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, env=slave.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        listener.settimeout(120)
        conn, _ = listener.accept()  # it asks for latest-stage3-amd64-openrc.txt, and waits
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        conn.close()
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    got = json.loads((out / "results.json").read_text())
    assert (got["state"], got["reason"], got["results"]) == ("error", "interrupted (SIGINT)", [])
    assert b"Traceback" not in stderr
    nothing_left(slave, out)


# -- bad inputs ------------------------------------------------------------------------------------------
@pytest.mark.bad_input("slave", "autotua-jobuild run of an atom the tree does not have",
                       "exit 1: the resolution's error, nothing fetched or built")
def test_an_unknown_atom(tmp_path, slave, sample):
    out = tmp_path / "out"
    r = run(slave, "alice/no-such-job", "--tree", str(sample.branch), "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ERROR [missing] there is no jobuild alice/no-such-job in the tree" in r.stdout
    assert ">>> INVALID: 1 error(s)" in r.stdout
    assert not out.exists()
    nothing_left(slave)


@pytest.mark.bad_input("slave", "autotua-jobuild run --stage3 of a flavour the mirror has no stage3 for",
                       "exit 3: stage3: cannot fetch latest-stage3-<arch>-<flavour>.txt, torn down")
def test_a_flavour_with_no_stage3(tmp_path, slave, sample):
    out = tmp_path / "out"
    r = run(slave, "alice/toolchain-sanity", "--tree", str(sample.branch), "--out", str(out), "--stage3", "musl")
    assert r.returncode == 3, r.stdout + r.stderr
    got = json.loads((out / "results.json").read_text())
    assert got["state"] == "error" and got["stage3"] == "musl"
    assert "latest-stage3-amd64-musl.txt" in got["reason"] and got["reason"].startswith("stage3: ")
    assert got["reason"] in r.stdout and got["results"] == []
    assert not list((slave.base / "cache/stage3/amd64").glob("*musl*"))
    nothing_left(slave, out)


@pytest.mark.bad_input("slave", "autotua-jobuild run --stage3 {flavour!r} (not a flavour name)",
                       "exit 2: the flavours setting's error")
@pytest.mark.parametrize("flavour", ["../openrc", "Open RC"])
def test_a_flavour_that_is_no_name(tmp_path, slave, sample, flavour):
    out = tmp_path / "out"
    r = run(slave, "alice/toolchain-sanity", "--tree", str(sample.branch), "--out", str(out), "--stage3", flavour)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "flavours: must be a non-empty list of stage3 flavours" in r.stderr
    assert not out.exists()
    nothing_left(slave)


@pytest.mark.bad_input("slave", "autotua-jobuild run by a user who is not root", "exit 2: needs root")
def test_not_root(tmp_path, slave, sample):
    out = tmp_path / "out"
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
           "autotua.cli.jobuild", "--no-cache", "run", "alice/toolchain-sanity", "--tree", str(sample.branch),
           "--out", str(out)]
    r = subprocess.run(cmd, env=slave.env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "autotua-jobuild run: needs root, as the slave does" in r.stderr
    assert not out.exists() and r.stdout == ""
