"""Load (issue 8): 32 simulated slaves (tests/support/simslaves.py) against gunicorn on PostgreSQL for a
bounded time, with leases running out under slaves that went silent, jobs cancelled under the slaves
running them, failures, infrastructure errors and repeated writes.

Bounded by design: the slaves work for WORK_SECONDS, then stop taking jobs and finish what they hold;
the leases they left are swept, and the jobs nobody got to are cancelled. Then, from the database:
every job in exactly one final state that agrees with its runs, no job ever held by two live runs,
attempts within the limit, every log and result as the slaves were told they were taken, and no
answer a 5xx. The figures go into docs/reliability.md.
"""

from __future__ import annotations

import itertools
import random
import statistics
import threading
import time
from collections import Counter, defaultdict

import pytest

from autotua_master.live import LiveMaster
from tests.support.simslaves import BEHAVIOURS, Ledger, SimSlave, clone_jobs

pytestmark = [pytest.mark.slow]

N_SLAVES = 32
WORK_SECONDS = 45
JOBS = 800            # more than the slaves can do in WORK_SECONDS: the queue never runs dry
LEASE = 3
MAX_ATTEMPTS = 3
DOOMED_EVERY = 37     # jobs whose id is a multiple of this always end their attempts with an error
MAX_CANCELS = 60
FINAL = {"passed", "failed", "error", "cancelled"}


def doomed(job_id: int) -> bool:
    return job_id % DOOMED_EVERY == 0


@pytest.fixture(scope="module")
def load_master(tmp_path_factory, sample, postgres):
    data = tmp_path_factory.mktemp("load-master")
    url = postgres.createdb("load")
    m = LiveMaster(data / "master", tree=sample.branch, database_url=url, workers=2, threads=8,
                   LEASE_SECONDS=LEASE, HEARTBEAT_SECONDS=1, MAX_ATTEMPTS=MAX_ATTEMPTS, SWEEP_SECONDS=1,
                   RETRY_AFTER=1)
    m.migrate()
    m.db = url
    m.alice = m.person_session(m.add_maintainer("alice", sample.fingerprints["alice"]))
    out = m.manage("shell", "-c", (
        "from autotua_master.slaves.models import Slave, SlaveState\n"
        f"for i in range({N_SLAVES}):\n"
        "    print(Slave.objects.create_with_token(name=f'sim{i}', arch='amd64', flavours=['openrc'],"
        " state=SlaveState.ACTIVE)[1])\n"))
    m.tokens = [t for t in out.split() if t.startswith("s") and "_" in t]
    assert len(m.tokens) == N_SLAVES
    m.manage("createjob", "=alice/hello-suite-1.1", "--owner", "alice")  # two jobuilds (a DEPEND)
    try:
        m.start(timeout=180)
        yield m
    finally:
        m.stop()


