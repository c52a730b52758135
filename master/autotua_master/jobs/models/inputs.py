"""What a run was made of: the stage3, the tree revision, the Gentoo repository, ``emerge --info``.

The slave sends them with every run (``PUT /api/v1/runs/<run>/inputs``, docs/protocol.md), so that
a result can always be traced to exactly what produced it, and two runs of one job on two slaves
can be compared. Idempotent as every write of the protocol: the same body again is answered the
same; a body that differs in what is recorded is a ``conflict``, with one exception that makes the
record grow once: ``emerge_info`` (known only once the job's container runs) may come in a later
PUT that repeats the rest, if the first had none.
"""

from __future__ import annotations

import hashlib

from django.db import models, transaction
from django.utils import timezone

from autotua import faults

#: the fields fixed by the first PUT (each compared on a repeat)
FIXED = ("stage3", "revision", "repository")


class RunInputs(models.Model):
    run = models.OneToOneField("slaves.Run", on_delete=models.CASCADE, related_name="inputs")
    stage3 = models.JSONField(help_text='the stage3 the slave used: {"name", "timestamp"}')
    revision = models.CharField(max_length=255, help_text="the tree revision the slave synced")
    repository = models.JSONField(help_text='{"source": "snapshot" | "host" | "none", "snapshot", "name", '
                                            '"path", "timestamp_chk"}')
    emerge_info = models.TextField(blank=True, help_text="emerge --info, from inside the job")
    received = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "run inputs"

    def __str__(self) -> str:
        return f"inputs of run {self.run_id}"

    # -- what people see ------------------------------------------------------------------------------
    @property
    def snapshot(self) -> str:
        return self.repository.get("snapshot", "") if self.repository.get("source") == "snapshot" else ""

    def differences(self, job) -> list[str]:
        """Where the run's inputs are not what the job was pinned to, in sentences."""
        out = []
        if self.revision != job.revision.revision_id:
            out.append(f"the slave synced revision {self.revision}, not the pinned {job.revision.revision_id}")
        source = self.repository.get("source")
        if job.snapshot and source == "host":
            out.append(f"the slave used the host's repository ({self.repository.get('timestamp_chk') or 'no date'}), "
                       f"not the pinned snapshot {job.snapshot}")
        elif job.snapshot and self.snapshot != job.snapshot:
            out.append(f"the slave used {'snapshot ' + self.snapshot if self.snapshot else 'no repository'}, "
                       f"not the pinned snapshot {job.snapshot}")
        return out

    def as_json(self) -> dict:
        return {"stage3": self.stage3, "revision": self.revision, "repository": self.repository,
                "emerge_info": self.emerge_info or None, "received": self.received, "updated": self.updated}

    # -- the protocol ---------------------------------------------------------------------------------
    @classmethod
    def record(cls, run, data: dict) -> tuple[bool, dict]:
        """Store ``data`` (validated) for ``run``; (whether it changed the record, the answer).

        The answer echoes what is recorded for the fields the request carried (``emerge_info`` as its
        size and SHA-256), so the same request is always answered alike."""
        from autotua_master.slaves.errors import Conflict

        with transaction.atomic():
            locked = run._locked()
            locked._check_writable()
            existing = cls.objects.filter(run=locked).first()
            info = data.get("emerge_info")
            changed = False
            if existing is None:
                existing = cls.objects.create(run=locked, emerge_info=info or "",
                                              **{f: data[f] for f in FIXED})
                changed = True
            else:
                for f in FIXED:
                    if getattr(existing, f) != data[f]:
                        raise Conflict(f"the inputs of run {locked.uuid} were already received, with another {f}",
                                       field=f)
                if info is not None and existing.emerge_info and existing.emerge_info != info:
                    raise Conflict(f"emerge_info of run {locked.uuid} was already received, with other content",
                                   field="emerge_info")
                if info and not existing.emerge_info:
                    existing.emerge_info, existing.updated = info, timezone.now()
                    existing.save(update_fields=["emerge_info", "updated"])
                    changed = True
            faults.point("master:inputs:locked")  # the inputs are written, not committed
        answer = {f: getattr(existing, f) for f in FIXED}
        if info is not None:
            answer["emerge_info"] = {"size": len(info.encode()), "sha256": hashlib.sha256(info.encode()).hexdigest()}
        return changed, answer
