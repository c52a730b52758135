"""Two master processes (two gunicorn servers on two ports, sharing one PostgreSQL database and one
data dir, as docs/master.md describes several master hosts), four slaves (two on each master, with
different settings), and 200 short jobs made through both masters while the slaves claim: every job
runs exactly once.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.slave.helpers import needs_root
from tests.support.live import create, slave_log, start, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

JOBS = 200
CLAIMED = re.compile(r"job (\d+) \(bob/tiny, run ([0-9a-f]{8})\): claimed")
PASSED = re.compile(r"job (\d+) \(bob/tiny, run ([0-9a-f]{8})\): passed")


def records(postgres, db: str) -> dict:
    """The master's records, straight from the database."""
    with postgres.connect(db) as conn:
        jobs = {row[0]: row[1:] for row in conn.execute("SELECT id, state, attempts, root, reason FROM jobs_job")}
        runs = conn.execute(
            "SELECT r.job_id, r.uuid::text, s.name, r.attempt, r.end, r.ended IS NOT NULL, r.finish IS NOT NULL, "
            "r.end_reason "
            "FROM jobs_run r JOIN slaves_slave s ON s.id = r.slave_id").fetchall()
        results = conn.execute("SELECT run_id, job_id, index, status, results::text, log_size "
                               "FROM jobs_jobuildresult").fetchall()
        logs = conn.execute("SELECT run_id, index, size FROM jobs_logfile").fetchall()
    return {"jobs": jobs, "runs": runs, "results": results, "logs": logs}


def test_two_masters_on_one_postgresql_four_slaves_200_jobs_each_run_once(tmp_path, postgres, e2e_master,
                                                                           make_slave):
    db = f"e2e_{uuid.uuid4().hex[:10]}"
    url = postgres.createdb(db)
    data = tmp_path / "master-data"  # shared: logs and attachments, as several hosts share DATA_DIR
    masters = [e2e_master(database_url=url, data_dir=data, start_it=False, LEASE_SECONDS=60)]
    masters.append(e2e_master(database_url=url, data_dir=data, start_it=False, migrate=False, people=False,
                              LEASE_SECONDS=60))
    masters[1].people = masters[0].people  # the same maintainers' tokens, from the one database
    assert masters[0].url != masters[1].url
    shared_cache = str(tmp_path / "shared-slave-cache")
    slaves = [
        make_slave(masters[0], "box-a1", cache_dir=shared_cache),  # two slaves sharing one cache
        make_slave(masters[0], "box-a2", cache_dir=shared_cache, max_poll_interval=1),
        make_slave(masters[1], "box-b1", flavours=("openrc", "systemd")),
        make_slave(masters[1], "box-b2", min_free_disk="200M", log_level="debug"),
    ]
    home = {"box-a1": masters[0].url, "box-a2": masters[0].url, "box-b1": masters[1].url, "box-b2": masters[1].url}
    for m in masters:
        start(m)
    for s in slaves:
        s.start()

    # 200 jobs, made through both masters by four people at once while the slaves already claim
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda i: create(masters[i % 2], ("alice", "bob")[i % 3 == 0], "bob/tiny"),
                             range(JOBS)))
    ids = [j["id"] for j in made]
    assert len(set(ids)) == JOBS and all(j["state"] == "queued" for j in made)

    def done() -> bool:
        with postgres.connect(db) as conn:
            left = conn.execute("SELECT count(*) FROM jobs_job WHERE state NOT IN "
                                "('passed', 'failed', 'error', 'cancelled')").fetchone()[0]
        return left == 0
    wait_for(done, 900, "200 jobs to end", interval=2)
    elapsed = time.monotonic() - t0

    rec = records(postgres, db)
    # every job passed at its first attempt
    assert set(rec["jobs"]) == set(ids)
    lost = [r for r in rec["runs"] if r[3] != 1 or r[4] != "finished"]  # why a first attempt did not count
    assert Counter((state, attempts) for state, attempts, _, _ in rec["jobs"].values()) == {("passed", 1): JOBS}, (
        lost, [(j, *rec["jobs"][j]) for j, *_ in lost], elapsed)
    # exactly one run per job (no job claimed twice), finished by its slave
    per_job = Counter(job_id for job_id, *_ in rec["runs"])
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}, per_job.most_common(3)
    assert {(attempt, end, ended, finished) for _, _, _, attempt, end, ended, finished, _ in rec["runs"]} == {
        (1, "finished", True, True)}
    # one result per run, passed, with the tiny jobuild's value; one log per run, of the size reported
    by_run = Counter(run_id for run_id, *_ in rec["results"])
    assert len(by_run) == JOBS and set(by_run.values()) == {1}
    assert {(index, status, values) for _, _, index, status, values, _ in rec["results"]} == {
        (0, "passed", '{"tiny": "yes"}')}
    assert sorted((run_id, size) for run_id, _, size in rec["logs"]) == sorted(
        (run_id, size) for run_id, _, _, _, _, size in rec["results"])

    # the slaves' side: each job claimed once and passed once, in all four logs together (stopped
    # first: a slave logs a job's end after it told the master)
    assert [s.stop() for s in slaves] == [0] * len(slaves)
    claimed: Counter = Counter()
    passed: Counter = Counter()
    ran_by: dict[str, set[int]] = {}
    said_runs: dict[int, tuple[str, str]] = {}  # job -> (slave, run id prefix) as the slaves logged them
    for s in slaves:
        text = slave_log(s)
        mine = CLAIMED.findall(text)
        ran_by[s.name] = {int(j) for j, _ in mine}
        said_runs.update((int(j), (s.name, run)) for j, run in mine)
        claimed.update(int(j) for j, _ in mine)
        passed.update(int(j) for j, _ in PASSED.findall(text))
        assert " ERROR " not in text, text[-3000:]
    assert set(claimed) == set(ids) and set(claimed.values()) == {1}
    assert passed == claimed
    # the master's record of who ran what, and under which run id, agrees with the slaves' logs
    assert {job_id: (slave, run_uuid[:8]) for job_id, run_uuid, slave, *_ in rec["runs"]} == said_runs
    # all four slaves took part
    assert all(ran_by[s.name] for s in slaves), {n: len(j) for n, j in ran_by.items()}
    # both masters handed out work: each slave talks to one master only
    assert {home[n] for n, j in ran_by.items() if j} == {m.url for m in masters}
    print(f"\n{JOBS} jobs in {elapsed:.0f} s on 2 masters and 4 slaves: "
          + ", ".join(f"{n} {len(j)}" for n, j in sorted(ran_by.items())))
