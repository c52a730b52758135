"""Slaves with what the pages show of them: online or not, current run, passed/failed/error counts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Prefetch, Q
from django.utils import timezone

from autotua_master.jobs.models import Run, RunEnd
from autotua_master.slaves.models import Slave, SlaveState
from autotua_master.tree.models import Maintainer


def online_since():
    """A slave seen (claim) or heard from (heartbeat) since then is online: one lease's length."""
    return timezone.now() - timedelta(seconds=settings.AUTOTUA_LEASE_SECONDS)


def with_stats(qs=None):
    """Slaves annotated with ``n_passed``, ``n_failed``, ``n_error`` (runs by how they ended),
    ``last_heartbeat``, and their live runs prefetched as ``live_runs`` (with the job)."""
    qs = Slave.objects.all() if qs is None else qs
    return (qs.select_related("owner")
            .annotate(n_passed=Count("runs", filter=Q(runs__finish__request__status="passed")),
                      n_failed=Count("runs", filter=Q(runs__finish__request__status="failed")),
                      n_error=Count("runs", filter=Q(runs__finish__request__status="error")
                                    | Q(runs__end__in=[RunEnd.EXPIRED, RunEnd.SUPERSEDED])),
                      last_heartbeat=Max("runs__last_heartbeat"))
            .prefetch_related(Prefetch("runs", Run.objects.live().select_related("job"), to_attr="live_runs")))


def last_seen(slave):
    """The latest of the slave's last claim and its last heartbeat (heartbeats do not touch last_seen)."""
    times = [t for t in (slave.last_seen, getattr(slave, "last_heartbeat", None)) if t]
    return max(times) if times else None


def is_online(slave) -> bool:
    seen = last_seen(slave)
    return slave.state == SlaveState.ACTIVE and seen is not None and seen >= online_since()


def decorate(slaves):
    """Attach ``seen``, ``online`` and ``current`` (the live run or None) to each slave of ``with_stats``."""
    out = []
    for s in slaves:
        s.seen = last_seen(s)
        s.online = is_online(s)
        s.current = s.live_runs[0] if s.live_runs else None
        out.append(s)
    return out


def online():
    return [s for s in decorate(with_stats(Slave.objects.filter(state=SlaveState.ACTIVE))) if s.online]


def trust_of(slave) -> list[tuple[str, str | None]] | None:
    """Whom the slave takes jobs from, as its last claim said: (fingerprint, the maintainer holding that
    key here, if any) each; None when it takes every maintainer's (its owner's and staff's to see)."""
    if slave.trust is None:
        return None
    names = dict(Maintainer.objects.filter(fingerprint__in=slave.trust).values_list("fingerprint", "name"))
    return [(f, names.get(f)) for f in slave.trust]
