"""1,000 idle slaves long-polling one master: what they cost it, and how fast a new job reaches one.

The master runs as contrib/'s service runs it (gunicorn gthread, autotua_master.gunicorn_conf) on a
throw-away PostgreSQL; 1,000 active slaves (client threads in this process) each claim with
``Prefer: wait=30`` in a loop, as autotua-slave does, with nothing queued. Over ``--seconds`` it
measures the requests per minute, the master's memory (RSS and PSS of gunicorn and its workers) and
CPU, and PostgreSQL's connections; then it creates one job and times how long until a slave holds it.

``--compare`` (the default) then holds the same 1,000 long-polls in Django's ASGI handler under
gunicorn's asgi worker — an async view asleep, no database — for the server-model decision
(docs/master.md, The server model).

    .venv/bin/python bench/longpoll.py [--slaves 1000] [--seconds 60] [--workers 4] [--threads 320]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from autotua.demo.sampletree import build_sample_tree  # noqa: E402
from autotua_master.live import LiveMaster  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.procstat import usage  # noqa: E402


class Pollers:
    """``n`` client threads, each a slave that long-polls ``path`` until stopped."""

    def __init__(self, url: str, tokens: list[str], body, path: str = "claim"):
        self.url, self.tokens, self.body, self.path = url, tokens, body, path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.errors: list[str] = []
        self.claimed: list[tuple[float, int]] = []
        self.threads = [threading.Thread(target=self.poll, args=(t,), daemon=True) for t in tokens]

    def start(self) -> Pollers:
        for t in self.threads:
            t.start()
        return self

    def poll(self, token: str) -> None:
        http = requests.Session()
        http.headers.update({"Authorization": f"Slave {token}", "Prefer": "wait=30"})
        while not self.stop.is_set():
            try:
                r = http.post(f"{self.url}/api/v1/{self.path}", json=self.body(), timeout=60)
            except requests.RequestException as e:
                with self.lock:
                    self.errors.append(str(e)[:200])
                self.stop.wait(1)
                continue
            with self.lock:
                self.requests += 1
            if r.status_code != 200:
                with self.lock:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                self.stop.wait(1)
                continue
            body = r.json()
            if body.get("job"):
                with self.lock:
                    self.claimed.append((time.monotonic(), body["job"]["id"]))
                http.put(f"{self.url}/api/v1/runs/{body['run']}/jobuilds/0/result",
                         json={"status": "passed", "log_size": 0}, timeout=60)
            elif body.get("retry_after"):
                self.stop.wait(float(body["retry_after"]))


def measure(proc_pid: int, pollers: Pollers, seconds: float, warmup: float) -> dict:
    time.sleep(warmup)  # every slave is in its long-poll loop
    u0, r0, t0 = usage(proc_pid), pollers.requests, time.monotonic()
    time.sleep(seconds)
    u1, r1, t1 = usage(proc_pid), pollers.requests, time.monotonic()
    minutes = (t1 - t0) / 60
    return {"requests_per_minute": (r1 - r0) / minutes, "rss": u1["rss"], "pss": u1["pss"], "threads": u1["threads"],
            "cpu_percent": 100 * (u1["cpu"] - u0["cpu"]) / (t1 - t0)}


def real_master(args, work: Path, sample, cluster) -> None:
    url = cluster.createdb("longpoll")
    master = LiveMaster(work / "master", sample.branch, database_url=url, workers=args.workers, threads=args.threads,
                        DATABASE_POOL=args.pool)
    master.migrate()
    alice = master.add_maintainer("alice", sample.fingerprints["alice"])
    tokens = master.manage("shell", "-c", (
        "from autotua_master.slaves.models import Slave, SlaveState\n"
        f"for i in range({args.slaves}):\n"
        "    print(Slave.objects.create_with_token(name=f'idle{i}', arch='amd64', flavours=['openrc'],"
        " state=SlaveState.ACTIVE)[1])\n")).split()
    tokens = [t for t in tokens if t.startswith("s") and "_" in t]
    with master:
        base = usage(master.proc.pid)
        pollers = Pollers(master.url, tokens, lambda: {"run": str(uuid.uuid4()), "arch": "amd64",
                                                       "flavours": ["openrc"]}).start()
        m = measure(master.proc.pid, pollers, args.seconds, args.warmup)
        with cluster.connect("longpoll") as conn:
            m["pg_connections"] = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'longpoll'"
                                               ).fetchone()[0]
        t0 = time.monotonic()
        r = master.person_session(alice).post(master.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"})
        assert r.status_code == 201, r.text
        t_created = time.monotonic()
        while not pollers.claimed and time.monotonic() - t0 < 60:
            time.sleep(0.01)
        latency = pollers.claimed[0][0] - t0 if pollers.claimed else float("nan")
        after = pollers.claimed[0][0] - t_created if pollers.claimed else float("nan")
        pollers.stop.set()
        t_stop = time.monotonic()
        master.stop()
        stopped = time.monotonic() - t_stop
    print(f"gthread master ({args.workers}x{args.threads}, PostgreSQL, AUTOTUA_DATABASE_POOL={args.pool}), "
          f"{len(tokens)} idle slaves long-polling:")
    print(f"  {m['requests_per_minute']:.0f} requests/minute = {m['requests_per_minute'] / len(tokens):.2f} per "
          f"slave per minute (target <= 2)")
    print(f"  memory: RSS {m['rss']:.0f} MiB, PSS {m['pss']:.0f} MiB (idle, before the slaves: RSS "
          f"{base['rss']:.0f} MiB, PSS {base['pss']:.0f} MiB); {m['threads']} threads; CPU {m['cpu_percent']:.1f}% "
          f"of one core; PostgreSQL connections {m['pg_connections']}")
    print(f"  a job created while they wait: claimed {latency * 1000:.0f} ms after its creation began "
          f"({after * 1000:.0f} ms after the 201), by {len(pollers.claimed)} slave(s)")
    print(f"  graceful stop with {len(tokens)} long-polls held: {stopped:.1f} s; client errors {len(pollers.errors)}"
          + (f" (first: {pollers.errors[0]})" if pollers.errors else ""))


def asgi_prototype(args, work: Path, sample) -> None:
    master = LiveMaster(work / "asgi", sample.branch, workers=args.workers, app="tests.support.ceiling_asgi",
                        settings_module="tests.support.ceiling", worker_class="asgi", ready_path="/api/v1/ping")
    tokens = [f"t{i}" for i in range(args.slaves)]
    with master:
        base = usage(master.proc.pid)
        pollers = Pollers(master.url, tokens, lambda: {"run": str(uuid.uuid4())}, path="wait?seconds=30").start()
        m = measure(master.proc.pid, pollers, args.seconds, args.warmup)
        pollers.stop.set()
    print(f"ASGI prototype (gunicorn asgi worker x{args.workers}, an async Django view asleep, no database), "
          f"{len(tokens)} long-polls:")
    print(f"  {m['requests_per_minute']:.0f} requests/minute; memory: RSS {m['rss']:.0f} MiB, PSS {m['pss']:.0f} MiB "
          f"(before: RSS {base['rss']:.0f}, PSS {base['pss']:.0f}); {m['threads']} threads; CPU "
          f"{m['cpu_percent']:.1f}% of one core; client errors {len(pollers.errors)}"
          + (f" (first: {pollers.errors[0]})" if pollers.errors else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slaves", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60, help="measured (a multiple of the 30 s long-poll)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=320)
    ap.add_argument("--warmup", type=float, default=35, help="seconds before measuring (every slave polling)")
    ap.add_argument("--pool", type=int, default=16, help="AUTOTUA_DATABASE_POOL (0: a connection per thread)")
    ap.add_argument("--no-compare", dest="compare", action="store_false")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autotua-longpoll-"))
    print(f"== {args.slaves} idle slaves, {os.cpu_count()} CPUs; work dir {work}")
    sample = build_sample_tree(work / "sample")
    with PostgresCluster(max_connections=args.workers * args.threads + 50) as cluster:
        real_master(args, work, sample, cluster)
    if args.compare:
        asgi_prototype(args, work, sample)
    sample.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
