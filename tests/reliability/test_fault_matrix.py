"""The fault matrix (issue 8): the slave killed with SIGKILL at every step of its pipeline, a worker of
the master killed in the middle of every kind of request (its database work done, or half done), and
the network between them cut, stalled or losing answers.

For every cell: no mount left on the host, no process left of the job, nothing of its container left
(no cgroup, loop device, network namespace or slirp4netns), the job passed exactly once
(never lost, never run to the end twice, never held by two runs at once, attempts within the limit),
every log on the master exactly what the jobuild printed (a killed run's log a clean prefix of it:
no chunk lost or doubled), every result and attachment there once, and the slave's next start
cleaned up by itself. The outcomes go into docs/reliability.md (tests/support/reliability.py).

Real parts only: gunicorn on PostgreSQL, the real ``autotua-slave`` as root with real chroots, the
signed sample tree plus bob/faulty (below), the tiny stage3 on a local mirror, and a TCP proxy
(tests/support/proxy.py) for the network. The kills come from the fault hook
(:mod:`autotua.faults`): the process SIGKILLs itself at the named step, once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.sampletree import SampleTree
from autotua.demo.slaves import SlaveSetup
from autotua.linux import mounts_under
from autotua.slave.container.keeper import steps
from autotua_master.live import LiveMaster
from tests.slave.helpers import needs_root
from tests.support.container import cgroups_named, loops_under, netns_alive
from tests.support.leftovers import alive, doomed, in_session, touching
from tests.support.live import wait_for
from tests.support.proxy import FaultyProxy
from tests.support.reliability import Cell
from tests.support.slaveclient import SlaveClient

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

FAULTY = r'''# For the fault matrix: numbered lines in every phase, a log of several chunks in src_test, a
# result and an attachment, so that what the master holds can be compared with what it printed.
DESCRIPTION="Print numbered lines in every phase"
DEPEND="=alice/hello-suite-1.1"
PAUSE=@PAUSE@

faulty_lines() {
	local i
	for ((i = 1; i <= $2; i++)); do
		printf '%s %05d\n' "$1" "${i}"
		if [[ ${PAUSE} != 0 ]] && ((i % 100 == 0)); then sleep "${PAUSE}"; fi
	done
}

pkg_setup() { faulty_lines pkg_setup 20; }
src_unpack() { faulty_lines src_unpack 20; }
src_compile() { faulty_lines src_compile 20; }

src_test() {
	faulty_lines src_test 2000
	printf 'all %d lines printed\n' 2060 >"${T}/faulty-report.txt"
	attach "${T}/faulty-report.txt" "faulty report"
	result lines 2060
}
'''
PHASE_LINES = [(p, n) for p, count in (("pkg_setup", 20), ("src_unpack", 20), ("src_compile", 20), ("src_test", 2000))
               for n in range(1, count + 1)]
STEP_NAMES = [s.name for s in steps()]
FAST, PACED = "=bob/faulty-1.0", "=bob/faulty-2.0"  # 2.0 sleeps 0.2 s every 100 lines of src_test (4 s)
# 3.0 is 1.0 with a SIDEPEND on bob/sidekick-1.0, an x86 jobuild: the master runs it on an x86 slave the
# cell holds (tests.support.slaveclient), so that bob/faulty-3.0's job is pipelined and waits for it
WAITING = "=bob/faulty-3.0"
SIDEKICK = '''# For the fault matrix: a SIDEPEND that runs on another (x86) slave, held by the test.
DESCRIPTION="Be a SIDEPEND that runs elsewhere"
ARCH="x86"
'''
# Every cell's point is reached whatever the timing: a step of the pipeline, a call the slave always
# makes, or (heartbeats, network faults) a job that runs for seconds.
LEASE = 10
TIMEOUT = 180  # for a job to end, whatever the cell: a bound, never reached when all is well


@dataclass(frozen=True)
class Spec:
    id: str
    fault: str
    slave: str = ""    # a point armed in the slave: it dies there and is started again
    master: str = ""   # a point armed in the master: the gunicorn worker dies there, gunicorn starts another
    network: str = ""  # partition, lease, stall, lossy (the proxy between them)
    root: str = FAST
    cold: bool = False  # a cache of its own, empty (else the one the reference run filled)
    holder: bool = False  # the job's SIDEPEND is held running on another slave until the cell lets it pass
    restart: bool = False  # the master is restarted while the slave long-polls; the job is made after
    stop: bool = False  # the slave is SIGTERMed in bob/faulty's phases (its finish says error), then started again

    @property
    def group(self) -> str:
        return ("master" if self.master or self.restart or self.stop else "slave" if self.slave else
                "network" if self.network else "-")


CELLS = [
    Spec("none", "nothing (the reference run)"),
    # -- the slave, SIGKILLed at each step of its pipeline
    Spec("slave:claim", "slave SIGKILLed as the claim's answer arrives", slave="claim:answered"),
    Spec("slave:sync", "slave SIGKILLed pulling the tree (the branch write-locked)", slave="sync:pull"),
    Spec("slave:stage3-fetch", "slave SIGKILLed downloading the stage3", slave="fetch:stage3-*.tar.*",
         cold=True),
    Spec("slave:stage3-unpack", "slave SIGKILLed while tar unpacks the stage3", slave="stage3:unpack", cold=True),
    Spec("slave:distfiles", "slave SIGKILLed downloading a SRC_URI file", slave="fetch:hello-suite-1.1.tar.gz",
         cold=True),
    # the job container: the slave dies while the keeper makes each step (it finishes the step, sees
    # the slave gone, and undoes everything)
    *(Spec(f"slave:container-{name}", f"slave SIGKILLed while the keeper makes the container's {name} step",
           slave=f"container:{name}") for name in STEP_NAMES),
    Spec("slave:container-ready", "slave SIGKILLed with the container up, before the first jobuild",
         slave="container:ready"),
    Spec("slave:pkg_setup", "slave SIGKILLed in pkg_setup", slave="phase:bob/faulty-1.0:pkg_setup"),
    Spec("slave:src_unpack", "slave SIGKILLed in src_unpack", slave="phase:bob/faulty-1.0:src_unpack"),
    Spec("slave:src_compile", "slave SIGKILLed in src_compile", slave="phase:bob/faulty-1.0:src_compile"),
    Spec("slave:src_test", "slave SIGKILLed in src_test", slave="phase:bob/faulty-1.0:src_test"),
    Spec("slave:log", "slave SIGKILLed streaming a log (3rd chunk taken)", slave="log:2.log 3"),
    Spec("slave:attachment", "slave SIGKILLed after an attachment, before its result",
         slave="attach:alice/hello-suite-1.1"),
    Spec("slave:result", "slave SIGKILLed after a result, mid-plan", slave="result:alice/hello-suite-1.1"),
    Spec("slave:last-result", "slave SIGKILLed after the last result", slave="result:bob/faulty-1.0"),
    *(Spec(f"slave:teardown-{name}", f"slave SIGKILLed while the keeper undoes the {name} step",
           slave=f"teardown:{name}") for name in reversed(STEP_NAMES)),
    Spec("slave:finish", "slave SIGKILLed torn down, before its finish (or before it knows the results "
                          "finished the run)", slave="finish"),
    Spec("slave:waiting", "slave SIGKILLed while it waits (container up) for a SIDEPEND running elsewhere",
         slave="wait:alice/hello-suite-1.1", root=WAITING, holder=True),
    # -- the master: a worker SIGKILLed with the request's database work half done or done, unanswered
    # a claim of a slave that holds no run is one statement, committed on its own: no half-done state.
    # One that holds a run (it restarted) ends it and takes a job in one transaction: the cell kills the
    # slave in pkg_setup, then the worker in its next start's claim, the old run ended and a job taken
    Spec("master:claim-half", "slave SIGKILLed in pkg_setup; the worker SIGKILLed in its next start's claim, "
         "its old run ended and a job taken, not committed", slave="phase:bob/faulty-1.0:pkg_setup",
         master="master:claim:locked"),
    Spec("master:claim", "worker SIGKILLed after a claim committed, before answering",
         master="master:claim:committed"),
    Spec("master:heartbeat", "worker SIGKILLed after a heartbeat committed", master="master:heartbeat:committed",
         root=PACED),  # a job that lasts long enough for heartbeats, whatever the machine's speed
    Spec("master:log-half", "worker SIGKILLed in a log append, bytes written, size not recorded",
         master="master:log:written 3"),
    Spec("master:log", "worker SIGKILLed after a log append committed", master="master:log:committed 5"),
    Spec("master:attachment", "worker SIGKILLed after an attachment was stored", master="master:attach:committed"),
    Spec("master:result-half", "worker SIGKILLed in a result, rows written, not committed",
         master="master:result:locked 2"),
    Spec("master:result", "worker SIGKILLed after the last result committed", master="master:result:committed 3"),
    # a finish comes only when the results did not decide the job (issue 14): here a stopped slave's error
    Spec("master:finish-half", "worker SIGKILLed in a stopped slave's finish, job requeued, not committed",
         master="master:finish:locked", root=PACED, stop=True),
    Spec("master:finish", "worker SIGKILLed after a stopped slave's finish committed",
         master="master:finish:committed", root=PACED, stop=True),
    Spec("master:restart-long-poll", "the master restarted (a graceful stop) while the slave long-polls for a job",
         restart=True),
    # -- the network between them (a proxy)
    Spec("net:partition", "every connection reset for 4 s, mid-log", network="partition", root=PACED),
    Spec("net:partition-past-lease", "connections reset until the lease ran out and was swept", network="lease",
         root=PACED),
    Spec("net:stall", "nothing moves for 4 s (connections held open), mid-log", network="stall", root=PACED),
    Spec("net:lossy", "the first answer to every call lost (claim, heartbeat, each log, attachment, result, "
         "finish), the connection reset", network="lossy"),
]
CHECKS = ("no mount left", "no process left", "no container left", "passed once", "logs exact", "results once",
          "next start cleaned")


# -- the system ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree(tmp_path_factory, sample):
    """The sample branch plus bob/faulty-1.0 and -2.0 (signed by bob), as revision 2."""
    work = tmp_path_factory.mktemp("fault-tree")
    shutil.copytree(sample.branch, work / "jobtage", symlinks=True)
    t = SampleTree(work / "jobtage", sample.gnupghome, sample.distdir, dict(sample.fingerprints))
    (work / "jobtage/bob/faulty").mkdir()
    for version, pause in (("1.0", "0"), ("2.0", "0.2"), ("3.0", "0")):
        path = work / f"jobtage/bob/faulty/faulty-{version}.jobuild"
        text = FAULTY.replace("@PAUSE@", pause)
        if version == "3.0":
            text = text.replace('PAUSE=0\n', 'PAUSE=0\nSIDEPEND="=bob/sidekick-1.0"\n')
        path.write_text(text)
        t.sign(path, user="bob")
    (work / "jobtage/bob/sidekick").mkdir()
    (work / "jobtage/bob/sidekick/sidekick-1.0.jobuild").write_text(SIDEKICK)
    t.sign(work / "jobtage/bob/sidekick/sidekick-1.0.jobuild", user="bob")
    t.commit("bob/faulty")
    return t


@pytest.fixture(scope="module")
def master(tmp_path_factory, tree, postgres):
    data = tmp_path_factory.mktemp("fault-master")
    armed = data / "master.faults"
    armed.write_text("")
    m = LiveMaster(data / "master", tree=tree.branch, database_url=postgres.createdb("fault_matrix"), workers=2,
                   threads=4, LEASE_SECONDS=LEASE, HEARTBEAT_SECONDS=1, RETRY_AFTER=1, WAIT_RETRY_AFTER=1,
                   LONGPOLL_SECONDS=5,
                   MAX_ATTEMPTS=5, SWEEP_SECONDS=1, LOG_CHUNK_BYTES=4096, DISTFILES_DIR=tree.distdir,
                   MIRRORS=json.dumps({"autotua-samples": ["/distfiles/"]}), FAULTS=armed)
    m.migrate()
    m.armed = armed
    m.people = {u: m.person_session(m.add_maintainer(u, fpr)) for u, fpr in tree.fingerprints.items()}
    try:
        m.start(timeout=180)
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def stage3_server(stage3):
    with MirrorServer(stage3.mirror) as m:
        yield m


@pytest.fixture(scope="module")
def matrix(reliability):
    reliability.expected = [c.id for c in CELLS]
    return reliability


@pytest.fixture(autouse=True)
def _disarm(master):
    """Nothing armed in the master outlives its cell, and no job of a failed cell is left queued."""
    yield
    master.armed.write_text("")
    Path(f"{master.armed}.fired").unlink(missing_ok=True)
    for state in ("queued", "running", "waiting"):
        for j in api(master, f"/api/v1/jobs/?state={state}&limit=1000")["results"]:
            master.people["bob"].post(f"{master.url}/api/v1/jobs/{j['id']}/cancel", json={"reason": "cell over"},
                                      timeout=60)


def api(master, path: str) -> dict:
    """GET from the master; a master cell kills the worker that may be serving it: ask again."""
    for attempt in range(10):
        try:
            r = requests.get(master.url + path, timeout=60)
            break
        except requests.ConnectionError:
            if attempt == 9:
                raise
            time.sleep(0.5)
    assert r.status_code == 200, r.text
    return r.json()


def fired(path: Path) -> list[tuple[str, float]]:
    """The points that fired: (name, epoch)."""
    f = Path(f"{path}.fired")
    if not f.exists():
        return []
    return [(w[0], float(w[1])) for w in (line.split() for line in f.read_text().splitlines()) if len(w) >= 2]


# -- one cell ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One cell, from the job's creation to the slave's stop, and what it left."""

    spec: Spec
    master: LiveMaster
    base: Path
    cache: Path
    slave: SlaveSetup
    job_id: int = 0
    t_fault: float | None = None
    t_done: float | None = None
    after_kill: dict = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # the slave's logs, per start
    problems: dict[str, list[str]] = field(default_factory=dict)
    proxy_stats: dict = field(default_factory=dict)
    left: str = ""
    mirror_requests: list = field(default_factory=list)  # (method, path, Range) the stage3 mirror served
    holder: Holder | None = None

    def touching(self) -> dict[int, str]:
        return {**touching(self.base), **touching(self.cache)}

    def mounts(self) -> list[str]:
        return mounts_under(self.base) + mounts_under(self.cache)

    def container(self) -> list[str]:
        """What is left of the job containers this cell's slave made: their cgroups (named by the
        runs' job directories), loop devices backed by files below the cell, and the network
        namespaces and slirp4netns processes container.json names."""
        runs = [d.name for d in self.job_dirs]
        left = [*cgroups_named([f"autotua-{r}" for r in runs]), *loops_under(self.base)]
        left += [f"netns {n}: pids {netns_alive(n)}" for n in self.netns if netns_alive(n)]
        left += [f"slirp4netns {p}" for p in self.after_kill.get("slirp", []) if _is_slirp(p)]
        return left

    @property
    def job_dirs(self) -> list[Path]:
        jobs = self.base / "slave/work/jobs"
        seen = self.after_kill.get("job_dirs", [])
        return sorted({*seen, *(jobs.iterdir() if jobs.is_dir() else ())})

    @property
    def netns(self) -> list[int]:
        return self.after_kill.get("netns", [])

    def problem(self, check: str, what: str) -> None:
        self.problems.setdefault(check, []).append(what)

    def job(self) -> dict:
        return api(self.master, f"/api/v1/jobs/{self.job_id}/")

    def final(self) -> dict | None:
        j = self.job()
        return j if j["state"] in ("passed", "failed", "error", "cancelled") else None


