"""Slaves and runs.

A *run* is one attempt at a job on one slave, named by a UUID the slave chose when it claimed (so
a repeated claim is recognised). It holds the lease; when the lease runs out, or the job ends, the
run is over and every further call of the slave about it is answered ``run_over``.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from autotua import faults

from . import tokens
from .protocol import RunProtocol

#: seconds: how stale a slave's last_seen may get before a claim writes it again
LAST_SEEN_RESOLUTION = 10


class SlaveState(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


class SlaveQuerySet(models.QuerySet):
    def authenticate(self, token: str) -> Slave | None:
        parsed = tokens.parse_token(token)
        if parsed is None:
            return None
        slave = self.filter(pk=parsed[0]).first()
        if slave is None or not tokens.matches(parsed[1], slave.token_digest):
            return None
        return slave

    def create_with_token(self, **fields) -> tuple[Slave, str]:
        """A new slave and its token (the only time the token is seen)."""
        secret = tokens.make_secret()
        slave = self.create(token_digest=tokens.digest(secret), **fields)
        return slave, tokens.format_token(slave.pk, secret)


class Slave(models.Model):
    name = models.CharField(max_length=100, unique=True)
    state = models.CharField(max_length=10, choices=SlaveState.choices, default=SlaveState.PENDING, db_index=True)
    token_digest = models.CharField(max_length=64, editable=False)
    arch = models.CharField(max_length=32)
    flavours = models.JSONField(default=list, blank=True, help_text="stage3 flavours it serves")
    host = models.JSONField(default=dict, blank=True, help_text="host facts the slave reported")
    free_disk = models.BigIntegerField(null=True, blank=True)
    version = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(get_user_model(), null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    owner = models.ForeignKey(get_user_model(), null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="slaves",
                              help_text="the volunteer who runs it: sees its token actions in the web UI. "
                                        "Set when they add it there, adopt it with its token, or by staff")

    objects = SlaveQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def new_token(self) -> str:
        """Replace the token (the old one stops working at once); returns the new one."""
        secret = tokens.make_secret()
        self.token_digest = tokens.digest(secret)
        self.save(update_fields=["token_digest"])
        return tokens.format_token(self.pk, secret)

    def can_manage(self, user) -> bool:
        """Its owner and staff may make it a new token or revoke it."""
        return bool(user and user.is_authenticated and (user.is_staff or user.pk == self.owner_id))

    def approve(self, by=None) -> None:
        self.state = SlaveState.ACTIVE
        self.approved_by = by
        self.save(update_fields=["state", "approved_by"])

    def revoke(self) -> None:
        self.state = SlaveState.REVOKED
        self.save(update_fields=["state"])

    @property
    def current_run(self) -> Run | None:
        return self.runs.live().order_by("-claimed").first()

    def report(self, facts: dict) -> None:
        """Record what the slave says of itself (claim and registration carry it). The row is written
        when a fact changed or ``last_seen`` is older than a few seconds, not on every claim."""
        now = timezone.now()
        changed = {f: facts[f] for f in ("arch", "flavours", "host", "free_disk", "version")
                   if facts.get(f) is not None and facts[f] != getattr(self, f)}
        if not changed and self.last_seen and (now - self.last_seen).total_seconds() < LAST_SEEN_RESOLUTION:
            return
        changed["last_seen"] = now
        Slave.objects.filter(pk=self.pk).update(**changed)
        for k, v in changed.items():
            setattr(self, k, v)


class RunEnd(models.TextChoices):
    FINISHED = "finished", "finished by the slave"
    EXPIRED = "expired", "lease expired"
    SUPERSEDED = "superseded", "the slave claimed again with a new run"
    CANCELLED = "cancelled", "job cancelled"
    REQUEUED = "requeued", "requeued by staff"


class RunQuerySet(models.QuerySet):
    def live(self):
        return self.filter(ended__isnull=True)

    def expired(self, now=None):
        return self.live().filter(lease_expires__lt=now or timezone.now())

    def sweep(self, limit: int | None = None) -> int:
        """End runs whose lease ran out; their jobs are requeued or, past their attempts, ``error``.

        Call inside a transaction. Rows another transaction holds are skipped (it is sweeping them).
        """
        from autotua_master.jobs.models import Job

        expired = self.expired().select_for_update(skip_locked=True).order_by("lease_expires")
        if limit:
            expired = expired[:limit]
        count = 0
        for run in expired:
            job = Job.objects.select_for_update().get(pk=run.job_id)
            job.lose_run(run, RunEnd.EXPIRED, f"lost slave: lease expired at {run.lease_expires:%Y-%m-%d %H:%M:%S}Z "
                                              f"on slave {run.slave}")
            count += 1
        return count

    def claim(self, slave: Slave, run_uuid, arch: str, flavours: list[str]) -> Run | None:
        """Hand ``slave`` one queued job it can run, under a lease, as run ``run_uuid``; None if none.

        Atomic: the job row is taken with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), or inside a write
        transaction that holds SQLite's lock from its first statement (``transaction_mode=IMMEDIATE``),
        so one job goes to one slave. A repeated claim (same ``run_uuid``) returns the same run.
        """
        from autotua_master.jobs.models import Job, JobState

        from .errors import Conflict, RunOver

        with transaction.atomic():
            # one query for the run named and the runs this slave still holds
            mine = list(self.select_for_update().filter(models.Q(uuid=run_uuid)
                                                         | models.Q(slave=slave, ended__isnull=True)))
            existing = next((r for r in mine if r.uuid == run_uuid), None)
            if existing is not None:
                if existing.slave_id != slave.pk:
                    raise Conflict(f"run {run_uuid} is not a new id: pick another UUID")
                if not existing.live:
                    raise RunOver(f"run {run_uuid} is over ({existing.get_end_display()})")
                return existing
            swept = _sweep_due() and self.sweep(limit=20) is not None
            for old in mine:
                job = Job.objects.select_for_update().get(pk=old.job_id)
                job.lose_run(old, RunEnd.SUPERSEDED, f"slave {slave} claimed again with a new run")
            claimable = Job.objects.claimable(arch, flavours, slave).select_related("revision")
            job = claimable.select_for_update(skip_locked=True, of=("self",)).first()
            if job is None and not swept and self.sweep(limit=20):
                # nothing queued, but leases had run out: their jobs are queued again now
                job = claimable.select_for_update(skip_locked=True, of=("self",)).first()
            if job is None:
                return None
            now = timezone.now()
            job.state = JobState.RUNNING
            job.attempts += 1
            job.accepted = job.accepted or now
            job.reason = ""
            job.save(update_fields=["state", "attempts", "accepted", "reason"])
            run = self.create(uuid=run_uuid, job=job, slave=slave, attempt=job.attempts, claimed=now,
                              lease_expires=now + timedelta(seconds=lease_seconds()))
            faults.point("master:claim:locked")  # the claim's rows are written, not committed
            return run


_last_sweep = 0.0


def _sweep_due() -> bool:
    """Sweep expired leases on a claim at most every AUTOTUA_SWEEP_SECONDS in this process (a claim
    that finds nothing queued sweeps anyway): a sweep per claim would cost every claim a query."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < settings.AUTOTUA_SWEEP_SECONDS:
        return False
    _last_sweep = now
    return True


