"""Small filters for the web UI's templates (every one returns plain text: autoescaping applies)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.urls import reverse
from django.utils.dateparse import parse_datetime

register = template.Library()


def _dt(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


@register.filter
def short(digest: str, n: int = 12) -> str:
    return (digest or "")[:n]


@register.filter
def when(value) -> datetime | None:
    """A datetime from a model field or an ISO string out of a JSON field."""
    return _dt(value)


@register.simple_tag
def duration(started, finished) -> str:
    a, b = _dt(started), _dt(finished)
    if not a or not b:
        return ""
    secs = (b - a).total_seconds()
    if secs < 1:
        return f"{secs * 1000:.0f} ms"
    if secs < 120:
        return f"{secs:.1f} s"
    if secs < 7200:
        return f"{secs / 60:.1f} min"
    return f"{secs / 3600:.1f} h"


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def jobuild_url(jobuild: str, revno=None) -> str:
    """The tree browser's page of ``user/name-version`` (at revision ``revno`` when given)."""
    user, _, pv = (jobuild or "").partition("/")
    if not user or not pv:
        return ""
    url = reverse("web:jobuild", args=[user, pv])
    return f"{url}?r={revno}" if revno else url


@register.filter
def one_of(value, names: str) -> bool:
    """``value`` is one of the comma-separated ``names`` (whole words, not substrings)."""
    return value in names.split(",")


@register.filter
def input_differences(inputs, job) -> list[str]:
    """Where a run's recorded inputs are not what its job was pinned to."""
    return inputs.differences(job) if inputs else []
