"""On PostgreSQL, through gunicorn: claims from many threads at once, lease expiry, and SIDEPEND
results arriving at the same moment. The suite starts its own cluster (tests.support.postgres)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from tests.support.postgres import wait_for
from tests.support.slaveclient import SlaveClient

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_master(postgres, live_master, sample, keys, request):
    def make(tree=None, **settings):
        url = postgres.createdb(f"t_{uuid.uuid4().hex[:10]}")
        m = live_master(tree or sample.branch, database_url=url, workers=2, threads=8, **settings)
        m.tokens = {u: m.add_maintainer(u, keys[u]) for u in ("alice", "bob", "carol")}
        return m
    return make


def create(m, root: str, user: str = "alice") -> dict:
    r = m.person_session(m.tokens[user]).post(m.url + "/api/v1/jobs/", json={"root": root})
    assert r.status_code == 201, r.text
    return r.json()


def test_many_threads_claim_no_double_claims(pg_master):
    m = pg_master()
    tokens = [m.add_slave(f"box{i}") for i in range(20)]
    m.start()
    # 60 queued jobs, made straight from the command line in one process
    m.manage("shell", "-c", "from autotua_master.jobs.models import Job\n"
             "[Job.objects.create_job(root='alice/toolchain-sanity') for _ in range(60)]")
    barrier = threading.Barrier(len(tokens))
    claimed: list[tuple[str, int]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def slave(token: str) -> None:
        client = SlaveClient(m.url, token)
        barrier.wait()
        for _ in range(10):
            r = client.claim()
            if r.status_code != 200:
                errors.append(r.text)
                return
            body = r.json()
            if body["run"] is None:
                return
            with lock:
                claimed.append((token, body["job"]["id"]))
            assert client.finish(body["run"], "failed", "x").status_code == 200

    threads = [threading.Thread(target=slave, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    counts = Counter(job for _, job in claimed)
    assert len(counts) == 60 and max(counts.values()) == 1, counts.most_common(3)
    assert len({tok for tok, _ in claimed}) > 1  # the work really was shared


def test_lease_expiry_requeues_then_errors(pg_master):
    m = pg_master(LEASE_SECONDS=1, MAX_ATTEMPTS=2)
    a, b = SlaveClient(m.url, m.add_slave("a")), SlaveClient(m.url, m.add_slave("b"))
    m.start()
    job = create(m, "alice/toolchain-sanity")
    first = a.claim().json()
    assert first["job"]["attempt"] == 1
    time.sleep(1.5)
    assert m.manage("sweepleases").strip() == "1 expired run(s) swept"
    assert a.heartbeat(first["run"]).json()["code"] == "run_over"
    second = b.claim().json()
    assert second["job"]["id"] == job["id"] and second["job"]["attempt"] == 2
    time.sleep(1.5)
    assert a.claim().json()["run"] is None  # the lazy sweep on claim: past its attempts, error
    state = requests.get(m.url + f"/api/v1/jobs/{job['id']}/").json()
    assert state["state"] == "error" and "lost slave: lease expired" in state["reason"]
    assert b.result(second["run"], 0).status_code == 409


def test_simultaneous_sidepend_results(pg_master, tree_writer, make_branch):
    """Each round: a job waits on two SIDEPENDs whose providers pass at the same moment on two slaves;
    it must be queued exactly once, every round (no lost wake-up, no double queueing)."""
    rounds = 6
    for i in range(rounds):
        tree_writer.jobuild(f"carol/left{i}-1")
        tree_writer.jobuild(f"carol/right{i}-1")
        tree_writer.jobuild(f"carol/top{i}-1", f'SIDEPEND="carol/left{i} carol/right{i}"')
        tree_writer.jobuild(f"carol/also{i}-1", f'SIDEPEND="carol/right{i}"')
    m = pg_master(tree=make_branch(tree_writer.root))
    slaves = [SlaveClient(m.url, m.add_slave(f"s{i}")) for i in range(2)]
    m.start()
    for i in range(rounds):
        top = create(m, f"carol/top{i}", "carol")
        also = create(m, f"carol/also{i}", "carol")
        assert top["state"] == also["state"] == "waiting"
        claims = [s.claim().json() for s in slaves]
        assert {c["job"]["root"] for c in claims} == {f"=carol/left{i}-1", f"=carol/right{i}-1"}
        barrier = threading.Barrier(2)
        answers = []

        def report(s, c, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(s.result(c["run"], 0).status_code)

        ts = [threading.Thread(target=report, args=(s, c)) for s, c in zip(slaves, claims, strict=True)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert answers == [200, 200]
        for job in (top, also):
            state = wait_for(lambda j=job: requests.get(m.url + f"/api/v1/jobs/{j['id']}/").json()["state"]
                             != "waiting", timeout=10)
            assert state, f"round {i}: job {job['root']} was left waiting"
            assert requests.get(m.url + f"/api/v1/jobs/{job['id']}/").json()["state"] == "queued"
        for s, c in zip(slaves, claims, strict=True):
            assert s.finish(c["run"], "passed").status_code == 200
        # drain the two queued dependents so the next round starts clean
        for _ in range(2):
            c = slaves[0].claim().json()
            slaves[0].run_through(c, "passed")
    jobs = requests.get(m.url + "/api/v1/jobs/?limit=500").json()["results"]
    assert Counter(j["state"] for j in jobs) == {"passed": rounds * 4}


def test_a_cancel_while_a_slave_finishes_is_no_deadlock(pg_master, postgres):
    """A finish (and a sweep) lock the run, then its job; a cancel that locked the job first and then
    the run deadlocked with them, and PostgreSQL aborted the cancel: a 500 to the maintainer. Found
    while writing the load test (tests/reliability/test_load.py), where it is a matter of timing;
    here the finish's first lock is held by hand, so it happens every time."""
    m = pg_master()
    slave = SlaveClient(m.url, m.add_slave("a"))
    m.start()
    job = create(m, "alice/toolchain-sanity")
    run = slave.claim().json()["run"]
    dbname = m.env["AUTOTUA_DATABASE_URL"].split("?")[0].rsplit("/", 1)[1]
    answer: list[requests.Response] = []
    cancel = threading.Thread(target=lambda: answer.append(m.person_session(m.tokens["alice"]).post(
        f"{m.url}/api/v1/jobs/{job['id']}/cancel", json={"reason": "now"}, timeout=60)))
    with postgres.connect(dbname) as conn, postgres.connect(dbname, autocommit=True) as watch:
        conn.execute("SELECT id FROM jobs_run WHERE uuid = %s FOR UPDATE", (run,))  # as a finish does first
        cancel.start()
        assert wait_for(lambda: watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                              "wait_event_type = 'Lock'", (dbname,)).fetchone()[0], timeout=30)
        conn.execute("SELECT id FROM jobs_job WHERE id = %s FOR UPDATE", (job["id"],))  # then its job
        conn.commit()
    cancel.join(60)
    assert answer[0].status_code == 200, answer[0].text
    assert requests.get(m.url + f"/api/v1/jobs/{job['id']}/").json()["state"] == "cancelled"


