"""Long-poll claims on PostgreSQL under gunicorn (issue 14): eight slaves waiting on two masters that
share one database get a new job within a second, exactly once (LISTEN/NOTIFY wakes every master's
waiters); a slave naming whom it trusts is handed jobs by the database's own filter; and a graceful
stop answers every waiting claim at once instead of waiting out its long-poll."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
import uuid

import pytest
import requests

from tests.support.slaveclient import SlaveClient

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_masters(postgres, live_master, sample, keys):
    """``make(n, pools=(...), **settings)``: n gunicorn masters on one new PostgreSQL database (master i
    with AUTOTUA_DATABASE_POOL=pools[i]), maintainers made."""
    def make(n: int = 1, pools=(), **settings):
        url = postgres.createdb(f"lp_{uuid.uuid4().hex[:10]}")
        masters = [live_master(sample.branch, database_url=url, workers=2, threads=8, migrate=i == 0,
                               DATABASE_POOL=pools[i] if i < len(pools) else 0, **settings) for i in range(n)]
        tokens = {u: masters[0].add_maintainer(u, keys[u]) for u in ("alice", "bob")}
        for m in masters:
            m.tokens = tokens
        return masters
    return make


class Waiting(threading.Thread):
    """A slave that long-polls as autotua-slave does, and notes when it got which job."""

    def __init__(self, url: str, token: str, stop: threading.Event, **claim):
        super().__init__(daemon=True)
        self.client = SlaveClient(url, token)
        self.stop_ = stop
        self.claim = claim
        self.got: list[tuple[float, int]] = []
        self.polls = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_.is_set():
            try:
                r = self.client.claim(wait=30, timeout=60, **self.claim)
            except requests.RequestException as e:
                self.errors.append(str(e))
                self.stop_.wait(0.5)
                continue
            self.polls += 1
            body = r.json()
            if body.get("job"):
                self.got.append((time.monotonic(), body["job"]["id"]))
                self.client.run_through(body)
            elif body.get("retry_after"):
                self.stop_.wait(float(body["retry_after"]))


def create(m, root: str, user: str = "alice", **body) -> dict:
    r = m.person_session(m.tokens[user]).post(m.url + "/api/v1/jobs/", json={"root": root, **body}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()


def test_eight_slaves_on_two_masters_get_a_new_job_within_a_second_exactly_once(pg_masters):
    """Four slaves wait on each master: the first master's serve openrc, the second's systemd, so a job
    made through one master for the other's slaves reaches them only through PostgreSQL's NOTIFY."""
    masters = pg_masters(2, pools=(0, 4))  # one with a connection per thread, one with a pool
    tokens = [masters[0].add_slave(f"lp{i}") for i in range(8)]
    for m in masters:
        m.start(timeout=120)
    stop = threading.Event()
    slaves = [Waiting(masters[i % 2].url, t, stop, flavours=("openrc",) if i % 2 == 0 else ("systemd",))
              for i, t in enumerate(tokens)]
    for s in slaves:
        s.start()
    latencies = []
    try:
        time.sleep(3)  # every slave holds a long-poll
        assert all(s.polls == 0 for s in slaves), [s.polls for s in slaves]  # none answered: they wait
        for n, (through, flavour) in enumerate([(0, "systemd"), (1, "openrc"), (0, "openrc"), (1, "systemd")]):
            asked = time.monotonic()
            made = create(masters[through], "alice/toolchain-sanity", stage3=flavour)
            created = time.monotonic()  # its 201 (the job was committed before: a claim may come first)
            deadline = created + 10
            while sum(len(s.got) for s in slaves) <= n and time.monotonic() < deadline:
                time.sleep(0.01)
            got = sorted((t, i) for i, s in enumerate(slaves) for t, _ in s.got)
            assert len(got) == n + 1, f"job {n}: {len(got)} claims"
            latencies.append((got[-1][0] - asked, got[-1][0] - created))
            assert got[-1][0] - created < 1.0, f"job {n} claimed {got[-1][0] - created:.2f} s after it was made"
            assert got[-1][1] % 2 == (0 if flavour == "openrc" else 1)  # by a slave of the other master, or its own
            assert any(j == made["id"] for s in slaves for _, j in s.got)
        time.sleep(1)
        jobs = [j for s in slaves for _, j in s.got]
        assert len(jobs) == len(set(jobs)) == 4  # exactly once each
        assert not [e for s in slaves for e in s.errors]
        print("\nclaimed (ms after the job was asked for / after its 201): "
              + ", ".join(f"{a * 1000:.0f}/{b * 1000:.0f}" for a, b in latencies))
    finally:
        stop.set()


def test_trust_is_filtered_by_postgresql(pg_masters, keys):
    [m] = pg_masters(1)
    token = m.add_slave("trusty")
    m.start(timeout=120)
    bobs = create(m, "bob/fail-on-purpose", "bob")
    alices = create(m, "alice/toolchain-sanity", "alice")
    client = SlaveClient(m.url, token)
    got = client.claim(trust=[keys["alice"]]).json()
    assert got["job"]["id"] == alices["id"]  # past bob's older job
    client.run_through(got)
    assert client.claim(trust=[keys["alice"]]).json()["run"] is None
    assert client.claim(trust=[keys["alice"], keys["bob"]]).json()["job"]["id"] == bobs["id"]


def test_a_graceful_stop_answers_every_long_poll_at_once(pg_masters):
    [m] = pg_masters(1, graceful_timeout=30)
    tokens = [m.add_slave(f"held{i}") for i in range(6)]
    m.start(timeout=120)
    answers: list[tuple[float, int, dict]] = []

    def hold(token: str) -> None:
        r = SlaveClient(m.url, token).claim(wait=30, timeout=60)
        answers.append((time.monotonic(), r.status_code, r.json()))

    threads = [threading.Thread(target=hold, args=(t,), daemon=True) for t in tokens]
    for t in threads:
        t.start()
    time.sleep(2)
    assert not answers  # all held
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGTERM)
    m.proc.wait(25)
    stopped = time.monotonic() - t0
    for t in threads:
        t.join(5)
    assert len(answers) == len(tokens)
    assert {(code, body["run"], body["retry_after"]) for _, code, body in answers} == {(200, None, 1)}
    assert max(t for t, _, _ in answers) - t0 < 3, "the long-polls were not answered at once"
    assert stopped < 10, f"gunicorn took {stopped:.1f} s to stop (its graceful timeout is 30 s)"


def test_a_long_poll_whose_slave_went_away_claims_nothing(pg_masters):
    """A slave stopped (or killed) mid-poll leaves its request held on the master; woken for a new job,
    that request would take it under a lease nobody keeps, and the job would wait out the lease. The
    job goes to a slave that is there."""
    [m] = pg_masters(1)
    gone_token, there_token = m.add_slave("gone"), m.add_slave("there")
    m.start(timeout=120)
    host, port = m.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/api/v1/claim", json.dumps({"run": str(uuid.uuid4()), "arch": "amd64",
                                                      "flavours": ["openrc"]}),
                 {"Authorization": f"Slave {gone_token}", "Content-Type": "application/json", "Prefer": "wait=30"})
    time.sleep(2)  # held: the slave's claim waits on the master
    conn.close()   # and the slave goes away
    time.sleep(0.5)
    made = create(m, "alice/toolchain-sanity")
    time.sleep(1.5)  # the held request, woken, has had its chance to take the job
    job = m.person_session(m.tokens["alice"]).get(f"{m.url}/api/v1/jobs/{made['id']}/", timeout=60).json()
    assert job["state"] == "queued" and not job["runs"], job
    got = SlaveClient(m.url, there_token).claim().json()
    assert got["job"]["id"] == made["id"], got


def test_a_client_that_closed_its_sending_half_is_answered_not_to_ask_again_at_once(pg_masters):
    """Such a client looks gone (POLLRDHUP) but may still read: its long-poll ends, and the answer
    tells it to wait AUTOTUA_RETRY_AFTER, so it cannot spin asking again at once."""
    [m] = pg_masters(1, RETRY_AFTER=17)
    token = m.add_slave("half")
    m.start(timeout=120)
    host, port = m.url.removeprefix("http://").split(":")
    body = json.dumps({"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"]}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Slave {token}\r\nPrefer: wait=30\r\nConnection: close\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(payload) == {"run": None, "retry_after": 17}
    assert time.monotonic() - t0 < 10  # not held for its 30 s
