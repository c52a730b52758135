"""A group: many jobs made by one request, with one page, one API resource and one report.

A group is a matrix: its *rows* are configurations (parameter values; for arch testing, a package
with a USE combination, or a reverse dependency) and its *columns* are (arch, stage3 flavour)
pairs; each job is one cell, ``Job.group`` and ``Job.row`` with its own arch and flavour. The seed
that drew the rows (tatt's sampling) is recorded, so the same request makes the same group. The
group's state is summarised from its cells (:mod:`.cells`), never stored.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class GroupKind(models.TextChoices):
    MATRIX = "matrix"
    ARCHTEST = "archtest", "arch testing"


class Group(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="job_groups")
    kind = models.CharField(max_length=10, choices=GroupKind.choices)
    title = models.CharField(max_length=200)
    bug = models.PositiveIntegerField(null=True, blank=True, help_text="the Gentoo bug it tests, if any")
    root = models.CharField(max_length=255, help_text="the jobuild every job of the group runs")
    revision = models.ForeignKey("tree.Revision", on_delete=models.PROTECT, related_name="groups")
    snapshot = models.CharField(max_length=8, blank=True, help_text="the Gentoo snapshot every job is pinned to")
    seed = models.BigIntegerField(default=0, help_text="what drew its USE combinations and reverse dependencies")
    request = models.JSONField(default=dict, help_text="the request that made it, as understood")
    rows = models.JSONField(default=list, help_text='its configurations: [{"label", "kind", "package", '
                                                    '"parameters", ...}]')
    columns = models.JSONField(default=list, help_text="[[arch, flavour], ...]")
    second_opinion = models.BooleanField(default=True, help_text="a failed configuration runs once more on "
                                                                 "another slave before the group calls it failed")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"group #{self.pk} {self.title}"

    def can_change(self, user) -> bool:
        return bool(user and user.is_authenticated and (user.is_staff or user.pk == self.owner_id))
