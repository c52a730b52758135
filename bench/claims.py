"""The claim path under load, against the framework's own ceiling and a bare SQL loop; and a SIDEPEND
chain pipelined and not.

In one run, on a throw-away PostgreSQL (pg_stat_statements counts every statement), with gunicorn
under the same settings (``--workers`` x ``--threads`` gthread) and the same ``--slaves`` client threads:

* **ceiling**: a database-free Django view (tests/support/ceiling.py) answering the same requests
  with the same JSON: what Django itself serves on this machine;
* **API**: the master, ``--jobs`` queued jobs; each client loops claim -> result (-> finish, when the
  result's answer does not say it finished the run), with a real slave's result body;
* **bare**: ``--slaves`` threads doing the same writes straight through psycopg with SKIP LOCKED.

For each: jobs/s, requests/s, statements per job (BEGIN/COMMIT included, and without them), the claim's
p50/p99, double claims. Then a SIDEPEND chain (bob/integration, whose last jobuild needs
alice/hello-suite-1.1, which the master queues by itself) on two simulated slaves whose every jobuild
takes ``--step`` seconds: its wall time with SIDEPENDs pipelined (``wait``) and not.

    .venv/bin/python bench/claims.py [--jobs 4000] [--slaves 32] [--workers 4] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from autotua.demo.sampletree import build_sample_tree  # noqa: E402
from autotua_master.live import LiveMaster  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.procstat import usage  # noqa: E402
from tests.support.simslaves import clone_jobs  # noqa: E402

CLAIM_SQL = """
SELECT id FROM jobs_job WHERE state = 'queued' AND arch = %s AND stage3 = ANY(%s)
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
PHASES = ("pkg_setup", "src_unpack", "src_compile", "src_test")


def result_body() -> dict:
    """A result as autotua-slave sends it for a one-jobuild job that passed."""
    t = "2026-11-23T16:01:0{}.{:03d}Z"
    return {"status": "passed", "exit_code": 0, "started": t.format(1, 0), "finished": t.format(9, 874),
            "phases": [{"name": p, "status": "passed", "exit_code": 0, "started": t.format(i + 1, 10),
                        "finished": t.format(i + 2, 5)} for i, p in enumerate(PHASES)],
            "results": {"machine": "x86_64", "bash": "5.2.15"}, "attachments": [], "log_size": 0}


def claim_body() -> dict:
    return {"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"], "free_disk": 85899345920,
            "host": {"hostname": "box1", "kernel": "6.6.30-gentoo", "cpus": 8, "memory": 16777216000},
            "version": "0.1.0"}


class Phase:
    """What one phase measured."""

    def __init__(self, name: str):
        self.name = name
        self.claimed: list[int] = []
        self.latencies: list[float] = []
        self.result_latencies: list[float] = []
        self.requests = 0
        self.elapsed = 0.0
        self.statements = (0, 0)  # (all, without BEGIN/COMMIT)
        self.errors: list[str] = []
        self.top: list[tuple[str, int]] = []  # (statement, calls), most called first
        self.cpu: dict[str, float] = {}  # CPU seconds the phase cost: the server, PostgreSQL, the clients

    def line(self) -> str:
        jobs = len(self.claimed)
        rate = jobs / self.elapsed if self.elapsed else 0.0
        doubles = "-" if self.name == "ceiling" else sum(c - 1 for c in Counter(self.claimed).values() if c > 1)
        per_job = (f"{self.statements[0] / jobs:5.1f} ({self.statements[1] / jobs:4.1f})" if jobs and self.statements[0]
                   else "    -       ")
        lat = (f"{pct(self.latencies, 50) * 1000:6.1f} {pct(self.latencies, 99) * 1000:7.1f}" if self.latencies
               else "     -       -")
        reqs = f"{self.requests / self.elapsed:8.0f}" if self.requests else "       -"
        return f"{self.name:<8} {jobs:>6} {rate:8.1f} {reqs} {per_job:>13} {lat}  {doubles}"


