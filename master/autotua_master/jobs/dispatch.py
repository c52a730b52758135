"""Handing jobs to slaves: the claim, the sweep of expired leases, and how long a request may wait.

A claim takes the first queued job the slave can run — its arch, one of its flavours, every signer
trusted by it when it says whom it trusts — in the order of fair shares and priorities
(:data:`~.models.job.CLAIM_ORDER`), atomically: PostgreSQL takes the row with ``FOR UPDATE SKIP LOCKED``
(concurrent claims skip each other's rows, nobody waits), SQLite runs every write transaction as
``BEGIN IMMEDIATE`` (claims are serial). A repeated claim (same run id) returns the same run.

A claim with nothing to do may wait for a job (a long-poll: :mod:`.wakeup`) when the slave asks for it
with ``Prefer: wait=<seconds>`` (RFC 7240), at most ``AUTOTUA_LONGPOLL_SECONDS``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from autotua import faults
from autotua_master import rows
from autotua_master.tree.models import Revision

from .errors import Conflict, RunOver
from .models import Job, JobState, Run
from .models.job import CLAIM_ORDER
from .models.run import lease_seconds
from .models.states import RunEnd

_PREFER_WAIT = re.compile(r"(?:^|[,;]\s*)wait\s*=\s*\"?([0-9]{1,9})\"?", re.IGNORECASE)


def hold_seconds(prefer: str | None) -> int:
    """How long a request that says ``Prefer: wait=N`` may be held: N, at most the configured bound;
    0 (answer at once) without it, as older slaves send."""
    m = _PREFER_WAIT.search(prefer or "")
    return min(int(m[1]), settings.AUTOTUA_LONGPOLL_SECONDS) if m else 0


def claim(slave, run_uuid, arch: str, flavours: list[str], trust: list[str] | None) -> Run | None:
    """Hand ``slave`` one queued job it can run, under a lease, as run ``run_uuid``; None if none.

    A slave that holds no live run (``slave.holds_run``, known from its lookup) is handed a job at once:
    on PostgreSQL, when no sweep is due, by one statement committed on its own (:func:`_take` picks,
    takes and inserts the run), so the common claim has no transaction around it and no half-done state.
    A repeated claim is then recognised by its run id, taken (the insert refused, nothing written). One
    that holds runs has them ended first (it restarted) or gets its run again, in one transaction."""
    sweeps = sweep_turn()
    if getattr(slave, "holds_run", True):
        with transaction.atomic():
            existing = _runs_of(slave, run_uuid)
            if existing is not None:
                return existing
            return _claim(slave, run_uuid, arch, flavours, trust, sweeps=sweeps)
    run, looked = None, False
    try:
        if connection.vendor == "postgresql" and not sweeps:
            run, looked = _take(slave, run_uuid, arch, flavours, trust), True
            if run is not None and run.job.automatic:
                _provider_started(run)
        if run is None:  # nothing queued by that look (or no look yet): sweep, and look (again) if it freed any
            with transaction.atomic():
                run = _claim(slave, run_uuid, arch, flavours, trust, sweeps=sweeps, looked=looked)
    except IntegrityError:  # the run id is taken: a repeat, or another slave's
        run = None
    if run is None:  # nothing handed out: was the run id taken? (a claim with nothing to do can afford it)
        with transaction.atomic():
            return _runs_of(slave, run_uuid)
    return run


class Lookup(NamedTuple):
    """A statement put at the head of a claim's (named ``me`` there), and whether a job may be taken."""

    sql: str
    params: list
    condition: str  # SQL on ``me``: a job is taken only where it holds
    condition_params: list
    width: int  # the columns of its row


def claim_with(lookup: Lookup, slave_id: int, run_uuid, arch: str, flavours: list[str],
               trust: list[str] | None) -> tuple[tuple | None, Run | None]:
    """The common claim with ``lookup`` at its head, in one statement (PostgreSQL; no :func:`sweep_due`):
    the slave's own lookup, which the claim needs anyway (:mod:`autotua_master.api.slaves`), costs no
    round trip of its own. (The lookup's row, None if it found none; the run, or None: nothing was
    taken — the condition did not hold, or nothing is queued — and the caller claims as :func:`claim`.)"""
    now = timezone.now()
    run = _new_run(slave_id, run_uuid, now)
    where, params = _where(slave_id, arch, flavours, trust)
    row = rows.one(*_take_sql(run, where, params, now, me=lookup))
    if row is None:
        return None, None
    if row[lookup.width] is None:
        return row[:lookup.width], None
    run = _taken(run, row[lookup.width:])
    if run.job.automatic:
        _provider_started(run)
    return row[:lookup.width], run