def lease_seconds() -> int:
    return settings.AUTOTUA_LEASE_SECONDS


class Run(RunProtocol, models.Model):
    uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="runs")
    slave = models.ForeignKey(Slave, on_delete=models.PROTECT, related_name="runs")
    attempt = models.PositiveIntegerField()
    claimed = models.DateTimeField(default=timezone.now)
    lease_expires = models.DateTimeField()
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    end = models.CharField(max_length=12, choices=RunEnd.choices, blank=True)
    end_reason = models.TextField(blank=True)
    finish = models.JSONField(null=True, blank=True, help_text="the slave's finish call, as received")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-claimed"]
        indexes = [models.Index(fields=["lease_expires"], condition=models.Q(ended__isnull=True),
                                name="run_live_lease")]

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def live(self) -> bool:
        return self.ended is None

    def lease(self) -> dict:
        return {"expires": self.lease_expires.isoformat().replace("+00:00", "Z"), "seconds": lease_seconds(),
                "heartbeat_every": settings.AUTOTUA_HEARTBEAT_SECONDS}

    def extend(self) -> None:
        now = timezone.now()
        self.last_heartbeat = now
        self.lease_expires = now + timedelta(seconds=lease_seconds())
        self.save(update_fields=["last_heartbeat", "lease_expires"])

    def close(self, end: str, reason: str = "") -> None:
        self.ended = timezone.now()
        self.end = end
        self.end_reason = reason
        self.save(update_fields=["ended", "end", "end_reason"])

    @property
    def directory(self):
        from pathlib import Path

        return Path(settings.AUTOTUA_DATA_DIR) / "runs" / str(self.uuid)
