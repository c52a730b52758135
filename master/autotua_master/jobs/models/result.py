"""What a run sends back: one result per jobuild, its log (a file), and its attachments (files).

Logs and attachments live under ``DATA_DIR/runs/<run>/`` as plain files, never in the database: a
100 MB log is appended chunk by chunk and read back with Range. The database keeps each log's
length, which is what an append at an offset is checked against (under the row's lock).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from pathlib import Path

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from autotua import faults

_NAME_RE = re.compile(r"\A[A-Za-z0-9_+@=,][A-Za-z0-9_.+@=,~-]{0,199}\Z")


def check_attachment_name(name: str) -> str | None:
    """None when ``name`` is a usable file name, else why not."""
    if name in (".", "..") or not _NAME_RE.match(name):
        return (f"attachment name {name!r} must be a file name: letters, digits and _.+@=,~- , at most 200, "
                "not starting with '.' or '-', no '/'")
    return None


class JobuildResult(models.Model):
    run = models.ForeignKey("jobs.Run", on_delete=models.CASCADE, related_name="results")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="results")
    index = models.PositiveIntegerField()
    jobuild = models.CharField(max_length=255)
    digest = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=[("passed", "passed"), ("failed", "failed")])
    exit_code = models.IntegerField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    phases = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    results = models.JSONField(default=dict, blank=True)
    attachments = models.JSONField(default=list, blank=True)
    log_size = models.BigIntegerField(default=0)
    received = models.DateTimeField(default=timezone.now)
    request = models.JSONField(help_text="the call as received, to answer a repeat and refuse a different one")

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="result_once_per_jobuild")]
        indexes = [models.Index(fields=["jobuild", "digest", "status"], name="result_by_digest")]

    def __str__(self) -> str:
        return f"{self.jobuild}: {self.status}"


#: the bridge's phase header (jobuild.sh, ``__ab_header``), colour or not, at a line start
_HEADER_RE = re.compile(rb"(?m)^((?:\x1b\[[0-9;]*m)*>>>(?:\x1b\[[0-9;]*m)* Running (?:\x1b\[[0-9;]*m)*"
                        rb"(pkg_setup|src_unpack|src_compile|src_test)(?:\x1b\[[0-9;]*m)*)\r?(?=\n)")
_HEADER_MAX = 128  # bytes: a header line is never longer
MAX_PHASES = 64  # headers kept per log (a jobuild printing header-like lines gets no more)


def find_headers(data: bytes, base: int, after: int) -> list[dict]:
    """Phase headers in ``data`` (which starts at byte ``base`` of the log) whose line ends after byte
    ``after``: ``{"name", "offset"}`` with the byte offset of the line's start."""
    out = []
    for m in _HEADER_RE.finditer(data):
        start = base + m.start(1)
        if base + m.end() + 1 > after:  # its newline is new
            out.append({"name": m.group(2).decode(), "offset": start})
    return out


class LogFile(models.Model):
    """The length of one jobuild's log in one run; the bytes are in :attr:`path`. ``phases`` are the
    bridge's phase headers found in it as it grew (``{"name", "offset"}``, in order): where each phase
    began, for the log page's jump to the failing phase and for the phase a running job is in."""

    run = models.ForeignKey("jobs.Run", on_delete=models.CASCADE, related_name="logs")
    index = models.PositiveIntegerField()
    size = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)
    phases = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="log_once_per_jobuild")]

    @property
    def path(self) -> Path:
        return self.run.directory / f"{self.index}.log"

    def append(self, offset: int, data: bytes) -> tuple[int, bool]:
        """Write ``data`` at ``offset`` (caller holds the row lock and checked offset <= size).

        Returns (new size, whether the overlap matched what was stored). Bytes already stored must be
        identical; only the part past the end is written. The file is cut to the recorded size first,
        so a write that was interrupted before the size was recorded leaves no trace.
        """
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        headers = []
        try:
            os.ftruncate(fd, self.size)
            overlap = min(self.size - offset, len(data))
            if overlap > 0 and os.pread(fd, overlap, offset) != data[:overlap]:
                return self.size, False
            rest = data[max(overlap, 0):]
            if rest:
                os.pwrite(fd, rest, self.size)
                os.fsync(fd)
                faults.point("master:log:written")  # the bytes are in the file; its size is not recorded
                if len(self.phases) < MAX_PHASES:
                    # a header may have begun in the previous chunk: look from a little before it
                    back = min(self.size, 2 * _HEADER_MAX)
                    seen, base = os.pread(fd, back, self.size - back) + rest, self.size - back
                    if base > 0:  # from the first line start in the window only
                        cut = seen.find(b"\n") + 1
                        seen, base = seen[cut:], base + cut
                    headers = find_headers(seen, base, self.size)
        finally:
            os.close(fd)
        if rest:  # a chunk sent again (its answer was lost) changes nothing, its row included
            self.size += len(rest)
            self.updated = timezone.now()
            fields = ["size", "updated"]
            if headers:
                self.phases = (self.phases + headers)[:MAX_PHASES]
                fields.append("phases")
            self.save(update_fields=fields)
        return self.size, True

    def phase_at(self, name: str) -> int | None:
        """Where phase ``name`` began in the log (its first header), or None."""
        return next((p["offset"] for p in self.phases if p["name"] == name), None)

    @property
    def current_phase(self) -> str | None:
        """The phase the log is in now (its last header)."""
        return self.phases[-1]["name"] if self.phases else None


class Attachment(models.Model):
    run = models.ForeignKey("jobs.Run", on_delete=models.CASCADE, related_name="attachments")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    label = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "index", "name"]
        constraints = [models.UniqueConstraint(fields=["run", "index", "name"], name="attachment_once")]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> Path:
        return self.run.directory / str(self.index) / "attachments" / self.name

    def as_json(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


def sha256_b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def spool(stream, limit: int, directory: Path) -> tuple[Path, int, str] | None:
    """Copy a request body into a temporary file in ``directory`` while hashing it.

    Returns (path, size, sha256 hex), or None when it grew past ``limit`` (the file is removed).
    """
    directory.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(prefix=".upload-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        while True:
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                f.close()
                os.unlink(name)
                return None
            h.update(chunk)
            f.write(chunk)
    return Path(name), size, h.hexdigest()