def _runs_of(slave, run_uuid) -> Run | None:
    """The run named, when the claim repeats it; else end the runs the slave still holds (it restarted)."""
    key = Run._meta.get_field("uuid").get_db_prep_value(Run._meta.get_field("uuid").to_python(run_uuid), connection)
    mine = [rows.build(Run, r) for r in rows.all_rows(
        f"SELECT {rows.columns(Run)} FROM jobs_run WHERE uuid = %s OR (slave_id = %s AND ended IS NULL)"
        + (" FOR UPDATE" if connection.features.has_select_for_update else ""), [key, slave.pk])]
    existing = next((r for r in mine if r.uuid == Run._meta.get_field("uuid").to_python(run_uuid)), None)
    if existing is not None:
        if existing.slave_id != slave.pk:
            raise Conflict(f"run {run_uuid} is not a new id: pick another UUID")
        if not existing.live:
            raise RunOver(f"run {run_uuid} is over ({existing.get_end_display()})")
        return existing
    for old in mine:
        job = Job.objects.select_for_update().get(pk=old.job_id)
        job.lose_run(old, RunEnd.SUPERSEDED, f"slave {slave} claimed again with a new run")
    return None


def _claim(slave, run_uuid, arch: str, flavours: list[str], trust: list[str] | None, *, sweeps: bool,
           looked: bool = False) -> Run | None:
    """Take a job (inside the caller's transaction): a due sweep first; a claim that finds nothing queued
    sweeps, then looks again. ``looked``: the caller's own statement just found nothing."""
    if sweeps:
        sweep(limit=20)
    run = None if looked else _take(slave, run_uuid, arch, flavours, trust)
    if run is None and not sweeps and sweep(limit=20):
        run = _take(slave, run_uuid, arch, flavours, trust)  # nothing queued, but leases had run out: requeued now
    if run is None:
        return None
    if run.job.automatic:
        Job.objects.provider_started(run.job)  # jobs waiting on it may be pipelined now
    faults.point("master:claim:locked")  # the claim's rows are written, not committed
    return run


def _provider_started(run: Run) -> None:
    """After a claim committed on its own took a SIDEPEND's provider: pipeline the jobs waiting on it,
    if it still runs as this run (a cancel or a lost lease in between has ended it: then they wait).
    A worker that dies before this leaves them waiting, as if the provider had not started: they are
    queued when it passes."""
    with transaction.atomic():  # the run's lock first, then its job's, as every writer of a running job
        if rows.one("SELECT 1 FROM jobs_run WHERE id = %s AND ended IS NULL FOR UPDATE", [run.pk]) is None:
            return
        job = Job.objects.select_for_update().get(pk=run.job_id)
        if job.state == JobState.RUNNING:
            Job.objects.provider_started(job)


#: what a claim writes on the job it takes (the parameter: now), in both databases' SQL
_TAKE = (f"state = '{JobState.RUNNING.value}', attempts = jobs_job.attempts + 1, "
         "accepted = COALESCE(jobs_job.accepted, %s), reason = ''")


def _take(slave, run_uuid, arch: str, flavours: list[str], trust: list[str] | None) -> Run | None:
    """The first claimable job (:func:`_where`), taken as run ``run_uuid``, with its job and revision.

    PostgreSQL picks, takes and inserts the run in one statement, skipping rows other claims hold;
    SQLite (claims are serial there) picks, then takes, then inserts."""
    now = timezone.now()
    run = _new_run(slave.pk, run_uuid, now)
    run.slave = slave
    where, params = _where(slave.pk, arch, flavours, trust)
    if connection.vendor == "postgresql":
        row = rows.one(*_take_sql(run, where, params, now))
        return None if row is None else _taken(run, row)
    else:
        picked = _pick_sqlite(where, params, trust)
        if picked is None:
            return None
        job = rows.build(Job, rows.one(f"UPDATE jobs_job SET {_TAKE} WHERE id = %s RETURNING {rows.columns(Job)}",
                                       [now, picked.pk]))
        job.revision = picked.revision
        run.job, run.attempt = job, job.attempts
        rows.insert(run)
    return run


def _new_run(slave_id: int, run_uuid, now) -> Run:
    """The run a claim inserts, its lease from ``now``."""
    return Run(uuid=run_uuid, slave_id=slave_id, attempt=0, claimed=now,
               lease_expires=now + timedelta(seconds=lease_seconds()))