class Holder:
    """The x86 slave a cell's SIDEPEND (bob/sidekick-1.0) runs on, over plain HTTP: it claims the job
    the master queued for it, keeps its lease with heartbeats, and passes it when the cell says."""

    def __init__(self, master: LiveMaster, name: str, provider: int):
        self.client = SlaveClient(master.url, master.add_slave(name, arch="x86", flavours=("openrc",)))
        self.claimed = self.client.claim(arch="x86").json()
        assert self.claimed.get("job", {}).get("id") == provider, self.claimed
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)
        self.thread.start()

    def beat(self) -> None:
        while not self.halt.wait(1):
            self.client.heartbeat(self.claimed["run"])

    def pass_it(self) -> None:
        self.halt.set()
        self.thread.join(10)
        self.client.run_through(self.claimed)


def make_job(run: Run) -> None:
    r = run.master.people["bob"].post(run.master.url + "/api/v1/jobs/", json={"root": run.spec.root}, timeout=120)
    assert r.status_code == 201, r.text
    run.job_id = r.json()["id"]
    if run.spec.holder:  # its SIDEPEND's job is held running: the job is pipelined
        assert r.json()["state"] == "waiting", r.json()
        run.holder = Holder(run.master, f"f-holder-{run.job_id}", r.json()["sidepends"][0]["provider"])
        assert run.job()["state"] == "queued", run.job()
    else:
        assert r.json()["state"] == "queued", r.json()


