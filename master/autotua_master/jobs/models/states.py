"""The states of jobs, SIDEPEND provisions and runs: one module every other one of the app may import."""

from __future__ import annotations

from django.db import models


class JobState(models.TextChoices):
    """ARCHITECTURE.md, Jobs: ``invalid`` never reaches a slave; ``waiting`` holds a job on its
    SIDEPENDs; ``queued`` can be claimed; ``running`` is under a slave's lease; the rest are final."""

    INVALID = "invalid"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"


FINAL = (JobState.PASSED, JobState.FAILED, JobState.ERROR, JobState.CANCELLED)
REVALIDATABLE = (JobState.INVALID, JobState.WAITING, JobState.QUEUED)


class ProvisionState(models.TextChoices):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class RunEnd(models.TextChoices):
    FINISHED = "finished", "finished by the slave"
    EXPIRED = "expired", "lease expired"
    SUPERSEDED = "superseded", "the slave claimed again with a new run"
    CANCELLED = "cancelled", "job cancelled"
    REQUEUED = "requeued", "requeued by staff"
    ABORTED = "aborted", "aborted by the master: a SIDEPEND failed"
    WAITED = "waited", "its wait for a SIDEPEND ended: the job went back to the queue"


#: runs ended by the master that still take the slave's last writes (logs, results, its finish), every
#: answer saying ``abort``: what the slave sends after being told to stop is worth keeping
ABORTING = (RunEnd.CANCELLED, RunEnd.ABORTED, RunEnd.WAITED)
