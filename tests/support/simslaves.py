"""Simulated slaves for the load test: threads that speak the protocol over HTTP (no container), as a real
slave would, and write down what they were told, so the master's records can be checked against it.

Each job a slave claims it runs one way, drawn at random (seeded): ``normal`` (two log chunks and a
result per jobuild, the finish; a heartbeat before any call when the last is a second old, as a real
slave's heartbeat thread does), ``fail`` (its last jobuild fails), ``error`` (an
infrastructure error after the first result: the master requeues the job), ``vanish`` (the slave
goes silent right after the claim, longer than the lease: the lease runs out under it) or ``slow``
(heartbeats for a while between jobuilds, so cancels land on it). Some writes are sent twice, as
after a lost answer: the master must take them once. A ``409 run_over`` or ``404`` ends the slave's
interest in the run (its lease ran out, or the job was cancelled and finished); an ``abort`` answer
is finished as ``cancelled``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.support.slaveclient import SlaveClient

BEHAVIOURS = {"normal": 68, "fail": 8, "error": 6, "vanish": 8, "slow": 10}


def clone_jobs(conn, template_id: int, n: int) -> None:
    """``n`` queued copies of job ``template_id`` (same plan, owner, revision and signers; turns 1 to n, as
    one owner's n jobs get them), straight in SQL."""
    conn.execute("""
        INSERT INTO jobs_job (owner_id, root, arch, stage3, stage3_asked, revision_id, snapshot, snapshot_asked,
                              state, reason, plan, sidepends, warnings, errors, maintainers, signers, priority, turn,
                              attempts, max_attempts, created, validated, queued, parameters)
        SELECT owner_id, root, arch, stage3, stage3_asked, revision_id, snapshot, snapshot_asked, 'queued', '',
               plan, sidepends, warnings, errors, maintainers, signers, 0, n, 0, max_attempts, now(), now(), now(),
               parameters
        FROM jobs_job, generate_series(1, %s) AS n WHERE id = %s""", (n, template_id))
    conn.execute("ANALYZE jobs_job")


@dataclass
class Ledger:
    """What the simulated slaves did and were told (every field under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    claims: list[tuple[str, str, int, int]] = field(default_factory=list)  # slave, run, job, attempt
    log_acked: dict[tuple[str, int], int] = field(default_factory=dict)    # (run, index) -> offset answered
    results_acked: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    finishes: dict[str, tuple[str, str]] = field(default_factory=dict)     # run -> (status sent, job state answered)
    decided: dict[str, str] = field(default_factory=dict)  # run -> job state a result's answer said finished it
    abandoned: set[str] = field(default_factory=set)                       # runs answered run_over / not found
    aborted: set[str] = field(default_factory=set)                         # runs told to abort (a cancel)
    behaviours: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: list[str] = field(default_factory=list)
    surprises: list[str] = field(default_factory=list)                     # answers the protocol does not allow
    repeats: int = 0

    def note(self, what: str, text: str) -> None:
        with self.lock:
            (self.server_errors if what == "5xx" else self.surprises).append(text)


class Over(Exception):
    """The master says the run is over for this slave (409 run_over, or 404)."""


class SimSlave(threading.Thread):
    def __init__(self, n: int, url: str, token: str, ledger: Ledger, stop: threading.Event, *, lease: float,
                 doomed, seed: int):
        super().__init__(name=f"sim-slave-{n}", daemon=True)
        self.name_ = f"sim{n}"
        self.client = SlaveClient(url, token, self.name_)
        self.ledger = ledger
        self.stop = stop
        self.lease = lease
        self.doomed = doomed  # job id -> True when this job always errors (it must end in error)
        self.rng = random.Random(seed)
        self.last_beat = 0.0

    # -- calls ------------------------------------------------------------------------------------------
    def call(self, kind: str, fn, *args, **kw):
        t = time.perf_counter()
        r = fn(*args, **kw)
        dt = time.perf_counter() - t
        with self.ledger.lock:
            self.ledger.requests[kind] += 1
            self.ledger.latency[kind].append(dt)
        if r.status_code >= 500:
            self.ledger.note("5xx", f"{kind}: {r.status_code} {r.text[:300]}")
        return r

    def expect(self, kind: str, r, *ok: int):
        """The answer when its status is one of ``ok``; Over for run_over/not found; else noted."""
        if r.status_code in ok:
            return r.json()
        if r.status_code == 404 or (r.status_code == 409 and r.json().get("code") == "run_over"):
            raise Over(kind)
        self.ledger.note("surprise", f"{kind}: {r.status_code} {r.text[:300]}")
        raise Over(kind)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop.is_set():
            r = self.call("claim", self.client.claim, str(uuid.uuid4()))
            if r.status_code != 200:
                self.ledger.note("5xx" if r.status_code >= 500 else "surprise", f"claim: {r.status_code}")
                self.stop.wait(0.5)
                continue
            body = r.json()
            if not body.get("run"):
                self.stop.wait(0.3)
                continue
            with self.ledger.lock:
                self.ledger.claims.append((self.name_, body["run"], body["job"]["id"], body["job"]["attempt"]))
            try:
                self.work(body)
            except Over:
                with self.ledger.lock:
                    self.ledger.abandoned.add(body["run"])

    def beat(self, run: str, every: float = 0.0) -> None:
        """A heartbeat (when the last is at least ``every`` seconds old); an abort finishes the run."""
        if time.monotonic() - self.last_beat < every:
            return
        self.last_beat = time.monotonic()
        answer = self.expect("heartbeat", self.call("heartbeat", self.client.heartbeat, run), 200)
        if answer["action"] == "abort":
            self.finish(run, "cancelled", f"aborted: {answer.get('reason')}")
            raise Over("abort")

    def finish(self, run: str, status: str, reason: str = "") -> None:
        answer = self.expect("finish", self.call("finish", self.client.finish, run, status, reason), 200)
        if self.rng.random() < 0.2:  # the answer was "lost": the same finish again, the same answer
            again = self.expect("finish", self.call("finish", self.client.finish, run, status, reason), 200)
            self._same("finish", answer, again)
        with self.ledger.lock:
            self.ledger.finishes[run] = (status, answer["job"]["state"])
            if status == "cancelled":
                self.ledger.aborted.add(run)

    def _same(self, kind: str, a, b) -> None:
        with self.ledger.lock:
            self.ledger.repeats += 1
        if a != b:
            self.ledger.note("surprise", f"{kind} repeated: {a} then {b}")

    def work(self, claimed: dict) -> None:
        run, job = claimed["run"], claimed["job"]
        plan = job["plan"]
        how = "error" if self.doomed(job["id"]) else self.rng.choices(list(BEHAVIOURS), list(BEHAVIOURS.values()))[0]
        with self.ledger.lock:
            self.ledger.behaviours[how] += 1
        if how == "vanish":  # silent past the lease: no heartbeat, no finish
            self.stop.wait(self.lease + 1.5)
            return
        self.last_beat = time.monotonic()  # the claim started the lease
        for e in plan:
            i = e["index"]
            self.beat(run, 1.0)
            if how == "slow":
                for _ in range(4):
                    time.sleep(0.4)
                    self.beat(run)
            text = "".join(f"{run} jobuild {i} line {n:04d}\n" for n in range(40)).encode()
            offset = 0
            for k, chunk in enumerate((text[:900], text[900:])):
                self.beat(run, 1.0)
                answer = self.expect("log", self.call("log", self.client.log, run, i, offset, chunk), 202)
                if k == 0 and self.rng.random() < 0.3:
                    again = self.expect("log", self.call("log", self.client.log, run, i, offset, chunk), 202)
                    self._same("log", answer, again)
                offset = answer["offset"]
                with self.ledger.lock:
                    self.ledger.log_acked[(run, i)] = offset
            if how == "error":
                self.finish(run, "error", "simulated: the stage3 mirror is down")
                return
            status = "failed" if how == "fail" and i == len(plan) - 1 else "passed"
            body = {"log_size": offset, "results": {"jobuild": str(i), "slave": self.name_}}
            self.beat(run, 1.0)
            answer = self.expect("result", self.call("result", self.client.result, run, i, status, **body), 200)
            if self.rng.random() < 0.2:
                again = self.expect("result", self.call("result", self.client.result, run, i, status, **body), 200)
                if again["action"] != answer["action"] and again["action"] != "abort":  # a cancel may come between
                    self.ledger.note("surprise", f"result repeated: {answer} then {again}")
            with self.ledger.lock:
                self.ledger.results_acked[run].add(i)
                if answer.get("finished"):  # this result decided the job (the finish below is an old slave's)
                    self.ledger.decided[run] = answer["job"]["state"]
            if answer["action"] == "abort":
                self.finish(run, "cancelled", f"aborted: {answer.get('reason')}")
                return
            if status == "failed":
                self.finish(run, "failed", f"{e['jobuild']} failed in src_test")
                return
        self.beat(run, 1.0)
        self.finish(run, "passed")