def start_cell(spec: Spec, master: LiveMaster, base: Path, cache: Path, stage3_server, release_key, url: str) -> Run:
    armed = base / "slave.faults"
    base.mkdir(parents=True)
    armed.write_text(f"{spec.slave}\n" if spec.slave else "")
    token = master.add_slave("f-" + re.sub(r"[^a-z0-9-]", "-", spec.id), arch="amd64", flavours=("openrc",))
    slave = SlaveSetup(base / "slave", url, token, stage3_server.url, str(release_key.key_file),
                       cache_dir=str(cache), environ={"AUTOTUA_FAULTS": str(armed)}, extra={"retry_for": 60})
    run = Run(spec, master, base, cache, slave)
    if not spec.restart:  # that cell makes its job once the master is back
        make_job(run)
    return run


def _is_slirp(pid: int) -> bool:
    if not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"slirp4netns" in f.read().split(b"\0")[0]
    except OSError:
        return False


def inspect_after_kill(run: Run, pid: int) -> None:
    """Right after the slave died: what it left running and mounted (before anything cleans up)."""
    orphans = in_session(pid)
    if [o for o in orphans if not doomed(o)]:
        run.problem("no process left", f"the dead slave's session still has {[o for o in orphans if not doomed(o)]}")
    jobs = run.slave.base / "work/jobs"
    dirs = sorted(jobs.iterdir()) if jobs.is_dir() else []
    keepers = []
    for d in dirs:
        with contextlib.suppress(OSError, ValueError):
            keepers += [int(w) for w in (d / "keeper.pid").read_text().split()]
    netns, slirp = [], []
    for d in dirs:
        with contextlib.suppress(OSError, ValueError):
            made = json.loads((d / "container.json").read_text())
            netns += [made["netns"]] if made.get("netns") else []
            if made.get("netns") == os.stat("/proc/self/ns/net").st_ino:
                run.problem("no container left", f"{d.name}: container.json names the host's network namespace")
            slirp += [made["slirp4netns"]] if made.get("slirp4netns") else []
    run.after_kill = {"job_dirs": dirs, "netns": netns, "slirp": slirp}
    t = time.monotonic()
    while time.monotonic() - t < 10 and ([k for k in keepers + orphans if alive(k)] or run.touching()
                                         or run.container()):
        time.sleep(0.05)
    gone_after = time.monotonic() - t
    if [k for k in keepers if alive(k)]:
        run.problem("no process left", f"keeper {[k for k in keepers if alive(k)]} alive 10 s after the slave died")
    if [o for o in orphans if alive(o)]:
        run.problem("no process left", f"{[o for o in orphans if alive(o)]} alive 10 s after the slave died")
    if run.touching():
        run.problem("no process left", f"processes in the slave's directories: {run.touching()}")
    if run.mounts():
        run.problem("no mount left", f"after the kill: {run.mounts()}")
    if run.container():
        run.problem("no container left", f"10 s after the kill: {run.container()}")
    cache = run.cache
    tmp = run.slave.base / "work/tmp"
    run.after_kill = {"job_dirs": dirs, "netns": netns, "slirp": slirp, "keepers": keepers,
                      "tmp_roots": sorted(cache.glob("roots/*.tmp")),
                      "temp": sorted(tmp.iterdir()) if tmp.is_dir() else [],
                      "parts": sorted(cache.rglob("*.part")), "locks": sorted(cache.glob("tree/.bzr/**/lock/held"))}
    left = []
    if dirs:
        left.append("the job's directory")
    if keepers:
        left.append(f"a keeper, which exited by itself ({gone_after:.1f} s)")
    if run.after_kill["tmp_roots"]:
        left.append("a half-unpacked root")
    if run.after_kill["parts"]:
        left.append("a partial download")
    if run.after_kill["locks"]:
        left.append("the branch's write lock")
    if run.after_kill["temp"]:
        left.append("a temporary keyring")
    run.left = ", ".join(left) or "nothing"
    if dirs or run.after_kill["tmp_roots"] or run.after_kill["temp"]:
        run.left += "; removed by the next start"
    if run.after_kill["parts"]:
        run.left += "; the download resumed"
    if run.after_kill["locks"]:
        run.left += "; breezy broke the dead process's lock"


