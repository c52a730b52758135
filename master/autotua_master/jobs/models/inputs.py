"""What a run was made of: the stage3, the tree revision, the Gentoo repository, ``emerge --info``.

The slave sends them with every run (``PUT /api/v1/runs/<run>/inputs``, docs/protocol.md), so that
a result can always be traced to exactly what produced it, and two runs of one job on two slaves
can be compared. Recording them is part of the run protocol
(:func:`autotua_master.jobs.protocol.record_inputs`).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

#: the fields fixed by the first PUT (each compared on a repeat)
FIXED = ("stage3", "revision", "repository")


class RunInputs(models.Model):
    run = models.OneToOneField("jobs.Run", on_delete=models.CASCADE, related_name="inputs")
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