def http_phase(phase: Phase, url: str, tokens: list[str], seconds_limit: float, jobs: int | None = None,
               warmup: int = 2, at_start=None) -> Phase:
    """Client threads looping claim -> result (-> finish) until nothing is left (or ``jobs`` are done);
    each first does ``warmup`` jobs, not counted (every gunicorn thread has connected and loaded what it
    uses before the clock starts); ``at_start`` runs once they all have, just before they go on."""
    lock = threading.Lock()
    barrier = threading.Barrier(len(tokens) + 1, action=at_start)
    deadline = time.monotonic() + seconds_limit
    left = [jobs] if jobs is not None else None
    result = result_body()

    def one(http, api: str) -> tuple[int, float, float, int] | None:
        """One job: (its id, claim seconds, result seconds, requests), None when nothing is left."""
        t0 = time.perf_counter()
        r = http.post(api + "claim", json=claim_body())
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            phase.errors.append(f"claim {r.status_code}: {r.text[:200]}")
            return None
        body = r.json()
        if body["run"] is None:
            return None
        run = body["run"]
        t1 = time.perf_counter()
        r = http.put(api + f"runs/{run}/jobuilds/0/result", json=result)
        dr = time.perf_counter() - t1
        n = 2
        if r.status_code == 200 and not r.json().get("finished"):
            r = http.post(api + f"runs/{run}/finish", json={"status": "passed"})
            n += 1
        if r.status_code != 200:
            phase.errors.append(f"result/finish {r.status_code}: {r.text[:200]}")
            return None
        return body["job"]["id"], dt, dr, n

    def slave(token: str) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Slave {token}"
        api = url + "/api/v1/"
        for _ in range(warmup):
            one(http, api)
        barrier.wait()
        while time.monotonic() < deadline:
            if left is not None:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
            done = one(http, api)
            if done is None:
                return
            with lock:
                phase.claimed.append(done[0])
                phase.latencies.append(done[1])
                phase.result_latencies.append(done[2])
                phase.requests += done[3]

    phase.elapsed = run_together(slave, tokens, barrier)
    return phase


def bare_phase(phase: Phase, cluster: PostgresCluster, dbname: str, n_threads: int, slave_ids: list[int],
               run_table: str, at_start=None) -> Phase:
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads + 1, action=at_start)

    def worker(i: int) -> None:
        conn = cluster.connect(dbname)
        slave_id = slave_ids[i % len(slave_ids)]
        barrier.wait()
        while True:
            t0 = time.perf_counter()
            with conn.transaction():
                row = conn.execute(CLAIM_SQL, ("amd64", ["openrc"])).fetchone()
                if row is None:
                    break
                conn.execute("UPDATE jobs_job SET state = 'running', attempts = attempts + 1, accepted = now() "
                             "WHERE id = %s", row)
                conn.execute(f"INSERT INTO {run_table} (uuid, job_id, slave_id, attempt, claimed, lease_expires, "
                             "\"end\", end_reason) "
                             "VALUES (%s, %s, %s, 1, now(), now() + interval '300 seconds', '', '')",
                             (uuid.uuid4(), row[0], slave_id))
            dt = time.perf_counter() - t0
            with conn.transaction():
                conn.execute("UPDATE jobs_job SET state = 'passed', finished = now() WHERE id = %s", row)
                conn.execute(f"UPDATE {run_table} SET ended = now(), \"end\" = 'finished' WHERE job_id = %s "
                             "AND ended IS NULL", row)
            with lock:
                phase.claimed.append(row[0])
                phase.latencies.append(dt)
        conn.close()

    phase.elapsed = run_together(worker, range(n_threads), barrier)
    return phase


def run_together(target, args, barrier: threading.Barrier) -> float:
    """A thread per item of ``args``, released at once by ``barrier``; the seconds until all ended."""
    threads = [threading.Thread(target=target, args=(a,)) for a in args]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


class CPU:
    """CPU seconds of the server under test, of PostgreSQL and of this process (the clients) over a phase."""

    def __init__(self, cluster: PostgresCluster, server_pid: int | None):
        self.pids = {"server": server_pid, "postgres": int((cluster.data / "postmaster.pid").read_text().split()[0]),
                     "clients": os.getpid()}
        self.start: dict[str, float] = {}

    def now(self) -> dict[str, float]:
        return {k: usage(pid, tree=k != "clients")["cpu"] if pid else 0.0 for k, pid in self.pids.items()}

    def begin(self) -> None:
        self.start = self.now()

    def end(self, phase: Phase) -> Phase:
        phase.cpu = {k: v - self.start[k] for k, v in self.now().items()}
        return phase


