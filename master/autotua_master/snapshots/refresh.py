"""Learning the snapshot dates from a mirror's ``snapshots/`` directory, as Gentoo publishes it.

The directory listing names ``gentoo-<YYYYMMDD>.tar.xz`` with its ``.gpgsig`` (Gentoo's mirrors keep
a few weeks of them); ``gentoo-latest.tar.xz.gpgsig`` dates the newest by its signature's creation
time, for a mirror whose listing cannot be read. Nothing here verifies a snapshot (the slaves do,
against the snapshot key, before use): a wrong date only pins a job to a snapshot no slave can fetch,
which fails as ``error`` with a clear sentence. Dates no longer listed stay known (jobs pinned to
them keep their pin) but new jobs are not pinned to them.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

import requests
from django.db import transaction
from django.utils import timezone

from autotua.signature import signature_created

from .models import Snapshot

LISTING_LIMIT = 4 << 20
_LISTED_RE = re.compile(r"""href=["']?(?:[^"'>]*/)?(gentoo-(\d{8})\.tar\.xz(\.gpgsig)?)["'>]""")


class RefreshError(Exception):
    pass


@dataclass
class Refreshed:
    dates: list[str] = field(default_factory=list)  # listed now, oldest first
    new: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    latest: str = ""
    notes: list[str] = field(default_factory=list)


def _get(session: requests.Session, url: str, limit: int) -> bytes:
    with session.get(url, stream=True, timeout=60) as r:
        r.raise_for_status()
        data = b""
        for chunk in r.iter_content(1 << 16):
            data += chunk
            if len(data) > limit:
                raise RefreshError(f"{url}: larger than {limit} bytes")
        return data


def listed_dates(html: str) -> list[str]:
    """The dates whose tarball *and* signature a directory listing links to."""
    names = {m[1] for m in _LISTED_RE.finditer(html)}
    return sorted({m[2] for m in _LISTED_RE.finditer(html) if f"gentoo-{m[2]}.tar.xz.gpgsig" in names
                   and f"gentoo-{m[2]}.tar.xz" in names})


def read_mirror(mirror: str, session: requests.Session | None = None) -> tuple[list[str], str, list[str]]:
    """(listed dates, the date of gentoo-latest, notes) from the mirror's ``snapshots/``."""
    session = session or requests.Session()
    base = mirror.rstrip("/") + "/snapshots/"
    notes, dates, latest = [], [], ""
    try:
        dates = listed_dates(_get(session, base, LISTING_LIMIT).decode("utf-8", errors="replace"))
        if not dates:
            notes.append(f"{base}: the listing names no gentoo-<date>.tar.xz with its .gpgsig")
    except (requests.RequestException, RefreshError) as e:
        notes.append(f"{base}: no listing ({e})")
    try:
        created = signature_created(_get(session, base + "gentoo-latest.tar.xz.gpgsig", 1 << 20))
        latest = datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%Y%m%d")
    except (requests.RequestException, RefreshError, ValueError) as e:
        notes.append(f"{base}gentoo-latest.tar.xz.gpgsig: no date ({e})")
    if latest and latest not in dates:
        try:
            session.head(base + f"gentoo-{latest}.tar.xz", timeout=60).raise_for_status()
            dates = sorted({*dates, latest})
        except requests.RequestException as e:
            notes.append(f"gentoo-latest is of {latest}, but gentoo-{latest}.tar.xz is not there ({e})")
            latest = ""
    if not dates:
        raise RefreshError(f"no snapshot found at {base}: " + "; ".join(notes))
    return dates, latest or dates[-1], notes


def refresh(mirror: str, session: requests.Session | None = None) -> Refreshed:
    """Read the mirror and record what it holds (new dates, dates gone, which is latest)."""
    dates, latest, notes = read_mirror(mirror, session)
    now = timezone.now()
    with transaction.atomic():
        known = {s.date: s for s in Snapshot.objects.select_for_update()}
        new = [d for d in dates if d not in known]
        Snapshot.objects.bulk_create([Snapshot(date=d, first_seen=now, last_seen=now) for d in new])
        Snapshot.objects.filter(date__in=dates).update(listed=True, last_seen=now)
        gone = sorted(d for d, s in known.items() if s.listed and d not in dates)
        Snapshot.objects.exclude(date__in=dates).update(listed=False)
        Snapshot.objects.update(latest=False)
        Snapshot.objects.filter(date=latest).update(latest=True)
    return Refreshed(dates, new, gone, latest, notes)
