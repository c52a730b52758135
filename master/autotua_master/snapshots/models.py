"""The Gentoo repository snapshots the master knows of, so that every job is pinned to one.

A job is pinned to a jobtage revision *and* a snapshot date: the newest the master knows when the
job is validated, or the one its maintainer names, so that every slave (and every attempt) runs it
against the same ebuild repository. The master learns the dates from a mirror's ``snapshots/``
directory (:mod:`.refresh`, run by ``autotua-master refreshsnapshots``, e.g. daily from cron or a
systemd timer), never while it validates: picking the pin is one indexed query.
"""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

_DATE_RE = re.compile(r"\A(\d{4})-?(\d{2})-?(\d{2})\Z")


class UnknownSnapshot(Exception):
    """A snapshot date a job cannot be pinned to; the message says why and which dates there are."""


def normalise_date(value: str) -> str:
    """``YYYYMMDD`` from ``YYYYMMDD`` or ``YYYY-MM-DD``; ValueError for anything else, or no such day."""
    m = _DATE_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{str(value)[:40]!r} is not a snapshot date (YYYYMMDD or YYYY-MM-DD)")
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"{value!r} is not a day") from None
    return m[1] + m[2] + m[3]


def validate_date(value: str) -> None:
    try:
        if normalise_date(value) != value:
            raise ValueError(f"{value!r}: write it YYYYMMDD")
    except ValueError as e:
        raise ValidationError(str(e)) from None


def snapshot_url() -> str:
    """The base URL of the mirror's ``snapshots/`` directory slaves are told of ("" when none is set)."""
    mirror = settings.AUTOTUA_SNAPSHOT_MIRROR
    return f"{mirror.rstrip('/')}/snapshots/" if mirror else ""


def pin_payload(date: str) -> dict | None:
    """A job's ``snapshot`` as the claim and the API carry it (docs/protocol.md), or None."""
    if not date:
        return None
    return {"date": date, "name": f"gentoo-{date}.tar.xz", "url": snapshot_url()}


class SnapshotQuerySet(models.QuerySet):
    def listed(self):
        return self.filter(listed=True)

    def newest(self) -> Snapshot | None:
        return self.listed().order_by("-date").first()

    def pin(self, asked: str = "") -> str:
        """The date a job is pinned to: ``asked`` when the mirror lists it, else the newest listed;
        ``""`` when the master knows none (no snapshot mirror). Raises :class:`UnknownSnapshot`."""
        if not asked:
            newest = self.newest()
            return newest.date if newest else ""
        try:
            date = normalise_date(asked)
        except ValueError as e:
            raise UnknownSnapshot(str(e)) from None
        found = self.filter(date=date).first()
        if found is not None and found.listed:
            return date
        known = list(self.listed().order_by("date").values_list("date", flat=True))
        have = f"the mirror lists {known[0]} to {known[-1]}" if known else "the master knows no snapshot"
        if found is not None:
            raise UnknownSnapshot(f"snapshot {date} is no longer on the mirror (last seen {found.last_seen:%Y-%m-%d}); "
                                  f"{have}")
        raise UnknownSnapshot(f"no snapshot {date}: {have} (autotua-master refreshsnapshots reads the mirror)")


class Snapshot(models.Model):
    date = models.CharField(max_length=8, unique=True, validators=[validate_date], help_text="YYYYMMDD")
    listed = models.BooleanField(default=True, help_text="on the mirror at the last refresh")
    latest = models.BooleanField(default=False, help_text="gentoo-latest.tar.xz at the last refresh")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-date"]
        indexes = [models.Index(fields=["-date"], condition=models.Q(listed=True), name="snapshot_listed")]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"gentoo-{self.date}.tar.xz"

    @property
    def day(self) -> datetime.date:
        return datetime.date(int(self.date[:4]), int(self.date[4:6]), int(self.date[6:]))
