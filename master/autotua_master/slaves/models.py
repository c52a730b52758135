"""Slaves: the volunteers' machines, each with its token and what it says of itself.

A slave's runs (its attempts at jobs) belong to the jobs app (:mod:`autotua_master.jobs.models.run`):
a run is a job's attempt.
"""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from autotua_master import rows

from . import tokens

#: seconds: how stale a slave's last_seen may get before a claim writes it again
LAST_SEEN_RESOLUTION = 10


class SlaveState(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


def parse_token(token: str) -> tuple[int, str] | None:
    """A slave token's (id, secret), or None for anything not shaped like one (or an id no row has)."""
    parsed = tokens.parse_token(token)
    return None if parsed is None or parsed[0] > 2**63 - 1 else parsed


@functools.cache
def lookup_sql() -> str:
    """The slave whose id is the parameter, and whether it holds a live run (``holds_run``): every slave
    call's lookup (:func:`from_lookup` builds its row), alone or at the head of a claim's statement."""
    return (f"SELECT {rows.columns(Slave)}, EXISTS (SELECT 1 FROM jobs_run WHERE jobs_run.slave_id = slaves_slave.id"
            " AND jobs_run.ended IS NULL) AS holds_run FROM slaves_slave WHERE id = %s")


def claim_lookup(slave_id: int, secret: str) -> tuple[str, list, str, list, int]:
    """The slave's lookup at the head of its claim's statement (``me`` there:
    :func:`autotua_master.jobs.dispatch.claim_with`), and the condition under which the claim may take a
    job: ``secret`` is the slave's, and it is active and holds no live run. The caller still judges the
    row as :class:`SlaveQuerySet.authenticate`'s (the condition only keeps a job from a stranger)."""
    return (lookup_sql(), [slave_id], "me.token_digest = %s AND me.state = 'active' AND NOT me.holds_run",
            [tokens.digest(secret)], rows.width(Slave) + 1)


def from_lookup(row) -> Slave | None:
    """The slave of a :func:`lookup_sql` row (None: no such slave), with ``holds_run``."""
    if row is None:
        return None
    slave = rows.build(Slave, row[:-1])
    slave.holds_run = bool(row[-1])
    return slave


class SlaveQuerySet(models.QuerySet):
    def authenticate(self, token: str) -> Slave | None:
        """The slave whose token this is, or None. Every slave call starts here, in one statement that
        also says whether the slave holds a live run (``holds_run``): a claim must end such a run first
        (the slave restarted), and knowing there is none spares every other claim a statement."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        slave = from_lookup(rows.one(lookup_sql(), [parsed[0]]))
        return slave if slave is not None and tokens.matches(parsed[1], slave.token_digest) else None

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
    trust = models.JSONField(null=True, blank=True,
                             help_text="fingerprints of the maintainers whose jobs it takes (every signer of a job "
                                       "must be among them); empty: every maintainer the master records")
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
    def current_run(self):
        return self.runs.live().order_by("-claimed").first()

    def report(self, facts: dict) -> None:
        """Record what the slave says of itself (claim and registration carry it; a claim always says
        whom it trusts, ``None`` for everyone). The row is written when a fact changed or ``last_seen``
        is older than a few seconds, not on every claim."""
        now = timezone.now()
        changed = {f: facts[f] for f in ("arch", "flavours", "host", "free_disk", "version")
                   if facts.get(f) is not None and facts[f] != getattr(self, f)}
        if "trust" in facts and facts["trust"] != self.trust:
            changed["trust"] = facts["trust"]
        if not changed and self.last_seen and (now - self.last_seen).total_seconds() < LAST_SEEN_RESOLUTION:
            return
        changed["last_seen"] = now
        Slave.objects.filter(pk=self.pk).update(**changed)
        for k, v in changed.items():
            setattr(self, k, v)
