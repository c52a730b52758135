"""End to end, as root: a live master (gunicorn, its API and /tree/), the signed sample tree in a real
bzr branch, the tiny stage3 in the autobuilds layout, and the real `autotua-slave` command.

The slave claims, syncs, verifies, builds the root, mounts, runs the sample jobuilds, streams logs,
sends attachments and results; a failing phase fails the job; a cancel stops a phase; a slave
killed with SIGKILL leaves nothing mounted, the master requeues the job, the next start cleans up
and runs it; a stage3 that does not match its DIGESTS is an error the master requeues.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.slaves import SlaveSetup
from autotua.demo.stage3 import copy_release
from autotua.linux import mounts_under
from autotua_master.live import LiveMaster
from tests.slave.helpers import needs_root
from tests.support.live import create, extend_tree, job, latest, log_has, log_of, printed, run_once, start, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

SLEEPY = '''# Sleeps in src_test, so that a test can cancel it or kill the slave in the middle of a phase.
DESCRIPTION="Sleep a little in src_test"

src_test() {
	einfo "going to sleep"
	sleep 6
	einfo "woke up"
	result slept 6
}
'''


#: What each sample job ends as on a slave: its state, its reason, and some of its jobuilds' `result`
#: values. The tests below check the slave against it; tests/slave/test_local_run.py checks
#: `autotua-jobuild run` against the same table.
SAMPLE_OUTCOMES = {
    "alice/toolchain-sanity": ("passed", "", {"alice/toolchain-sanity-1.0": {"machine": "x86_64"}}),
    "bob/integration": ("passed", "", {"bob/integration-1.0": {"checked.variables": "8"},
                                       "bob/portconf-check-1.0": {"portconf.features": "test"}}),
    "=alice/hello-suite-1.1": ("passed", "", {"alice/hello-suite-1.1": {"tests.passed": "5", "tests.failed": "0"}}),
    "bob/fail-on-purpose": ("failed", "bob/fail-on-purpose-1.0 failed in src_test", {}),
}


def _values(run: dict) -> dict[str, dict[str, str]]:
    """jobuild -> its result values, for the jobuilds SAMPLE_OUTCOMES names."""
    return {r["jobuild"]: r["results"] for r in run["results"]}


def assert_outcome(root: str, state: str, reason: str, values: dict[str, dict[str, str]]) -> None:
    want_state, want_reason, want_values = SAMPLE_OUTCOMES[root]
    assert (state, reason) == (want_state, want_reason), (root, state, reason)
    for jobuild, want in want_values.items():
        assert {k: values.get(jobuild, {}).get(k) for k in want} == want, (root, jobuild, values.get(jobuild))


CHATTY = '''# Prints a log of several chunks.
DESCRIPTION="Print 3.4 MB"

src_test() {
	seq 1 500000
	einfo "done"
}
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory, sample):
    """The sample branch plus bob/sleepy and bob/chatty (signed by bob), as revision 2."""
    return extend_tree(sample, tmp_path_factory.mktemp("tree") / "jobtage",
                       {"bob/sleepy/sleepy-1.0.jobuild": SLEEPY, "bob/chatty/chatty-1.0.jobuild": CHATTY},
                       "bob/sleepy and bob/chatty")


@pytest.fixture(scope="module")
def stage3_server(stage3):
    with MirrorServer(stage3.mirror) as m:
        yield m


@pytest.fixture(scope="module")
def master(tmp_path_factory, tree):
    m = LiveMaster(tmp_path_factory.mktemp("master"), tree=tree.branch, LEASE_SECONDS=10, HEARTBEAT_SECONDS=1,
                   RETRY_AFTER=1, WAIT_RETRY_AFTER=1, MAX_ATTEMPTS=5, DISTFILES_DIR=tree.distdir,
                   MIRRORS=json.dumps({"autotua-samples": ["/distfiles/"]}))
    m.migrate()
    m.people = {u: m.person_session(m.add_maintainer(u, fpr)) for u, fpr in tree.fingerprints.items()}
    try:
        yield start(m)
    finally:
        m.stop()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("slave-cache")


@pytest.fixture
def slave(tmp_path, master, stage3_server, release_key, shared_cache):
    token = master.add_slave(f"box-{tmp_path.name[-20:]}", arch="amd64", flavours=("openrc",))
    s = SlaveSetup(tmp_path / "slave", master.url, token, stage3_server.url, str(release_key.key_file),
                   cache_dir=str(shared_cache))
    yield s
    s.stop()
    assert mounts_under(tmp_path) == []


def test_sample_jobs_pass_with_logs_results_and_attachments(master, slave):
    sanity = create(master, "alice", "alice/toolchain-sanity")
    integration = create(master, "bob", "bob/integration")
    assert sanity["state"] == "queued" and integration["state"] == "waiting"  # SIDEPEND <alice/hello-suite-2
    for _ in range(4):  # toolchain-sanity, the hello-suite job the master queued itself, then integration
        if job(master, integration["id"])["state"] in ("passed", "failed", "error"):
            break
        run_once(slave)
    j = job(master, sanity["id"])
    assert_outcome("alice/toolchain-sanity", j["state"], j["reason"], _values(latest(j)))
    result = latest(j)["results"][0]
    assert result["status"] == "passed" and result["results"]["machine"]
    assert [p["name"] for p in result["phases"]] == ["pkg_setup", "src_unpack", "src_compile", "src_test"]
    assert "bash and coreutils look sane" in log_of(master, j, 0)
    j = job(master, integration["id"])
    assert_outcome("bob/integration", j["state"], j["reason"], _values(latest(j)))
    results = latest(j)["results"]
    assert [r["jobuild"] for r in results] == [e["jobuild"] for e in j["plan"]]
    assert results[-1]["results"]["checked.variables"] == "8"
    att = results[-1]["attachments"][0]
    assert att["label"] == "environment report"
    r = requests.get(f"{master.url}/api/v1/jobs/{j['id']}/runs/{latest(j)['uuid']}/jobuilds/2/attachments/"
                     f"{att['name']}", timeout=60)
    assert r.status_code == 200 and "JOBUILD_USER=bob" in r.text
    portconf = next(i for i, e in enumerate(j["plan"]) if e["jobuild"] == "bob/portconf-check-1.0")
    assert "PORTCONF settings are in place" in log_of(master, j, portconf)
    hello = [job(master, s["provider"]) for s in j["sidepends"]]
    assert hello and hello[0]["root"] == "=alice/hello-suite-1.1"
    assert_outcome(hello[0]["root"], hello[0]["state"], hello[0]["reason"], _values(latest(hello[0])))
    # nothing is left of the jobs on the slave
    assert list((slave.base / "work/jobs").iterdir()) == []


def test_a_failing_phase_fails_the_job(master, slave):
    j = create(master, "bob", "bob/fail-on-purpose")
    run_once(slave)
    j = job(master, j["id"])
    assert_outcome("bob/fail-on-purpose", j["state"], j["reason"], _values(latest(j)))
    result = latest(j)["results"][0]
    assert result["status"] == "failed"
    assert result["phases"][-1] == {**result["phases"][-1], "name": "src_test", "status": "failed"}
    assert "this jobuild fails on purpose" in log_of(master, j, 0)


def test_cancel_in_the_middle_of_a_phase(master, slave):
    j = create(master, "bob", "bob/sleepy")
    proc = slave.start("--once")
    wait_for(lambda: log_has(master, j["id"], 0, "going to sleep"), what="the phase to start")
    r = master.people["bob"].post(f"{master.url}/api/v1/jobs/{j['id']}/cancel", json={"reason": "changed my mind"},
                                  timeout=60)
    assert r.status_code == 200, r.text
    assert proc.wait(60) == 0
    j = job(master, j["id"])
    assert j["state"] == "cancelled"
    text = log_of(master, j, 0)
    assert "going to sleep" in text and "woke up" not in text
    assert "killed" in text
    assert mounts_under(slave.base) == []
    assert list((slave.base / "work/jobs").iterdir()) == []


def test_sigkill_mid_phase_then_requeue_and_the_next_start_runs_it(master, slave):
    j = create(master, "bob", "bob/sleepy")
    proc = slave.start("--once")
    wait_for(lambda: log_has(master, j["id"], 0, "going to sleep"), what="the phase to start")
    job_dir = next((slave.base / "work/jobs").iterdir())
    keeper = int((job_dir / "keeper.pid").read_text().split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not os.path.exists(f"/proc/{keeper}"), 20, "the keeper to go")
    assert mounts_under(slave.base) == []  # the kernel took the mounts with the namespace
    assert job_dir.exists()  # left for the next start to clean
    # the lease runs out; the master puts the job back; the next start cleans up and runs it
    wait_for(lambda: job(master, j["id"])["state"] == "queued" or _expired(master, j["id"]), 60, "the lease to end")
    err = run_once(slave)
    assert f"{job_dir}: removed" in err
    j = job(master, j["id"])
    assert j["state"] == "passed", j
    first = min(j["runs"], key=lambda r: r["attempt"])
    assert len(j["runs"]) == 2 and first["end"] != "finished", first
    assert latest(j)["results"][0]["results"] == {"slept": "6"}
    assert not job_dir.exists()


def _expired(master, job_id) -> bool:
    j = job(master, job_id)
    run = latest(j) if j["runs"] else None
    return bool(run and run["lease_expires"] and
                time.strptime(run["lease_expires"][:19], "%Y-%m-%dT%H:%M:%S") < time.gmtime())


def test_a_stage3_that_does_not_match_its_digests_is_an_error(tmp_path, master, release_key, stage3, slave):
    bad = copy_release(stage3, tmp_path / "bad-mirror")
    data = bytearray(bad.tarball.read_bytes())
    data[-100] ^= 0xFF
    bad.tarball.write_bytes(bytes(data))
    token = master.add_slave("box-bad-stage3")
    with MirrorServer(bad.mirror) as m:
        s = SlaveSetup(tmp_path / "bad", master.url, token, m.url, str(release_key.key_file))
        j = create(master, "alice", "alice/toolchain-sanity")
        run_once(s)
    j = job(master, j["id"])
    assert j["state"] == "queued", j  # an error: the master gives it another attempt
    run = latest(j)
    assert run["end"] == "finished"
    assert "error: stage3: DIGESTS does not match stage3-amd64-openrc-" in run["end_reason"]
    assert not list(Path(tmp_path / "bad/cache/stage3").rglob("*.tar.xz"))
    run_once(slave)  # a slave with a good mirror takes the next attempt
    assert job(master, j["id"])["state"] == "passed"


def test_a_log_of_several_chunks_arrives_whole(master, slave):
    j = create(master, "bob", "bob/chatty")
    run_once(slave)
    j = job(master, j["id"])
    assert j["state"] == "passed", j
    text = log_of(master, j, 0)
    expected = "".join(f"{i}\n" for i in range(1, 500001))
    assert printed(text).startswith(expected) and printed(text).endswith(" * done\n")
    assert latest(j)["results"][0]["log_size"] == len(text.encode()) > 3 << 20


def test_sigterm_stops_the_job_cleanly_and_the_master_requeues_it(master, slave):
    j = create(master, "bob", "bob/sleepy")
    proc = slave.start()
    wait_for(lambda: log_has(master, j["id"], 0, "going to sleep"), what="the phase to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    j = job(master, j["id"])
    assert j["state"] == "queued", j
    run = latest(j)
    assert run["end"] == "finished" and "error: the slave was stopped" in run["end_reason"]
    assert "going to sleep" in log_of(master, j, 0, run["uuid"])
    assert mounts_under(slave.base) == []
    assert list((slave.base / "work/jobs").iterdir()) == []
    run_once(slave)  # and the next start runs it
    assert job(master, j["id"])["state"] == "passed"


def test_a_slave_runs_nothing_of_a_maintainer_it_does_not_trust(tmp_path, master, slave, stage3_server,
                                                              release_key, tree):
    """trust = alice's key only. The master hands such a slave only jobs all of whose signers it
    trusts (tests/master/test_dispatch.py); so this attacks the slave's own check, as a compromised
    master would: the job's signers are forged in the master's database to say alice's key, while the
    claim's maintainers (what the slave verifies signatures against) still name bob. The job ends as
    an error naming bob and his key, before anything of it is fetched; a slave trusting everyone then
    runs it."""
    token = master.add_slave("box-trusts-alice")
    careful = SlaveSetup(tmp_path / "careful", master.url, token, stage3_server.url, str(release_key.key_file),
                         extra={"trust": [tree.fingerprints["alice"]]})
    j = create(master, "bob", "bob/fail-on-purpose")
    master.manage("shell", "-c", "from autotua_master.jobs.models import Job; "
                  f"Job.objects.filter(pk={j['id']}).update(signers=[{tree.fingerprints['alice']!r}])")
    err = run_once(careful)
    run = latest(job(master, j["id"]))
    bob = tree.fingerprints["bob"]
    assert f"error: trust: this slave does not trust bob (key {bob})" in run["end_reason"], run
    assert run["results"] == [] and run["logs"] == {}
    assert not (tmp_path / "careful/cache/stage3").exists()  # nothing was fetched for it
    assert "does not trust bob" in err
    run_once(slave)
    assert job(master, j["id"])["state"] == "failed"  # ran, and failed on purpose


def test_register_then_pending_until_approved(tmp_path, master, stage3_server, release_key):
    s = SlaveSetup(tmp_path / "new", master.url, "unused", stage3_server.url, str(release_key.key_file))
    (s.base / "slave.token").unlink()
    r = s.run("register", "--name", "volunteer-box-1")
    assert r.returncode == 0, r.stderr
    assert "state pending" in r.stdout and "must approve" in r.stdout
    token_file = s.base / "slave.token"
    assert token_file.stat().st_mode & 0o777 == 0o600 and token_file.read_text().strip()
    r = s.run("register")
    assert r.returncode == 1 and "already holds a token" in r.stderr
    status = json.loads(s.run("status", "--json").stdout)
    assert status["on_the_master"]["state"] == "pending"
    assert status["on_the_master"]["name"] == "volunteer-box-1"


def test_a_token_the_master_does_not_know(tmp_path, master, stage3_server, release_key):
    s = SlaveSetup(tmp_path / "stranger", master.url, "s_not_a_real_token", stage3_server.url,
                   str(release_key.key_file))
    r = s.run("run", "--once", timeout=120)
    assert r.returncode == 1
    assert "the master does not know this slave's token" in r.stderr