def _statements(postgres, dbname: str) -> list[tuple[str, int]]:
    """What the master sent to ``dbname`` since the last reset (pg_stat_statements), without its
    connection's set-up and the foreign key checks its statements made inside the server."""
    with postgres.connect(dbname, autocommit=True) as conn:  # (else this one's BEGIN is counted)
        rows = conn.execute("SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                            " WHERE d.datname = %s", (dbname,)).fetchall()
    return [(q, n) for q, n in rows if not q.startswith(("SET ", "SHOW ", "SELECT VERSION()", "SELECT pg_stat"))
            and " FOR KEY SHARE OF x" not in q]


def _reset(postgres, dbname: str) -> None:
    with postgres.connect(dbname, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = %s), 0)",
                     (dbname,))


def test_a_claim_of_a_slave_that_holds_no_run_is_one_statement_without_a_transaction(postgres, live_master,
                                                                                      sample, keys):
    """The common claim: one statement, the slave's lookup in it, committed on its own (no BEGIN, no
    COMMIT). A slave that still holds a run (it restarted) has it ended in the same transaction as its
    claim, so that claim has one."""
    dbname = f"t_{uuid.uuid4().hex[:10]}"
    m = live_master(sample.branch, database_url=postgres.createdb(dbname), workers=1, threads=2,
                    SWEEP_SECONDS=3600)  # the first claim sweeps; none of the claims measured is due to
    alice = m.person_session(m.add_maintainer("alice", keys["alice"]))
    client = SlaveClient(m.url, m.add_slave("box1"))
    m.start()
    with postgres.connect(dbname, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    assert client.claim().json()["run"] is None  # it sweeps, and records that the slave was seen
    for _ in range(2):
        assert alice.post(m.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"}).status_code == 201

    _reset(postgres, dbname)
    first = client.claim().json()
    assert first["run"] is not None
    ran = _statements(postgres, dbname)
    assert not [q for q, _ in ran if q.upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT"))], ran
    assert sum(n for _, n in ran) == 1, ran  # the claim, the slave's lookup in it
    assert [n for q, n in ran if "SKIP LOCKED" in q] == [1], ran

    _reset(postgres, dbname)
    second = client.claim().json()  # a new run id while the first is live: as a slave that restarted
    assert second["run"] is not None
    ran = _statements(postgres, dbname)
    assert sorted((q.upper(), n) for q, n in ran if q.upper() in ("BEGIN", "COMMIT")) == [("BEGIN", 1),
                                                                                         ("COMMIT", 1)], ran
    runs = requests.get(m.url + f"/api/v1/jobs/{first['job']['id']}/", timeout=30).json()["runs"]
    assert {r["uuid"]: r["end"] for r in runs}[first["run"]] == "superseded", runs


def test_a_sidepend_provider_taken_by_a_claim_on_its_own_pipelines_the_jobs_waiting_on_it(postgres, live_master,
                                                                                         sample, keys):
    """The common claim commits by itself; the jobs waiting on the provider it took are queued after it
    (pipelined), in a transaction of their own."""
    m = live_master(sample.branch, database_url=postgres.createdb(f"t_{uuid.uuid4().hex[:10]}"), workers=1,
                    threads=2, SWEEP_SECONDS=3600)  # the first claim sweeps (a transaction); the next are due to none
    bob = m.person_session({u: m.add_maintainer(u, keys[u]) for u in ("alice", "bob")}["bob"])
    provider_slave, waiter_slave = SlaveClient(m.url, m.add_slave("provider-box")), \
        SlaveClient(m.url, m.add_slave("waiter-box"))
    m.start()
    assert waiter_slave.claim().json()["run"] is None  # the sweep
    r = bob.post(m.url + "/api/v1/jobs/", json={"root": "bob/integration"})
    assert r.status_code == 201 and r.json()["state"] == "waiting", r.text
    integration = r.json()
    provider = provider_slave.claim().json()
    assert provider["job"]["id"] == integration["sidepends"][0]["provider"]
    job = requests.get(m.url + f"/api/v1/jobs/{integration['id']}/", timeout=30).json()
    assert job["state"] == "queued" and job["reason"].startswith("pipelined: SIDEPEND alice/hello-suite-1.1"), job
    assert waiter_slave.claim().json()["job"]["id"] == integration["id"]


def test_a_claim_judges_who_asks_before_it_takes_a_job_or_says_what_is_wrong_with_the_body(postgres, live_master,
                                                                                          sample, keys):
    """The claim checks the slave's token in its own statement (one round trip), yet answers as every
    slave call: an unknown token or a wrong secret 401, a pending or revoked slave 403, a person's
    token 403 — each before a word on the body (a bad body is a 400 only for an active slave) — and
    none of them takes the queued job."""
    dbname = f"t_{uuid.uuid4().hex[:10]}"
    m = live_master(sample.branch, database_url=postgres.createdb(dbname), workers=1, threads=2,
                    SWEEP_SECONDS=3600)
    alice_token = m.add_maintainer("alice", keys["alice"])
    alice = m.person_session(alice_token)
    good = m.add_slave("box1")
    m.start()
    assert SlaveClient(m.url, good).claim().json()["run"] is None  # the worker's one sweep
    pending = requests.post(m.url + "/api/v1/slaves/register", timeout=30, json={
        "name": "newbox", "arch": "amd64", "flavours": ["openrc"], "version": "0.1.0"}).json()["token"]
    revoked = m.add_slave("oldbox")
    m.manage("shell", "-c", "from autotua_master.slaves.models import Slave\n"
             "Slave.objects.filter(name='oldbox').update(state='revoked')")
    r = alice.post(m.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"})
    assert r.status_code == 201, r.text
    job_url = m.url + f"/api/v1/jobs/{r.json()['id']}/"
    slave_id = good.split("_", 1)[0]
    body = {"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"]}
    bad_body = {"run": "not a uuid", "arch": "amd64", "flavours": []}

    def claim(authorization: str, payload: dict) -> requests.Response:
        return requests.post(m.url + "/api/v1/claim", json=payload, headers={"Authorization": authorization},
                             timeout=30)

    cells = [("Slave s999999_" + "x" * 43, body, 401), (f"Slave {slave_id}_wrongsecret", body, 401),
             (f"Slave {slave_id}_wrongsecret", bad_body, 401), (f"Slave {pending}", body, 403),
             (f"Slave {pending}", bad_body, 403), (f"Slave {revoked}", body, 403), (f"Token {alice_token}", body, 403),
             ("Slave garbage", body, 401), (f"Slave {good}", bad_body, 400)]
    for authorization, payload, status in cells:
        r = claim(authorization, payload)
        assert r.status_code == status, (authorization[:20], payload, r.status_code, r.text)
        if status == 401:
            assert r.headers.get("WWW-Authenticate") == "Slave", r.headers
        job = requests.get(job_url, timeout=30).json()
        assert job["state"] == "queued" and job["runs"] == [], (authorization[:20], job)
    r = claim(f"Slave {good}", body)
    assert r.status_code == 200 and r.json()["job"]["id"] == requests.get(job_url, timeout=30).json()["id"], r.text
    assert claim(f"Slave {good}", body).json()["run"] == body["run"]  # a repeat: the same run
    other = m.add_slave("box2")
    r = claim(f"Slave {other}", body)  # another slave's run id
    assert r.status_code == 409 and "not a new id" in r.text, r.text
    alice.post(m.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"})
    r = claim(f"Slave {other}", body)  # the id is still taken, with a job to take: refused, nothing taken
    assert r.status_code == 409, r.text
    r = claim(f"Slave {other}", {**body, "run": str(uuid.uuid4())})
    assert r.status_code == 200 and r.json()["run"] is not None, r.text