def assert_still_running(run: Run) -> None:
    """The fault began while the job ran (else the cell would test nothing)."""
    j = run.job()
    assert j["state"] == "running" and not has_result(j, 2), "bob/faulty ended before the network fault"


def has_result(j: dict, index: int) -> bool:
    """Whether a job (or one run) holds jobuild ``index``'s result."""
    return any(x["index"] == index for r in j.get("runs", [j]) for x in r["results"])


def restart_during_long_poll(run: Run, base: Path) -> None:
    """The slave long-polls with nothing queued; the master stops (SIGTERM: the long-poll is answered at
    once, so the stop waits for nothing) and starts again; the job is made only then."""
    log = base / "slave-1.log"
    wait_for(lambda: log.exists() and " serving amd64 " in log.read_text(errors="replace"), 60, "the slave to start")
    time.sleep(2)  # its claim is held: nothing is queued
    run.t_fault = time.time()
    t0 = time.monotonic()
    run.master.stop()
    stopped = time.monotonic() - t0
    assert stopped < 4.5, f"the master took {stopped:.1f} s to stop: the long-poll held it"
    run.master.start(timeout=180)
    make_job(run)
    run.left = f"nothing (the long-poll was answered at once: the master stopped in {stopped:.1f} s)"


def network_fault(run: Run, proxy: FaultyProxy) -> None:
    """Once bob/faulty streams its log: cut, stall or hold the network as the cell says."""
    def faulty_started():
        j = run.job()
        live = [r for r in j["runs"] if not r["ended"]]
        return live and live[0]["logs"].get("2", 0) > 0 and live[0]
    held = wait_for(faulty_started, 120, "bob/faulty to start")
    run.t_fault = time.time()
    if run.spec.network == "partition":
        proxy.refuse()
        assert_still_running(run)
        time.sleep(4)
        proxy.forward()
    elif run.spec.network == "stall":
        proxy.stall()
        assert_still_running(run)
        time.sleep(4)
        proxy.forward()
    elif run.spec.network == "lease":
        proxy.refuse()
        assert_still_running(run)
        time.sleep(LEASE + 1)
        out = run.master.manage("sweepleases")
        assert "1 expired run(s) swept" in out, out
        j = run.job()
        swept = next(r for r in j["runs"] if r["uuid"] == held["uuid"])
        assert swept["end"] == "expired" and j["state"] == "queued", j
        proxy.forward()
    else:
        raise AssertionError(run.spec.network)


