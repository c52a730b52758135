"""Claims under load: the API under gunicorn on PostgreSQL against a bare psycopg SKIP LOCKED loop.

10,000 queued jobs; 32 simulated slaves (threads) each loop claim -> result -> finish over HTTP; then
10,000 more jobs claimed (and finished) by 32 threads running the same SQL straight through psycopg.
Prints claims/s of both, their ratio, the API's claim latency (p50/p99) and the double claims.
Everything runs here: a throw-away cluster, the signed sample tree, a gunicorn master.

    .venv/bin/python bench/claims.py [--jobs 10000] [--slaves 32] [--workers 4] [--threads 8]
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
from tests.support.simslaves import clone_jobs  # noqa: E402

CLAIM_SQL = """
SELECT id FROM jobs_job WHERE state = 'queued' AND arch = %s AND stage3 = ANY(%s)
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""


def api_phase(url: str, tokens: list[str], seconds_limit: float) -> tuple[list[int], list[float], float]:
    claimed: list[int] = []
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(tokens) + 1)
    deadline = time.monotonic() + seconds_limit

    def slave(token: str) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Slave {token}"
        api = url + "/api/v1/"
        barrier.wait()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = http.post(api + "claim", json={"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"]})
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                errors.append(f"claim {r.status_code}: {r.text[:200]}")
                return
            body = r.json()
            if body["run"] is None:
                return
            with lock:
                claimed.append(body["job"]["id"])
                latencies.append(dt)
            run = body["run"]
            r = http.put(api + f"runs/{run}/jobuilds/0/result", json={"status": "passed", "exit_code": 0,
                                                                      "log_size": 0})
            r2 = http.post(api + f"runs/{run}/finish", json={"status": "passed"})
            if r.status_code != 200 or r2.status_code != 200:
                errors.append(f"result/finish {r.status_code}/{r2.status_code}: {r.text[:200]} {r2.text[:200]}")
                return

    elapsed = run_together(slave, tokens, barrier)
    if errors:
        print("errors:", *errors[:5], sep="\n  ")
    return claimed, latencies, elapsed


def bare_phase(cluster: PostgresCluster, dbname: str, n_threads: int,
               slave_ids: list[int]) -> tuple[list[int], float]:
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads + 1)

    def worker(i: int) -> None:
        conn = cluster.connect(dbname)
        slave_id = slave_ids[i % len(slave_ids)]
        barrier.wait()
        while True:
            with conn.transaction():
                row = conn.execute(CLAIM_SQL, ("amd64", ["openrc"])).fetchone()
                if row is None:
                    break
                conn.execute("UPDATE jobs_job SET state = 'running', attempts = attempts + 1, accepted = now() "
                             "WHERE id = %s", row)
                conn.execute("INSERT INTO jobs_run (uuid, job_id, slave_id, attempt, claimed, lease_expires, "
                             "\"end\", end_reason) "
                             "VALUES (%s, %s, %s, 1, now(), now() + interval '300 seconds', '', '')",
                             (uuid.uuid4(), row[0], slave_id))
            with conn.transaction():
                conn.execute("UPDATE jobs_job SET state = 'passed', finished = now() WHERE id = %s", row)
                conn.execute("UPDATE jobs_run SET ended = now(), \"end\" = 'finished' WHERE job_id = %s "
                             "AND ended IS NULL", row)
            with lock:
                claimed.append(row[0])
        conn.close()

    return claimed, run_together(worker, range(n_threads), barrier)


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--slaves", type=int, default=32)
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    ap.add_argument("--time-limit", type=float, default=600, help="stop the API phase after this many seconds")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autotua-bench-"))
    print(f"== {args.jobs} jobs, {args.slaves} slaves, gunicorn {args.workers}x{args.threads}, "
          f"{os.cpu_count()} CPUs; work dir {work}")
    sample = build_sample_tree(work / "sample")
    with PostgresCluster(max_connections=args.slaves + args.workers * args.threads + 20) as cluster:
        url = cluster.createdb("bench")
        master = LiveMaster(work / "master", sample.branch, database_url=url, workers=args.workers,
                            threads=args.threads)
        master.migrate()
        master.add_maintainer("alice", sample.fingerprints["alice"])
        tokens = master.manage("shell", "-c", (
            "from autotua_master.slaves.models import Slave, SlaveState\n"
            f"for i in range({args.slaves}):\n"
            "    print(Slave.objects.create_with_token(name=f'bench{i}', arch='amd64', flavours=['openrc'],"
            " state=SlaveState.ACTIVE)[1])\n")).split()
        tokens = [t for t in tokens if t.startswith("s") and "_" in t]
        master.manage("createjob", "alice/toolchain-sanity")
        with cluster.connect("bench", autocommit=True) as conn:
            template = conn.execute("SELECT id FROM jobs_job ORDER BY id LIMIT 1").fetchone()[0]
            conn.execute("UPDATE jobs_job SET state = 'passed' WHERE id = %s", (template,))
            clone_jobs(conn, template, args.jobs)
            slave_ids = [r[0] for r in conn.execute("SELECT id FROM slaves_slave ORDER BY id")]
        with master:
            requests.get(master.url + "/api/v1/jobs/?limit=1")
            api_claimed, latencies, api_elapsed = api_phase(master.url, tokens, args.time_limit)
        with cluster.connect("bench", autocommit=True) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM jobs_job GROUP BY state").fetchall())
            clone_jobs(conn, template, args.jobs)
        bare_claimed, bare_elapsed = bare_phase(cluster, "bench", args.slaves, slave_ids)

    api_rate = len(api_claimed) / api_elapsed
    bare_rate = len(bare_claimed) / bare_elapsed
    api_doubles = sum(c - 1 for c in Counter(api_claimed).values() if c > 1)
    bare_doubles = sum(c - 1 for c in Counter(bare_claimed).values() if c > 1)
    print(f"API  (claim -> result -> finish over HTTP): {len(api_claimed)} claims in {api_elapsed:.1f}s = "
          f"{api_rate:.0f} claims/s; job states after: {states}")
    print(f"bare (psycopg, SKIP LOCKED, claim + finish): {len(bare_claimed)} claims in {bare_elapsed:.1f}s = "
          f"{bare_rate:.0f} claims/s")
    print(f"ratio API/bare: {api_rate / max(bare_rate, 1e-9):.3f} (target >= 0.5)")
    print(f"API claim latency: p50 {pct(latencies, 50) * 1000:.1f} ms, p99 {pct(latencies, 99) * 1000:.1f} ms, "
          f"mean {statistics.fmean(latencies) * 1000:.1f} ms (target p99 < 100 ms)")
    print(f"double claims: API {api_doubles}, bare {bare_doubles} (target 0)")
    sample.close()
    return 1 if api_doubles or bare_doubles else 0


if __name__ == "__main__":
    sys.exit(main())