class Statements:
    """pg_stat_statements of one database: reset when a phase starts, read when it ends."""

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    NOISE = ("pg_stat_statements", "SET ", "SHOW ", "SELECT VERSION()")

    def __init__(self, cluster: PostgresCluster, dbname: str):
        self.cluster, self.dbname = cluster, dbname

    def reset(self) -> None:
        with self.cluster.connect(self.dbname, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def read(self, phase: Phase) -> Phase:
        with self.cluster.connect(self.dbname, autocommit=True) as conn:
            rows = conn.execute("SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                                "WHERE d.datname = %s", (self.dbname,)).fetchall()
        # not the bench's own, nor the foreign-key checks PostgreSQL runs inside an INSERT or UPDATE
        counted_rows = [(q, c) for q, c in rows if not q.lstrip().upper().startswith(self.NOISE)
                        and "pg_stat" not in q and " FOR KEY SHARE OF x" not in q]
        phase.statements = (sum(c for _, c in counted_rows),
                            sum(c for q, c in counted_rows if not q.lstrip().upper().startswith(self.CONTROL)))
        phase.top = sorted(counted_rows, key=lambda r: -r[1])
        return phase


def make_slaves(master: LiveMaster, n: int, prefix: str) -> list[str]:
    out = master.manage("shell", "-c", (
        "from autotua_master.slaves.models import Slave, SlaveState\n"
        f"for i in range({n}):\n"
        f"    print(Slave.objects.create_with_token(name=f'{prefix}{{i}}', arch='amd64', flavours=['openrc'],"
        " state=SlaveState.ACTIVE)[1])\n")).split()
    return [t for t in out if t.startswith("s") and "_" in t]


# -- the SIDEPEND chain ------------------------------------------------------------------------------------
def chain_slave(url: str, token: str, step: float, stop: threading.Event) -> None:
    """A simulated slave: every jobuild takes ``step`` seconds; ``wait`` answers are long-polled."""
    http = requests.Session()
    http.headers.update({"Authorization": f"Slave {token}", "Prefer": "wait=30"})
    api = url + "/api/v1/"
    while not stop.is_set():
        r = http.post(api + "claim", json=claim_body(), timeout=60)
        body = r.json()
        if not body.get("run"):
            stop.wait(float(body.get("retry_after") or 0.2) or 0.05)
            continue
        run, answer = body["run"], {}
        for e in body["job"]["plan"]:
            time.sleep(step)
            answer = http.put(api + f"runs/{run}/jobuilds/{e['index']}/result",
                              json={"status": "passed", "log_size": 0}, timeout=60).json()
            while answer.get("action") == "wait" and not stop.is_set():
                stop.wait(float(answer.get("retry_after") or 0))
                answer = http.put(api + f"runs/{run}/jobuilds/{e['index']}/result",
                                  json={"status": "passed", "log_size": 0}, timeout=60).json()
            if answer.get("action") == "abort":
                break
        if not answer.get("finished"):
            http.post(api + f"runs/{run}/finish", json={"status": "passed"}, timeout=60)


def chain_phase(work: Path, sample, cluster: PostgresCluster, pipelined: bool, step: float,
                repeats: int) -> list[float]:
    db = f"chain_{'on' if pipelined else 'off'}"
    master = LiveMaster(work / db, sample.branch, database_url=cluster.createdb(db), workers=2, threads=8,
                        RETRY_AFTER=1, WAIT_RETRY_AFTER=1, PIPELINE_SIDEPENDS=int(pipelined))
    master.migrate()
    bob = master.add_maintainer("bob", sample.fingerprints["bob"])
    master.add_maintainer("alice", sample.fingerprints["alice"])
    tokens = make_slaves(master, 2, "chain")
    walls = []
    with master:
        stop = threading.Event()
        threads = [threading.Thread(target=chain_slave, args=(master.url, t, step, stop), daemon=True) for t in tokens]
        for t in threads:
            t.start()
        people = master.person_session(bob)
        for _ in range(repeats):
            with cluster.connect(db, autocommit=True) as conn:  # every SIDEPEND pending again
                conn.execute("DELETE FROM jobs_requirement")
                conn.execute("DELETE FROM jobs_provision")
            t0 = time.monotonic()
            job = people.post(master.url + "/api/v1/jobs/", json={"root": "bob/integration"}).json()
            while people.get(f"{master.url}/api/v1/jobs/{job['id']}/").json()["state"] not in (
                    "passed", "failed", "error", "cancelled"):
                time.sleep(0.05)
            walls.append(time.monotonic() - t0)
        stop.set()
        for t in threads:
            t.join(65)
    return walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=4000)
    ap.add_argument("--slaves", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    ap.add_argument("--time-limit", type=float, default=600, help="stop a phase after this many seconds")
    ap.add_argument("--step", type=float, default=1.0, help="seconds a jobuild takes in the SIDEPEND chain")
    ap.add_argument("--chains", type=int, default=3, help="SIDEPEND chains timed each way")
    ap.add_argument("--statements", action="store_true", help="print the statements of the API phase")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autotua-bench-"))
    print(f"== {args.jobs} jobs, {args.slaves} client threads, gunicorn {args.workers}x{args.threads} gthread, "
          f"{os.cpu_count()} CPUs; work dir {work}")
    sample = build_sample_tree(work / "sample")
    pg = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_utility": "on",
          "pg_stat_statements.max": "10000"}
    phases = []
    with PostgresCluster(max_connections=args.slaves + 2 * args.workers * args.threads + 40, settings=pg) as cluster:
        url = cluster.createdb("bench")
        with cluster.connect("bench", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        # the ceiling: the same gunicorn settings, the same clients, no database
        ceiling = LiveMaster(work / "ceiling", sample.branch, workers=args.workers, threads=args.threads,
                             settings_module="tests.support.ceiling", ready_path="/api/v1/ping")
        with ceiling:
            requests.get(ceiling.url + "/api/v1/ping")
            cpu = CPU(cluster, ceiling.proc.pid)
            phases.append(cpu.end(http_phase(Phase("ceiling"), ceiling.url, [f"s0_{i}" for i in range(args.slaves)],
                                             args.time_limit, jobs=args.jobs, at_start=cpu.begin)))
        master = LiveMaster(work / "master", sample.branch, database_url=url, workers=args.workers,
                            threads=args.threads)
        master.migrate()
        master.add_maintainer("alice", sample.fingerprints["alice"])
        tokens = make_slaves(master, args.slaves, "bench")
        master.manage("createjob", "alice/toolchain-sanity", "--owner", "alice")
        with cluster.connect("bench", autocommit=True) as conn:
            template = conn.execute("SELECT id FROM jobs_job ORDER BY id LIMIT 1").fetchone()[0]
            conn.execute("UPDATE jobs_job SET state = 'passed' WHERE id = %s", (template,))
            clone_jobs(conn, template, args.jobs + 2 * args.slaves)  # and the clients' warm-up jobs
            slave_ids = [r[0] for r in conn.execute("SELECT id FROM slaves_slave ORDER BY id")]
            run_table = conn.execute("SELECT coalesce(to_regclass('jobs_run'), to_regclass('slaves_run'))::text"
                                     ).fetchone()[0]
        with master:
            requests.get(master.url + "/api/v1/jobs/?limit=1")
            stats, cpu = Statements(cluster, "bench"), CPU(cluster, master.proc.pid)
            phases.append(cpu.end(stats.read(http_phase(Phase("API"), master.url, tokens, args.time_limit,
                                                        at_start=lambda: (stats.reset(), cpu.begin())))))
        with cluster.connect("bench", autocommit=True) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM jobs_job GROUP BY state").fetchall())
            clone_jobs(conn, template, args.jobs)
        cpu = CPU(cluster, None)
        phases.append(cpu.end(stats.read(bare_phase(Phase("bare"), cluster, "bench", args.slaves, slave_ids,
                                                    run_table, at_start=lambda: (stats.reset(), cpu.begin())))))
        walls = {mode: chain_phase(work, sample, cluster, mode, args.step, args.chains) for mode in (True, False)
                 if args.chains}

    print(f"job states after the API phase: {states}")
    print("phase      jobs    jobs/s   req/s  stmts/job (data)  claim p50/p99 ms  doubles")
    for p in phases:
        print(p.line())
        extra = []
        if p.result_latencies:
            extra.append(f"result p50/p99 {pct(p.result_latencies, 50) * 1000:.1f}/"
                         f"{pct(p.result_latencies, 99) * 1000:.1f} ms")
        if p.cpu and p.claimed:
            extra.append("CPU ms per job: " + ", ".join(f"{k} {v * 1000 / len(p.claimed):.1f}"
                                                        for k, v in p.cpu.items() if v))
        if extra:
            print(f"{'':8} " + "; ".join(extra))
        for e in p.errors[:3]:
            print(f"   error: {e}")
        if args.statements:
            for q, c in p.top:
                print(f"   {c / max(len(p.claimed), 1):5.2f}/job  {' '.join(q.split())[:150]}")
    top, api = phases[0], phases[1]
    if api.requests and top.requests and api.latencies:
        print(f"API/ceiling: requests/s {api.requests / api.elapsed / (top.requests / top.elapsed):.2f}x "
              f"(target >= 0.5), claim p99 {pct(api.latencies, 99) / pct(top.latencies, 99):.2f}x (target <= 1.5); "
              f"requests per job {api.requests / max(len(api.claimed), 1):.1f}")
    for mode, w in walls.items():
        print(f"SIDEPEND chain bob/integration (3 jobuilds, the last needs alice/hello-suite-1.1: 2 jobuilds), "
              f"{args.step:g} s a jobuild, 2 slaves, {'pipelined' if mode else 'not pipelined'}: median "
              f"{statistics.median(w):.1f} s ({', '.join(f'{x:.1f}' for x in w)})")
    sample.close()
    return 1 if any(sum(c - 1 for c in Counter(p.claimed).values() if c > 1) for p in phases[1:]) else 0


if __name__ == "__main__":
    sys.exit(main())