def run_cell(spec: Spec, master, tmp_path, cache: Path | None, stage3_server, release_key) -> tuple[Run, Cell, dict]:
    t0 = time.monotonic()
    mirror_seen = len(stage3_server.httpd.requests)
    with FaultyProxy("127.0.0.1", master.port) as proxy:
        url = proxy.url if spec.network else master.url
        run = start_cell(spec, master, tmp_path / "cell", cache or tmp_path / "cache", stage3_server, release_key,
                         url)
        if spec.master and not spec.slave:  # else armed once the slave died (below)
            master.armed.write_text(spec.master + "\n")
        if spec.network == "lossy":
            proxy.lose_first("/api/v1/")
            run.t_fault = time.time()
        proc = run.slave.start(log=run.base / "slave-1.log")
        try:
            if spec.slave:
                rc = proc.wait(TIMEOUT)
                run.logs["first"] = (run.base / "slave-1.log").read_text(errors="replace")
                assert rc == -signal.SIGKILL, f"the slave exited with {rc}, not killed:\n{run.logs['first'][-3000:]}"
                assert [n for n, _ in fired(run.base / "slave.faults")], "the fault did not fire"
                run.t_fault = fired(run.base / "slave.faults")[-1][1]
                inspect_after_kill(run, proc.pid)
                # the cell killed what it says it killed
                if spec.slave.startswith("fetch:"):
                    assert run.after_kill["parts"], "no partial download after a kill mid-download"
                if spec.slave.startswith("fetch:stage3"):  # the release key's keyring is open meanwhile
                    assert run.after_kill["temp"], "no temporary keyring after a kill mid-verification"
                if spec.slave == "stage3:unpack":
                    assert run.after_kill["tmp_roots"], "no half-unpacked root after a kill mid-unpack"
                if spec.slave.startswith(("container:", "phase:", "teardown:", "wait:")):
                    assert run.after_kill["keepers"], "no keeper after a kill with the container up"
                if spec.master:  # the worker dies in the next start's claim
                    master.armed.write_text(spec.master + "\n")
                proc = run.slave.start(log=run.base / "slave-2.log")
                # its cleanup comes before it serves: waited for, since the job may be over already (its
                # last result decided it before the kill) and stopping it sooner would check nothing
                wait_for(lambda: ": serving " in (run.base / "slave-2.log").read_text(errors="replace"), TIMEOUT,
                         "the next start to clean up and serve")
                if spec.holder:  # the next start waits again; then its SIDEPEND passes
                    wait_for(lambda: any(not r["ended"] and has_result(r, 1) for r in run.job()["runs"]),
                             TIMEOUT, "the next run to wait for its SIDEPEND")
                    run.holder.pass_it()
            elif spec.stop:  # SIGTERM in bob/faulty's phases: the slave stops the job, finishes error, exits
                wait_for(lambda: any(not r["ended"] and has_result(r, 1) for r in run.job()["runs"]), TIMEOUT,
                         "bob/faulty to run")
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(TIMEOUT)
                run.logs["first"] = (run.base / "slave-1.log").read_text(errors="replace")
                assert rc == 0, f"the stopped slave exited with {rc}:\n{run.logs['first'][-3000:]}"
                proc = run.slave.start(log=run.base / "slave-2.log")
            elif spec.restart:
                restart_during_long_poll(run, run.base)
            elif spec.network and spec.network != "lossy":
                network_fault(run, proxy)
            j = wait_for(run.final, TIMEOUT, f"job {run.job_id} to end", 0.2)
            run.t_done = time.time()
        finally:
            code = run.slave.stop()
            proxy.forward()
        last_log = run.base / ("slave-2.log" if spec.slave or spec.stop else "slave-1.log")
        run.logs["last"] = last_log.read_text(errors="replace")
        if code != 0:
            run.problem("no process left", f"the slave's stop gave {code}")
        if spec.restart:
            retried = run.logs["last"].count("retrying in")
            run.left += f"; the slave asked again {retried} time(s) until it was back" if retried else ""
        if spec.master:
            names = [n for n, _ in fired(master.armed)]
            assert spec.master.split()[0] in names, f"{spec.master} did not fire in the master (fired: {names})"
            run.t_fault = [t for n, t in fired(master.armed) if n == spec.master.split()[0]][-1]
            if spec.slave:  # the claim that died was the one that ended the killed slave's run
                assert sorted(r["end"] for r in j["runs"]) == ["finished", "superseded"], j["runs"]
            retried = run.logs["last"].count("retrying in")
            run.left = (f"{run.left}; then " if spec.slave else "") + "a dead worker (gunicorn started another)" + (
                f"; the slave repeated {retried} call(s)" if retried else "")
        if spec.network:
            run.proxy_stats = {**proxy.stats, "lost": list(proxy.lost)}
            retried = run.logs["last"].count("retrying in")
            run.left = (f"{proxy.stats['reset']} connection(s) reset, {proxy.stats['answers_lost']} answer(s) lost; "
                        f"the slave repeated {retried} call(s)")
        if spec.network == "lossy":
            kinds = {re.sub(r"[0-9a-f-]{36}", "<run>", r).split(" ")[1] for r in proxy.lost}
            # (no finish: the last result's answer finished the run, and a lost one was asked again)
            for call in ("/api/v1/claim", "/api/v1/runs/<run>/heartbeat",
                         *(f"/api/v1/runs/<run>/jobuilds/{i}/log" for i in range(3)),
                         *(f"/api/v1/runs/<run>/jobuilds/{i}/result" for i in range(3))):
                assert any(k.startswith(call) for k in kinds), f"no answer to {call} was lost: {sorted(kinds)}"
            assert any("/attachments/" in k for k in kinds), sorted(kinds)
        orphans = in_session(proc.pid)
        if orphans:
            run.problem("no process left", f"the slave's session after its stop: {orphans}")
    run.mirror_requests = stage3_server.httpd.requests[mirror_seen:]
    cell = Cell(spec.id, spec.group, spec.fault)
    cell.seconds = time.monotonic() - t0
    return run, cell, j


