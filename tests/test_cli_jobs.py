"""``autotua-jobuild submit|watch|results|rerun`` against a live gunicorn master, as a maintainer runs
them (real processes, the token from the config file or the environment), while the test plays the
slave over HTTP (tests.support.slaveclient): the live log reaches the terminal, the exit status is
the job's outcome."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from tests.support.live import start
from tests.support.slaveclient import SlaveClient

pytestmark = pytest.mark.slow

LOG = [b"\x1b[32;01m>>>\x1b[0m Running \x1b[36;01msrc_test\x1b[0m\n", b" \x1b[32;01m*\x1b[0m first line\n",
       b" \x1b[31;01m*\x1b[0m second line, later\n"]


@pytest.fixture(scope="module")
def master(tmp_path_factory, sample, master_cache, keys):
    from tests.support.master import LiveMaster

    work = tmp_path_factory.mktemp("cli-master")
    branch = work / "jobtage"
    shutil.copytree(sample.branch, branch, symlinks=True)
    m = LiveMaster(work / "master", branch, cache=master_cache)
    m.migrate()
    m.tokens = {u: m.add_maintainer(u, keys[u]) for u in ("alice", "bob")}
    m.slave = SlaveClient(m.url, m.add_slave("box", flavours=("openrc", "systemd")), "box")
    start(m)
    yield m
    m.stop()


@pytest.fixture
def home(tmp_path, master):
    """alice's home: the config file with the master and her token."""
    conf = tmp_path / "home" / ".config" / "autotua" / "jobuild.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"[master]\nurl = {master.url}\ntoken = {master.tokens['alice']}\n")
    conf.chmod(0o600)
    return tmp_path / "home"


