"""Runs: one attempt at a job on one slave.

A run is named by a UUID the slave chose when it claimed (so a repeated claim is recognised). It holds
the lease; when the lease runs out, or the job ends, the run is over and every further call of the
slave about it is answered ``run_over`` — except for runs the master ended itself while the slave was
still at work (:data:`~.states.ABORTING`: a cancel, a SIDEPEND that failed, a wait given up), which
take the slave's last writes and answer each ``abort``. What a slave does with its run is
:mod:`autotua_master.jobs.protocol`; how runs are handed out is :mod:`autotua_master.jobs.dispatch`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from autotua_master import rows

from .states import RunEnd


class RunQuerySet(models.QuerySet):
    def live(self):
        return self.filter(ended__isnull=True)

    def expired(self, now=None):
        return self.live().filter(lease_expires__lt=now or timezone.now())


def lease_seconds() -> int:
    return settings.AUTOTUA_LEASE_SECONDS


class Run(models.Model):
    uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="runs")
    slave = models.ForeignKey("slaves.Slave", on_delete=models.PROTECT, related_name="runs")
    attempt = models.PositiveIntegerField()
    claimed = models.DateTimeField(default=timezone.now)
    lease_expires = models.DateTimeField()
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True,
                                         help_text="since when the slave waits for a SIDEPEND (the wait is bounded)")
    ended = models.DateTimeField(null=True, blank=True)
    end = models.CharField(max_length=12, choices=RunEnd.choices, blank=True)
    end_reason = models.TextField(blank=True)
    finish = models.JSONField(null=True, blank=True, help_text="the slave's finish call, as received")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-claimed"]
        indexes = [models.Index(fields=["lease_expires"], condition=models.Q(ended__isnull=True),
                                name="run_live_lease"),
                   models.Index(fields=["slave"], condition=models.Q(ended__isnull=True), name="run_live_slave")]

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
        type(self).objects.filter(pk=self.pk).update(last_heartbeat=now, lease_expires=self.lease_expires)

    def close(self, end: str, reason: str = "") -> None:
        """End the run (with its ``finish`` when the results decided the job: one write)."""
        rows.update(self, *self.closing(end, reason))

    def closing(self, end: str, reason: str = "") -> tuple[str, ...]:
        """End the run in memory; the fields :meth:`close` writes (for a caller that writes them with others)."""
        self.ended = timezone.now()
        self.end = end
        self.end_reason = reason
        return ("ended", "end", "end_reason", *(["finish"] if self.finish is not None else []))

    @property
    def directory(self) -> Path:
        return Path(settings.AUTOTUA_DATA_DIR) / "runs" / str(self.uuid)