def _take_sql(run: Run, where: str, params: list, now, *, me: Lookup | None = None) -> tuple[str, list]:
    """PostgreSQL: the statement that picks the first job ``where`` says, takes it and inserts ``run``,
    answering the job, its revision, the run's id and claimed time (:func:`_taken` reads them). With
    ``me``, its row comes first and the rest after it (NULLs when nothing was taken)."""
    # claimed when the statement runs (not when this began): after the commit that queued the job,
    # so after the end of any run it had before (a busy thread can be held here a while)
    insert, insert_params = rows.insert_select(run, "taken", ("claimed",), job_id="taken.id",
                                               attempt="taken.attempts", claimed="clock_timestamp()")
    head, head_params, guard, guard_params = ("", [], "", []) if me is None else (
        f"me AS ({me.sql}), ", me.params, f"EXISTS (SELECT 1 FROM me WHERE {me.condition}) AND ",
        me.condition_params)
    taken = f"{rows.columns(Job, 'taken')}, {rows.columns(Revision)}, run.id, run.claimed"
    joined = "taken JOIN tree_revision ON tree_revision.id = taken.revision_id CROSS JOIN run"
    sql = (f"WITH {head}picked AS (SELECT jobs_job.id FROM jobs_job WHERE {guard}{where} ORDER BY {_ORDER}"
           " LIMIT 1 FOR UPDATE OF jobs_job SKIP LOCKED),"
           f" taken AS (UPDATE jobs_job SET {_TAKE} FROM picked WHERE jobs_job.id = picked.id"
           f" RETURNING {rows.columns(Job)}),"
           f" run AS ({insert})"
           + (f" SELECT {taken} FROM {joined}" if me is None else
              f" SELECT me.*, {taken} FROM me LEFT JOIN ({joined}) ON true"))
    return sql, [*head_params, *guard_params, *params, now, *insert_params]


def _taken(run: Run, row) -> Run:
    """``run`` as :func:`_take_sql`'s statement took it: its job (with the revision), id, claimed time."""
    n, m = rows.width(Job), rows.width(Revision)
    job, (run.pk, run.claimed) = rows.build(Job, row[:n]), row[n + m:]
    job.revision = rows.build(Revision, row[n:n + m])
    run.job, run.attempt = job, job.attempts
    return run


def _where(slave_id: int, arch: str, flavours: list[str], trust: list[str] | None) -> tuple[str, list]:
    """What makes a job claimable by slave ``slave_id`` (SQL on jobs_job, its parameters); never a second opinion
    on the slave's own failure. The trust filter is SQL on PostgreSQL (``<@``), Python on SQLite."""
    where = ["jobs_job.state = 'queued'", "jobs_job.arch = %s",
             f"jobs_job.stage3 IN ({', '.join(['%s'] * len(flavours))})",
             "(jobs_job.avoid_slave_id IS NULL OR jobs_job.avoid_slave_id <> %s)"]
    params: list = [arch, *flavours, slave_id]
    if trust is not None and connection.vendor == "postgresql":
        where.append("jobs_job.signers <@ %s::jsonb")
        params.append(json.dumps(trust))
    return " AND ".join(where), params


def _pick_sqlite(where: str, params: list, trust: list[str] | None) -> Job | None:
    """SQLite: the first claimable job with its revision. It cannot ask "contained by" of JSON; claims
    are serial there, so the candidates are looked through for one whose every signer is trusted."""
    sql = (f"SELECT {rows.columns(Job)}, {rows.columns(Revision)} FROM jobs_job"
           " JOIN tree_revision ON tree_revision.id = jobs_job.revision_id"
           f" WHERE {where} ORDER BY {_ORDER} LIMIT %s")
    candidates = rows.all_rows(sql, [*params, 1 if trust is None else -1])
    trusted = None if trust is None else set(trust)
    n = rows.width(Job)
    for row in candidates:
        job = rows.build(Job, row[:n])
        if trusted is None or trusted.issuperset(job.signers):
            job.revision = rows.build(Revision, row[n:])
            return job
    return None


def _order_sql() -> str:
    """:data:`~.models.job.CLAIM_ORDER` in SQL (one spelling of the claim order for the ORM and here)."""
    return ", ".join(f"jobs_job.{f[1:]} DESC" if f.startswith("-") else f"jobs_job.{f}" for f in CLAIM_ORDER)


_ORDER = _order_sql()


def sweep(limit: int | None = None) -> int:
    """End runs whose lease ran out; their jobs are requeued or, past their attempts, ``error``.

    Call inside a transaction. Rows another transaction holds are skipped (it is sweeping them).
    """
    expired = Run.objects.expired().select_for_update(skip_locked=True).order_by("lease_expires")
    if limit:
        expired = expired[:limit]
    count = 0
    for run in expired:
        job = Job.objects.select_for_update().get(pk=run.job_id)
        job.lose_run(run, RunEnd.EXPIRED, f"lost slave: lease expired at {run.lease_expires:%Y-%m-%d %H:%M:%S}Z "
                                          f"on slave {run.slave}")
        count += 1
    return count


_last_sweep = 0.0


def sweep_due() -> bool:
    """Whether the next claim in this process sweeps expired leases (:func:`sweep_turn`); only asks."""
    return time.monotonic() - _last_sweep >= settings.AUTOTUA_SWEEP_SECONDS


def sweep_turn() -> bool:
    """Sweep expired leases on a claim at most every AUTOTUA_SWEEP_SECONDS in this process (a claim
    that finds nothing queued sweeps anyway): a sweep per claim would cost every claim a query. True:
    this claim sweeps (the next turn is a period away)."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < settings.AUTOTUA_SWEEP_SECONDS:
        return False
    _last_sweep = now
    return True