def cli(home, *args, env=None, timeout=120) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUA_")}
    environ.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **(env or {})})
    return subprocess.run([sys.executable, "-m", "autotua.cli.jobuild", *args], env=environ, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def slave_runs(master, status: str, *, pause: float = 0.0, claimed_event=None) -> threading.Thread:
    """The slave: claim, send the log in pieces (pausing between them), report, finish."""
    def work():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = master.slave.claim(flavours=("openrc", "systemd"))
            if r.json().get("run"):
                break
            time.sleep(0.2)
        claimed = r.json()
        run = claimed["run"]
        if claimed_event:
            claimed_event.set()
        pos = 0
        for chunk in LOG:
            time.sleep(pause)
            assert master.slave.log(run, 0, pos, chunk).status_code == 202
            pos += len(chunk)
        phases = [{"name": "src_test", "status": status, "exit_code": 0 if status == "passed" else 1}]
        assert master.slave.result(run, 0, status, log_size=pos, phases=phases,
                                   results={"tests.passed": "5"}).status_code == 200
        for e in claimed["job"]["plan"][1:]:
            assert master.slave.result(run, e["index"], status).status_code == 200
        master.slave.finish(run, status)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


def test_submit_then_watch_follows_the_live_log_and_exits_with_the_outcome(master, home):
    r = cli(home, "submit", "alice/toolchain-sanity")
    assert r.returncode == 0, r.stderr
    job_id = int(re.search(r"job #(\d+) alice/toolchain-sanity: queued at r1 \(amd64, openrc\)", r.stdout).group(1))
    assert f"{master.url}/jobs/{job_id}/" in r.stdout
    started = threading.Event()
    slave = slave_runs(master, "failed", pause=1.0, claimed_event=started)
    watcher = subprocess.Popen([sys.executable, "-m", "autotua.cli.jobuild", "watch", str(job_id), "--poll", "0.3"],
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("AUTOTUA_")},
                                    "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = watcher.communicate(timeout=120)
    slave.join(60)
    text = out.decode()
    assert watcher.returncode == 1, text + err.decode()  # failed
    assert "\x1b" not in text  # not a terminal: no colour codes
    lines = text.splitlines()
    assert f">>> job #{job_id} alice/toolchain-sanity: running" in text
    assert ">>> attempt 1 on box" in lines and ">>> [1/1] alice/toolchain-sanity-1.0" in lines
    at = lines.index(">>> Running src_test")
    assert lines[at + 1:at + 3] == [" * first line", " * second line, later"]
    assert ">>> alice/toolchain-sanity-1.0 FAILED [src_test:failed]; tests.passed=5" in lines
    assert lines[-1].startswith(f">>> job #{job_id} failed: alice/toolchain-sanity-1.0 failed")
    assert text.count("first line") == 1  # every byte of the log once
    # results: the same, and the log and attachments saved
    r = cli(home, "results", str(job_id), "--download", str(home / "got"))
    assert r.returncode == 1 and "tests.passed = 5" in r.stdout
    assert (home / "got/1-alice_toolchain-sanity-1.0/log.txt").read_bytes() == b"".join(LOG)


def test_rerun_and_watch_with_the_token_from_the_environment_in_colour(master, tmp_path):
    nobody = tmp_path / "bob"  # no config file: the environment says it all
    nobody.mkdir()
    env = {"AUTOTUA_MASTER": master.url, "AUTOTUA_TOKEN": master.tokens["bob"]}
    slave = slave_runs(master, "passed")
    r = cli(nobody, "submit", "alice/toolchain-sanity", "--stage3", "systemd", "--watch", "--poll", "0.3",
            "--color", "always", env=env)
    slave.join(60)
    assert r.returncode == 0, r.stdout + r.stderr
    first = int(re.search(r"created job #(\d+) alice/toolchain-sanity: queued at r1 \(amd64, systemd\)",
                          r.stdout).group(1))
    assert "\x1b[32;01m>>>\x1b[0m Running \x1b[36;01msrc_test\x1b[0m" in r.stdout  # the colours kept
    assert r.stdout.rstrip().endswith(f">>> job #{first} passed")
    # rerun: a new job with the same pins, followed to its end
    slave = slave_runs(master, "passed")
    r = cli(nobody, "rerun", str(first), "--watch", "--poll", "0.3", env=env)
    slave.join(60)
    assert r.returncode == 0, r.stdout + r.stderr
    second = int(re.search(rf"job #{first} rerun as job #(\d+) alice/toolchain-sanity: queued at r1 "
                           r"\(amd64, systemd\)", r.stdout).group(1))
    assert second != first and r.stdout.rstrip().endswith(f">>> job #{second} passed")
    job = master.person_session(master.tokens["bob"]).get(f"{master.url}/api/v1/jobs/{second}/", timeout=30).json()
    assert (job["rerun_of"], job["owner"], job["stage3"]) == (first, "bob", "systemd")
    # a job that has not ended is not rerun
    r = cli(nobody, "submit", "=alice/toolchain-sanity-1.0", "--arch", "arm64", env=env)
    pending = int(re.search(r"job #(\d+)", r.stdout).group(1))
    assert "[no-slave] no registered slave serves arch arm64" in r.stdout
    r = cli(nobody, "rerun", str(pending), env=env)
    assert r.returncode == 2 and "409" in r.stderr and "only a job that ended" in r.stderr
    r = cli(nobody, "watch", str(pending), "--timeout", "1", "--poll", "0.3", env=env)
    assert r.returncode == 2 and "stopped watching (the job goes on)" in r.stdout


def test_the_cli_says_what_is_missing(master, home, tmp_path):
    empty = tmp_path / "nobody"
    empty.mkdir()
    r = cli(empty, "submit", "alice/toolchain-sanity")
    assert r.returncode == 2 and "which master?" in r.stderr
    r = cli(empty, "submit", "alice/toolchain-sanity", env={"AUTOTUA_MASTER": master.url})
    assert r.returncode == 2 and "401" in r.stderr and "no API token" in r.stderr
    r = cli(empty, "submit", "alice/toolchain-sanity", env={"AUTOTUA_MASTER": master.url, "AUTOTUA_TOKEN": "0" * 40})
    assert r.returncode == 2 and "401" in r.stderr
    (home / ".config/autotua/jobuild.conf").chmod(0o644)
    r = cli(home, "submit", "alice/no-such-thing")
    (home / ".config/autotua/jobuild.conf").chmod(0o600)
    assert "others can read it" in r.stderr
    assert r.returncode == 1 and " * ERROR [missing] there is no jobuild alice/no-such-thing in the tree" in r.stdout
