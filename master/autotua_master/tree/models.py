"""Maintainers (people whose keys the master trusts) and the tree revisions jobs are pinned to."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from autotua.atom import USER_PATTERN
from autotua.signature import normalise_fingerprint


def validate_fingerprint(value: str) -> None:
    try:
        normalise_fingerprint(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None


class MaintainerQuerySet(models.QuerySet):
    def trusted(self) -> dict[str, str]:
        """Tree user -> fingerprint: the only keys a tree signature may verify against."""
        return dict(self.filter(user__is_active=True).values_list("name", "fingerprint"))


class Maintainer(models.Model):
    """A Django user who signs jobuilds: ``name`` is their directory in the tree."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="maintainer")
    name = models.CharField(
        max_length=64, unique=True,
        validators=[models.fields.validators.RegexValidator(rf"\A{USER_PATTERN}\Z", "not a tree user name")],
        help_text="the maintainer's directory in the jobtage tree (<name>/<name>.asc holds the key)")
    fingerprint = models.CharField(max_length=64, validators=[validate_fingerprint],
                                   help_text="the full OpenPGP fingerprint of the key the tree must hold")
    created = models.DateTimeField(default=timezone.now)

    objects = MaintainerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.fingerprint = normalise_fingerprint(self.fingerprint)
        super().save(*args, **kwargs)


class RevisionQuerySet(models.QuerySet):
    def pin(self, revision_id: str, revno: int | None) -> Revision:
        """The row for a revision of the branch, made the first time a job pins it."""
        rev, _ = self.get_or_create(revision_id=revision_id, defaults={"revno": revno})
        return rev


class Revision(models.Model):
    """A revision of the branch that jobs were validated against (indexed on demand)."""

    revision_id = models.CharField(max_length=255, unique=True)
    revno = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    indexed = models.DateTimeField(null=True, blank=True, help_text="when its jobuilds were last read")
    jobuilds = models.JSONField(default=list, blank=True,
                                help_text="every jobuild: description, keywords, digest and its problems")

    objects = RevisionQuerySet.as_manager()

    class Meta:
        ordering = ["-revno", "-id"]

    def __str__(self) -> str:
        return f"r{self.revno}" if self.revno is not None else self.revision_id