def canceller(master: LiveMaster, stop: threading.Event, cancelled: set[int], lock: threading.Lock,
              counts: Counter) -> None:
    """Cancels jobs as their owner would: mostly running ones, under the slave running them."""
    rng = random.Random(3)
    while not stop.wait(0.4) and counts["asked"] < MAX_CANCELS:
        state = "queued" if counts["asked"] % 5 == 4 else "running"
        r = master.alice.get(f"{master.url}/api/v1/jobs/?state={state}&limit=50", timeout=60)
        if r.status_code >= 500:
            counts["5xx"] += 1
            continue
        jobs = r.json()["results"]
        if not jobs:
            continue
        j = rng.choice(jobs)
        counts["asked"] += 1
        r = master.alice.post(f"{master.url}/api/v1/jobs/{j['id']}/cancel", json={"reason": "load test"}, timeout=60)
        if r.status_code == 200:
            with lock:
                cancelled.add(j["id"])
            counts[f"of a {state} job"] += 1
        elif r.status_code == 409:
            counts["already final"] += 1
        else:
            counts[f"{r.status_code}"] += 1


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def rows(conn, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def test_32_slaves_under_load(load_master, postgres, reliability):
    master = load_master
    t_start = time.monotonic()
    with postgres.connect("load", autocommit=True) as conn:
        template = rows(conn, "SELECT id FROM jobs_job ORDER BY id LIMIT 1")[0][0]
        clone_jobs(conn, template, JOBS - 1)
        assert rows(conn, "SELECT count(*) FROM jobs_job WHERE state = 'queued'")[0][0] == JOBS

    ledger = Ledger()
    stop = threading.Event()
    cancelled: set[int] = set()
    cancels: Counter = Counter()
    slaves = [SimSlave(i, master.url, tok, ledger, stop, lease=LEASE, doomed=doomed, seed=1000 + i)
              for i, tok in enumerate(master.tokens)]
    cancel_thread = threading.Thread(target=canceller, args=(master, stop, cancelled, ledger.lock, cancels),
                                     daemon=True)
    t0 = time.monotonic()
    for s in [*slaves, cancel_thread]:
        s.start()
    stop.wait(WORK_SECONDS)
    stop.set()
    for s in [*slaves, cancel_thread]:
        s.join(60)
    assert not [s.name for s in slaves if s.is_alive()], "simulated slaves still busy 60 s after the stop"
    work = time.monotonic() - t0

    with postgres.connect("load", autocommit=True) as conn:
        states_at_stop = dict(rows(conn, "SELECT state, count(*) FROM jobs_job GROUP BY state"))
        # the leases the silent slaves left run out; the sweep ends them (as `sweepleases` from cron does)
        left = rows(conn, "SELECT count(*), max(lease_expires) - now() FROM jobs_run WHERE ended IS NULL")[0]
        if left[0]:
            time.sleep(max(0.0, left[1].total_seconds()) + 0.5)
            master.manage("sweepleases")
        assert rows(conn, "SELECT count(*) FROM jobs_run WHERE ended IS NULL")[0][0] == 0
        # what nobody got to is cancelled: every job ends
        at_end = [r[0] for r in rows(conn, "SELECT id FROM jobs_job WHERE state NOT IN "
                                           "('passed', 'failed', 'error', 'cancelled') ORDER BY id")]
        states_left = dict(rows(conn, "SELECT state, count(*) FROM jobs_job WHERE state NOT IN "
                                      "('passed', 'failed', 'error', 'cancelled') GROUP BY state"))
        assert set(states_left) <= {"queued"}, states_left
        for job_id in at_end:
            r = master.alice.post(f"{master.url}/api/v1/jobs/{job_id}/cancel", json={"reason": "load test over"},
                                  timeout=60)
            assert r.status_code == 200, r.text

        jobs = {r[0]: r[1:] for r in rows(conn, "SELECT id, state, attempts, max_attempts, jsonb_array_length(plan)"
                                                 " FROM jobs_job")}
        runs = rows(conn, 'SELECT uuid::text, job_id, attempt, claimed, ended, "end", finish FROM jobs_run')
        results = rows(conn, "SELECT r.uuid::text, x.index, x.status FROM jobs_jobuildresult x "
                             "JOIN jobs_run r ON r.id = x.run_id")
        logs = rows(conn, "SELECT r.uuid::text, l.index, l.size FROM jobs_logfile l "
                          "JOIN jobs_run r ON r.id = l.run_id")
        ends = dict(rows(conn, 'SELECT "end", count(*) FROM jobs_run GROUP BY "end"'))
        final_states = dict(rows(conn, "SELECT state, count(*) FROM jobs_job GROUP BY state"))

    problems: list[str] = []
    by_job: dict[int, list[tuple]] = defaultdict(list)
    for r in runs:
        by_job[r[1]].append(r)
    res_by_run: dict[str, dict[int, str]] = defaultdict(dict)
    for run, index, status in results:
        res_by_run[run][index] = status
    # runs whose slave was told the job passed: by the answer to its last result, or to its finish
    passed_finishes = Counter(job for (_, run, job, _) in ledger.claims
                              if ledger.decided.get(run) == "passed"
                              or (ledger.finishes.get(run, ("", ""))[1] == "passed"
                                  and ledger.finishes[run][0] == "passed"))
    for job_id, (state, attempts, max_attempts, plan_len) in jobs.items():
        jr = sorted(by_job[job_id], key=lambda r: r[3])
        if state not in FINAL:
            problems.append(f"job {job_id} ended {state}")
        if attempts != len(jr) or attempts > max_attempts:
            problems.append(f"job {job_id}: {attempts} attempts, {len(jr)} runs, limit {max_attempts}")
        if [r[2] for r in jr] != list(range(1, len(jr) + 1)):
            problems.append(f"job {job_id}: attempts {[r[2] for r in jr]} in claim order")
        for a, b in itertools.pairwise(jr):
            if a[4] is None or a[4] > b[3]:
                problems.append(f"job {job_id}: run {a[0]} was live when {b[0]} was claimed")
        complete = [r for r in jr if res_by_run[r[0]] == dict.fromkeys(range(plan_len), "passed")]
        failed = [r for r in jr if "failed" in res_by_run[r[0]].values()]
        # passed: one run did it all, the last; its slave was told so, or the run was lost with every
        # result in (its lease ran out under a slow answer) and the master ended the job on them
        if state == "passed" and (len(complete) != 1 or complete[0] is not jr[-1] or passed_finishes[job_id] > 1
                                  or (not passed_finishes[job_id] and jr[-1][5] not in ("expired", "superseded"))):
            problems.append(f"job {job_id} passed: {len(complete)} complete runs, told {passed_finishes[job_id]} "
                            f"slave(s) so, the last run ended {jr[-1][5]}")
        if state != "passed" and passed_finishes[job_id]:
            problems.append(f"job {job_id} is {state}, but a slave was told it passed")
        if state == "failed" and (len(failed) != 1 or failed[0] is not jr[-1]):
            problems.append(f"job {job_id} failed without exactly one failed run")
        if state == "error" and attempts != max_attempts:
            problems.append(f"job {job_id} is error after {attempts} of {max_attempts} attempts")
        if state == "cancelled" and job_id not in cancelled and job_id not in at_end:
            problems.append(f"job {job_id} is cancelled, but nobody cancelled it")
        if job_id in cancelled and state != "cancelled":
            problems.append(f"job {job_id} was cancelled (200), but is {state}")
    claimed_runs = {(run, job, attempt) for (_, run, job, attempt) in ledger.claims}
    if claimed_runs != {(r[0], r[1], r[2]) for r in runs}:
        problems.append("the runs the slaves were given are not the runs the master recorded")
    for run, index, size in logs:
        if ledger.log_acked.get((run, index)) != size:
            problems.append(f"run {run} jobuild {index}: log of {size} bytes, the slave was told "
                            f"{ledger.log_acked.get((run, index))}")
    if len(logs) != len(ledger.log_acked):
        problems.append(f"{len(logs)} logs on the master, {len(ledger.log_acked)} acknowledged to the slaves")
    for run, acked in ledger.results_acked.items():
        if set(res_by_run[run]) != acked:
            problems.append(f"run {run}: results {sorted(res_by_run[run])}, acknowledged {sorted(acked)}")
    problems += [f"5xx: {e}" for e in ledger.server_errors] + [f"unexpected answer: {e}" for e in ledger.surprises]
    if cancels["5xx"] or any(k.isdigit() for k in cancels):
        problems.append(f"the canceller got {dict(cancels)}")

    # -- the figures --------------------------------------------------------------------------------
    n_requests = sum(ledger.requests.values())
    dist = Counter(a for (_, a, _, _) in jobs.values())
    ended_in_window = sum(v for k, v in states_at_stop.items() if k in FINAL)
    all_lat = [x for v in ledger.latency.values() for x in v]
    per_kind = ", ".join(f"{k} {v}" for k, v in sorted(ledger.requests.items()))
    behaviours = ", ".join(f"{k} {ledger.behaviours[k]}" for k in BEHAVIOURS)
    run_ends = ", ".join(f"{k or 'live'} {v}" for k, v in sorted(ends.items()))
    states = ", ".join(f"{k} {final_states.get(k, 0)}" for k in ("passed", "failed", "error", "cancelled"))
    attempts = ", ".join(f"{k}: {v}" for k, v in sorted(dist.items()))
    verdict = "all held" if not problems else "FAILED"
    lines = [
        f"{N_SLAVES} simulated slaves (threads, HTTP) against gunicorn (2 workers x 8 threads) on PostgreSQL, "
        f"{WORK_SECONDS} s of work on {JOBS} queued jobs of two jobuilds; lease {LEASE} s, heartbeat every 1 s, "
        f"{MAX_ATTEMPTS} attempts; every job whose id is a multiple of {DOOMED_EVERY} always errors.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| jobs ended during the work | {ended_in_window} in {work:.1f} s = **{ended_in_window / work:.1f} jobs/s** |",
        f"| requests | {n_requests} = {n_requests / work:.0f}/s ({per_kind}) |",
        f"| latency, all requests | p50 {pct(all_lat, 50) * 1000:.0f} ms, p99 {pct(all_lat, 99) * 1000:.0f} ms, "
        f"max {max(all_lat) * 1000:.0f} ms |",
        f"| latency, claims | p50 {pct(ledger.latency['claim'], 50) * 1000:.0f} ms, "
        f"p99 {pct(ledger.latency['claim'], 99) * 1000:.0f} ms |",
        f"| runs (claims) | {len(runs)}: {run_ends} |",
        f"| lease expiries | **{ends.get('expired', 0)}** (slaves gone silent: {ledger.behaviours['vanish']}) |",
        f"| cancels under a slave | **{cancels['of a running job']}** of running jobs, {cancels['of a queued job']} "
        f"of queued ones, {cancels['already final']} too late (already final); "
        f"{len(ledger.aborted)} runs told to abort |",
        f"| how the slaves ran their jobs | {behaviours} |",
        f"| writes sent twice (a lost answer) | {ledger.repeats}, each taken once |",
        f"| final states | {states} (of which cancelled at the end, never done: {len(at_end)}) |",
        f"| attempts per job | {attempts} |",
        f"| 5xx answers | {len(ledger.server_errors)} |",
        f"| checks | every job in one final state agreeing with its runs; never two live runs; attempts <= "
        f"{MAX_ATTEMPTS}; logs and results as acknowledged: **{verdict}** |",
    ]
    reliability.load(lines)
    reliability.duration["load"] = time.monotonic() - t_start
    print("\n".join(lines))
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)\n" + master.log()[-3000:]
    # the load really did what it is for (the counts are a few times these even on a slow machine)
    assert final_states.get("passed", 0) >= 50 and ends.get("expired", 0) > 0 and cancels["of a running job"] > 0
    assert final_states.get("error", 0) > 0 and final_states.get("failed", 0) > 0
    assert statistics.fmean(all_lat) < 5, "the master took more than 5 s per request on average"