# -- the checks ----------------------------------------------------------------------------------------
def log_of(master, job_id: int, run: str, index: int) -> bytes:
    r = requests.get(f"{master.url}/api/v1/jobs/{job_id}/runs/{run}/jobuilds/{index}/log", timeout=60)
    if r.status_code == 404:
        return b""
    assert r.status_code == 200, r.text
    return r.content


def faulty_lines(text: bytes) -> list[tuple[str, int]]:
    out = []
    for line in text.decode(errors="replace").splitlines():
        m = re.fullmatch(r"(pkg_setup|src_unpack|src_compile|src_test) (\d{5})", line)
        if m:
            out.append((m[1], int(m[2])))
    return out


def when(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp)


def slave_notes_off(text: bytes) -> bytes:
    """A stopped run's log up to the slave's first note (``>>> autotua-slave: ...``), its last line
    left out (the one the stop cut, or what the killed phase said as it died): what the jobuild had
    printed for certain."""
    head = text.split(b"\n>>> autotua-slave:", 1)[0]
    return head[:head.rstrip(b"\n").rfind(b"\n") + 1]


def results_of(run_json: dict) -> list[tuple]:
    """What a run reported, as comparable between runs (attachments are named <n>-<BASHPID>-<file>)."""
    return [(r["index"], r["status"], r["results"],
             sorted((re.sub(r"\A\d+-\d+-", "", a["name"]), a["size"], a["sha256"]) for a in r["attachments"]),
             r["log_size"])
            for r in sorted(run_json["results"], key=lambda r: r["index"])]


