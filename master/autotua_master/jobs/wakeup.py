"""Waking the requests that wait (long-polls) when what they wait for happens, on every master process.

Two kinds of request wait: a claim with nothing to do (for a job it can run to be queued), and a
result answered ``wait`` (for the SIDEPEND its next jobuild needs to pass, fail, or stop running).
Each waiting request is a :class:`Waiter` in its process's :data:`registry`, holding no database
connection while it waits.

Whoever queues a job or changes a SIDEPEND calls :func:`announce_job` or :func:`announce_sidepend`
inside its transaction. On PostgreSQL that is a ``NOTIFY``, delivered at commit to every process
that ``LISTEN``\\s — several gunicorn workers, several master hosts on one database — each through
one listener thread on a connection of its own, which wakes its matching waiters: for a job, the one
that has waited longest among those that can run it (its arch, flavour and trust); for a SIDEPEND,
the runs waiting on it. On SQLite an announcement wakes this process's waiters at commit, and the
waiters of other processes look again every second (a master on SQLite is one small machine).

A woken claim may find the job taken by another process: it waits on. A wake-up that finds no waiter
asleep is kept by a matching one busy claiming, which looks again at once. Nothing is lost when a
wake-up is: the long-poll ends within its bound and the slave asks again.

A waiter whose client went away (a slave stopped or killed mid-poll) is never woken for a job and ends
at its next look: a claim nobody will read would hold the job under a lease until it ran out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import connection, transaction

from autotua_master.sockets import peer_gone

log = logging.getLogger(__name__)

CHANNEL = "autotua_dispatch"
#: seconds between looks of a waiter on SQLite (no notifications across processes there)
SQLITE_RECHECK = 1.0


@dataclass(eq=False)
class Waiter:
    """One waiting request: a claim (``arch``, ``flavours``, ``trust``) or a run's wait (``sidepends``),
    from ``client`` (the request's socket, when the server names it: gunicorn does)."""

    arch: str = ""
    flavours: frozenset[str] = frozenset()
    trust: frozenset[str] | None = None
    sidepends: frozenset[int] = frozenset()
    deadline: float = 0.0
    since: float = field(default_factory=time.monotonic)
    event: threading.Event = field(default_factory=threading.Event)
    asleep: bool = False
    #: False when the process holds as many waiters as it may: the request is answered at once
    held: bool = True
    client: object = None
    #: it ended because its client closed the connection (or only its sending half)
    left: bool = False

    def gone(self) -> bool:
        """Its client closed the connection: nobody will read the answer."""
        return self.client is not None and peer_gone(self.client)

    def wants_job(self, arch: str, stage3: str, signers: frozenset[str]) -> bool:
        return (not self.sidepends and self.arch == arch and stage3 in self.flavours
                and (self.trust is None or signers <= self.trust))

    def sleep(self) -> bool:
        """Wait to be woken, at most until the deadline. True: look again (woken, or on SQLite every
        second); False: the time is up, the master is stopping, or the client went away."""
        return registry.sleep(self)


class Registry:
    """The waiters of this process, and what wakes them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiters: list[Waiter] = []  # oldest first
        self.limit: int | None = None    # most waiters at once (gunicorn: its threads less a reserve)
        self.stopping = False
        self.listener: Listener | None = None

    def configure(self, limit: int | None) -> None:
        self.limit = limit

    def can_hold(self, seconds: float) -> bool:
        """Whether a request asking to wait ``seconds`` would be held now (not when the process holds as
        many as it may, or stops)."""
        return seconds > 0 and not self.stopping and (self.limit is None or len(self.waiters) < self.limit)

    @contextlib.contextmanager
    def waiting(self, seconds: float, **what):
        """A :class:`Waiter` for ``seconds`` (0: one that never sleeps), registered before the caller
        first looks, so that nothing queued meanwhile is missed."""
        waiter = Waiter(deadline=time.monotonic() + seconds, **what)
        with self.lock:
            waiter.held = self.can_hold(seconds)
            if waiter.held:
                self.waiters.append(waiter)
        if waiter.held and connection.vendor == "postgresql":
            self._listen()
        try:
            yield waiter
        finally:
            with self.lock, contextlib.suppress(ValueError):
                self.waiters.remove(waiter)

    def sleep(self, waiter: Waiter) -> bool:
        remaining = waiter.deadline - time.monotonic()
        if not waiter.held or self.stopping or remaining <= 0:
            return False
        if not connection.in_atomic_block:
            connection.close()  # an idle long-poll holds no database connection
        notified = connection.vendor == "postgresql"
        with self.lock:
            waiter.asleep = True
        woken = waiter.event.wait(remaining if notified else min(remaining, SQLITE_RECHECK))
        with self.lock:
            waiter.asleep = False
            waiter.event.clear()
        if self.stopping:
            return False
        if waiter.gone():
            waiter.left = True
            return False
        return woken or (not notified and time.monotonic() < waiter.deadline)

    # -- waking ---------------------------------------------------------------------------------------
    def deliver(self, payload: str) -> None:
        """An announcement (:func:`announce_job`, :func:`announce_sidepend`, or ``all``)."""
        kind, _, rest = payload.partition(" ")
        if kind == "job":
            arch, stage3, _job, signers = [*rest.split(" "), "", "", "", ""][:4]
            self.wake_job(arch, stage3, frozenset(s for s in signers.split(",") if s and s != "-"))
        elif kind == "sidepend":
            with contextlib.suppress(ValueError):
                self.wake_sidepend(int(rest))
        elif kind == "all":
            self.wake_all()

    def wake_job(self, arch: str, stage3: str, signers: frozenset[str]) -> None:
        """Wake the longest-waiting claim that can take such a job (or, none asleep, one busy looking)."""
        with self.lock:
            able = [w for w in self.waiters if w.wants_job(arch, stage3, signers)]
            # a departed waiter is passed over (asked only of the candidates, in order)
            chosen = (next((w for w in able if w.asleep and not w.event.is_set() and not w.gone()), None)
                      or next((w for w in able if not w.gone()), None))
            if chosen is not None:
                chosen.event.set()

    def wake_sidepend(self, provision: int) -> None:
        with self.lock:
            for w in self.waiters:
                if provision in w.sidepends:
                    w.event.set()

    def wake_all(self) -> None:
        with self.lock:
            for w in self.waiters:
                w.event.set()

    def shutdown(self) -> None:
        """The process is stopping: every waiter is answered now (gunicorn's graceful stop)."""
        self.stopping = True
        self.wake_all()
        if self.listener:
            self.listener.stop()

    def _listen(self) -> None:
        with self.lock:
            if self.listener is None or not self.listener.is_alive():
                self.listener = Listener(self, listen_params())
                self.listener.start()


#: this process's waiters
registry = Registry()


def listen_params() -> dict:
    """libpq parameters of the default database, for a connection of the listener's own."""
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return params


class Listener(threading.Thread):
    """``LISTEN`` on a connection of its own; every notification is delivered to the registry. After
    a lost connection it connects again and wakes every waiter (something may have been missed)."""

    def __init__(self, target: Registry, params: dict):
        super().__init__(name="autotua-listener", daemon=True)
        self.target = target
        self.params = params
        self.halt = threading.Event()
        self.ready = threading.Event()

    def stop(self) -> None:
        self.halt.set()

    def run(self) -> None:
        import psycopg

        while not self.halt.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.target.wake_all()
                    self.ready.set()
                    while not self.halt.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.target.deliver(note.payload)
            except psycopg.Error as e:
                self.ready.clear()
                log.warning("long-poll listener: %s; connecting again in 1 s", e)
                self.halt.wait(1.0)


# -- announcing (inside the transaction that makes the change) -----------------------------------------
def announce(payload: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    else:
        transaction.on_commit(lambda: registry.deliver(payload))


def announce_job(job) -> None:
    """``job`` was queued (the job's id keeps PostgreSQL from folding two jobs' announcements in one)."""
    announce(f"job {job.arch} {job.stage3} {job.pk} {','.join(job.signers) or '-'}")


def announce_sidepend(provision_id: int) -> None:
    """A SIDEPEND provision passed, failed, or its provider stopped running."""
    announce(f"sidepend {provision_id}")