def check(run: Run, j: dict, reference: dict | None) -> dict[str, bool]:
    master, base = run.master, run.base
    plan = j["plan"]
    # mounts: none on the host below the cell's directories, ever (after the kill, and now)
    if run.mounts():
        run.problem("no mount left", f"at the end: {run.mounts()}")
    # processes: none of the job's, none in the slave's directories
    if run.touching():
        run.problem("no process left", f"at the end: {run.touching()}")
    # the containers: no cgroup, loop device, network namespace or slirp4netns of any run
    if run.container():
        run.problem("no container left", f"at the end: {run.container()}")
    # the job: passed, exactly one run carried it to the end, runs never overlapped, attempts bounded
    runs = sorted(j["runs"], key=lambda r: when(r["claimed"]))
    if j["state"] != "passed":
        run.problem("passed once", f"the job ended {j['state']}: {j['reason']}")
    complete = [r for r in runs if sorted((x["index"], x["status"]) for x in r["results"])
                == [(e["index"], "passed") for e in plan]]
    if len(complete) != 1:
        run.problem("passed once", f"{len(complete)} runs ran the whole plan")
    if j["attempts"] != len(runs) or len(runs) > j["max_attempts"]:
        run.problem("passed once", f"{j['attempts']} attempts, {len(runs)} runs, at most {j['max_attempts']}")
    for a, b in itertools.pairwise(runs):
        if not a["ended"] or when(a["ended"]) > when(b["claimed"]):
            run.problem("passed once", f"run {a['uuid']} was live when {b['uuid']} was claimed")
    if any(not r["ended"] for r in runs):
        run.problem("passed once", "a run is still live")
    # logs: the run that completed holds exactly what the jobuilds printed; the others a clean prefix
    final = complete[-1] if complete else runs[-1]
    logs = {(r["uuid"], e["index"]): log_of(master, j["id"], r["uuid"], e["index"]) for r in runs for e in plan}
    expected_faulty = PHASE_LINES
    for (uuid, index), text in logs.items():
        whole = uuid == final["uuid"]
        if reference is not None:
            ref = reference["logs"][index]
            if whole and text != ref:
                run.problem("logs exact", f"run {uuid[:8]} jobuild {index}: {len(text)} bytes, not the "
                                          f"{len(ref)} printed")
            elif not whole and not ref.startswith(slave_notes_off(text) if run.spec.stop else text):
                run.problem("logs exact", f"run {uuid[:8]} jobuild {index}: not a prefix of what was printed "
                                          f"(it ends {text[-300:]!r})")
        if index == len(plan) - 1:
            lines = faulty_lines(text)
            if lines != (expected_faulty if whole else expected_faulty[:len(lines)]):
                run.problem("logs exact", f"run {uuid[:8]}: bob/faulty's lines lost, doubled or out of order")
        sizes = {r["uuid"]: r["logs"] for r in runs}[uuid]
        if sizes.get(str(index), 0) != len(text):
            run.problem("logs exact", f"run {uuid[:8]} jobuild {index}: the master says {sizes.get(str(index))} "
                                      f"bytes and serves {len(text)}")
    for r in final["results"]:
        if r["log_size"] != len(logs[(final["uuid"], r["index"])]):
            run.problem("logs exact", f"jobuild {r['index']}: log_size {r['log_size']} is not the log's length")
    # results and attachments: every jobuild's once, as the reference run has them, downloadable
    got = results_of(final)
    if reference is not None and got != reference["results"]:
        run.problem("results once", f"results differ from the reference run: {got} != {reference['results']}")
    if [(r["index"], r["jobuild"]) for r in final["results"]] != [(e["index"], e["jobuild"]) for e in plan]:
        run.problem("results once", f"results for jobuilds {[r['jobuild'] for r in final['results']]}")
    if got and got[-1][2] != {"lines": "2060"}:
        run.problem("results once", f"bob/faulty's results: {got[-1][2]}")
    for r in final["results"]:
        for a in r["attachments"]:
            data = requests.get(f"{master.url}/api/v1/jobs/{j['id']}/runs/{final['uuid']}/jobuilds/{r['index']}/"
                                f"attachments/{a['name']}", timeout=60)
            if data.status_code != 200 or hashlib.sha256(data.content).hexdigest() != a["sha256"]:
                run.problem("results once", f"attachment {a['name']} is not what was sent")
    if sum(len(r["attachments"]) for r in final["results"]) != 2:
        run.problem("results once", "not exactly the two attachments (hello-suite's report, bob/faulty's)")
    # the next start cleaned up: nothing of the jobs, no half unpacked root, no partial download, no stale lock
    cache = run.cache
    for d in (base / "slave/work/jobs", base / "slave/work/tmp"):
        if not d.is_dir() or list(d.iterdir()):  # the slave keeps its temporary files here, and cleans them
            run.problem("next start cleaned", f"left in {d}: {sorted(p.name for p in d.iterdir())}"
                        if d.is_dir() else f"no {d}: the slave's temporary files went elsewhere")
    leftovers = [*cache.glob("roots/*.tmp"), *cache.rglob("*.part"), *cache.glob("tree/.bzr/**/lock/held")]
    if leftovers:
        run.problem("next start cleaned", f"left in the cache: {leftovers}")
    for d in run.after_kill.get("job_dirs", []):
        if f"{d}: removed" not in run.logs["last"]:
            run.problem("next start cleaned", f"the next start did not say it removed {d.name}")
    for part in run.after_kill.get("parts", []):
        name = part.name.removesuffix(".part")
        if name.startswith("stage3-") and not any(p.endswith("/" + name) and rng and rng != "bytes=0-"
                                                  for _, p, rng in run.mirror_requests):
            run.problem("next start cleaned", f"the download of {name} was not resumed (no Range request)")
    for temp in run.after_kill.get("temp", []):
        if f"{temp}: removed" not in run.logs["last"]:
            run.problem("next start cleaned", f"the next start did not say it removed {temp.name}")
    for tmp in run.after_kill.get("tmp_roots", []):
        if f"{tmp}: removed (an unpack that did not finish)" not in run.logs["last"]:
            run.problem("next start cleaned", f"the next start did not say it removed {tmp.name}")
    return {c: c not in run.problems for c in CHECKS}


def record(matrix, run: Run, cell: Cell, j: dict, checks: dict[str, bool]) -> None:
    cell.checks = checks
    cell.left = run.left or "nothing"
    cell.runs = len(j["runs"])
    if run.t_fault and run.t_done:
        cell.recovery = max(0.0, run.t_done - run.t_fault)
    cell.outcome = "passed" if all(checks.values()) else "FAILED"
    if run.problems:
        cell.note = "; ".join(f"{k}: {', '.join(v)}" for k, v in run.problems.items())[:300]
    matrix.cell(cell)
    matrix.duration["matrix"] = matrix.duration.get("matrix", 0.0) + cell.seconds


def assert_clean(run: Run, cell: Cell) -> None:
    assert not run.problems, "\n".join(f"{k}: {v}" for k, v in run.problems.items()) + \
        f"\n--- slave log:\n{run.logs.get('first', '')[-4000:]}\n--- next start:\n{run.logs.get('last', '')[-4000:]}"


@pytest.fixture(scope="module")
def reference(matrix, master, tmp_path_factory, stage3_server, release_key):
    """The cell without a fault: every log, result and attachment as the jobuilds print them."""
    run, cell, j = run_cell(CELLS[0], master, tmp_path_factory.mktemp("cell-none"), None, stage3_server, release_key)
    checks = check(run, j, None)
    final = next(r for r in j["runs"] if r["results"])
    ref = {"logs": {e["index"]: log_of(master, j["id"], final["uuid"], e["index"]) for e in j["plan"]},
           "results": results_of(final), "run": run, "cell": cell, "cache": run.cache}
    record(matrix, run, cell, j, checks)
    return ref


def test_no_fault(reference):
    run = reference["run"]
    assert_clean(run, reference["cell"])
    assert len(run.job()["runs"]) == 1


@pytest.mark.parametrize("spec", CELLS[1:], ids=[c.id for c in CELLS[1:]])
def test_cell(spec, reference, matrix, master, tmp_path, stage3_server, release_key):
    run, cell, j = run_cell(spec, master, tmp_path, None if spec.cold else reference["cache"], stage3_server,
                            release_key)
    checks = check(run, j, reference)
    record(matrix, run, cell, j, checks)
    assert_clean(run, cell)
