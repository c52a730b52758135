"""What a slave does with the run it holds (docs/protocol.md, During the run), as methods of Run.

Each call locks the run's row, checks the run may still be written to, and is idempotent: a repeat
of the same call is answered as the first was, a repeat with different content is a ``conflict``.
A run ended because its job was cancelled still takes logs, attachments, results and its finish
(they are worth keeping), but every answer says ``abort``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from django.conf import settings
from django.db import transaction

from autotua import faults

from .errors import Conflict, Invalid, OffsetGap, RunOver, TooLarge

_DIGEST_RE = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):")


def parse_content_digest(header: str | None) -> str:
    """RFC 9530 ``Content-Digest: sha-256=:<base64>:`` -> hex; Invalid when absent or malformed."""
    m = _DIGEST_RE.search(header or "")
    if not m:
        raise Invalid("Content-Digest: sha-256=:<base64>: is required (RFC 9530)", field="Content-Digest")
    try:
        raw = base64.b64decode(m[1], validate=True)
    except binascii.Error:
        raise Invalid("Content-Digest: the sha-256 value is not base64", field="Content-Digest") from None
    if len(raw) != 32:
        raise Invalid("Content-Digest: a sha-256 digest is 32 bytes", field="Content-Digest")
    return raw.hex()


class RunProtocol:
    """Mixed into :class:`~autotua_master.slaves.models.Run`."""

    # -- guards -------------------------------------------------------------------------------------
    def _locked(self):
        """This run, re-read under its row lock (call inside a transaction)."""
        return type(self).objects.select_for_update().select_related("job").get(pk=self.pk)

    def _check_writable(self) -> None:
        from .models import RunEnd

        if self.ended is not None and self.end != RunEnd.CANCELLED:
            raise RunOver(f"run {self.uuid} is over: {self.get_end_display()}"
                          + (f" ({self.end_reason})" if self.end_reason else ""))

    def _check_index(self, index: int) -> dict:
        plan = self.job.plan
        if not 0 <= index < len(plan):
            raise Invalid(f"jobuild index {index} is not in the plan (0 to {len(plan) - 1})", field="index")
        return plan[index]

    def _abort_reason(self) -> str | None:
        from autotua_master.jobs.models import JobState

        from .models import RunEnd

        if self.end == RunEnd.CANCELLED or self.job.state == JobState.CANCELLED:
            return self.end_reason or self.job.reason or "cancelled"
        return None

    # -- heartbeat ----------------------------------------------------------------------------------
    def heartbeat(self) -> dict:
        with transaction.atomic():
            run = self._locked()
            run._check_writable()
            why = run._abort_reason()
            if why:
                return {"action": "abort", "reason": why}
            run.extend()
            return {"action": "continue", "lease": run.lease()}

    # -- log ----------------------------------------------------------------------------------------
    def append_log(self, index: int, first: int, data: bytes) -> int:
        """Append a chunk that starts at byte ``first`` of jobuild ``index``'s log; the log's new length."""
        from autotua_master.jobs.models import JobuildResult, LogFile

        with transaction.atomic():
            run = self._locked()
            run._check_writable()
            run._check_index(index)
            LogFile.objects.bulk_create([LogFile(run=run, index=index)], ignore_conflicts=True)
            log = LogFile.objects.select_for_update().get(run=run, index=index)
            log.run = run
            if first > log.size:
                raise OffsetGap(f"log offset {first} is past the end of the log ({log.size} bytes received)",
                                offset=log.size)
            result = JobuildResult.objects.filter(run=run, index=index).first()
            if result is not None and first + len(data) > result.log_size:
                raise Conflict(f"the result of jobuild {index} was sent with log_size {result.log_size}; "
                               "its log cannot grow now", offset=log.size)
            size, same = log.append(first, data)
            if not same:
                raise Conflict(f"bytes {first}-{first + len(data) - 1} differ from the log already received",
                               offset=size)
            return size

    # -- attachments --------------------------------------------------------------------------------
    def attach(self, index: int, name: str, stream, length: int | None, digest_header: str | None,
               ) -> tuple[bool, dict]:
        """Store an upload; (created, its description). The body is spooled and checked before the lock."""
        from autotua_master.jobs.models import Attachment, JobuildResult
        from autotua_master.jobs.models.result import check_attachment_name, spool

        limit = settings.AUTOTUA_ATTACHMENT_BYTES
        bad = check_attachment_name(name)
        if bad:
            raise Invalid(bad, field="name")
        want = parse_content_digest(digest_header)
        if length is not None and length > limit:
            raise TooLarge(f"attachment {name} is {length} bytes; the limit is {limit}", limit=limit)
        self._check_writable()
        self._check_index(index)
        spooled = spool(stream, limit, self.directory / str(index) / "attachments")
        if spooled is None:
            raise TooLarge(f"attachment {name} is larger than the limit of {limit} bytes", limit=limit)
        tmp, size, sha = spooled
        try:
            if sha != want:
                raise Invalid(f"attachment {name}: the body's sha-256 is {sha}, not the {want} of Content-Digest",
                              field="Content-Digest")
            with transaction.atomic():
                run = self._locked()
                run._check_writable()
                existing = Attachment.objects.filter(run=run, index=index, name=name).first()
                if existing is not None:
                    if existing.sha256 != sha:
                        raise Conflict(f"attachment {name} was already uploaded with other content "
                                       f"(sha-256 {existing.sha256})")
                    return False, existing.as_json()
                if JobuildResult.objects.filter(run=run, index=index).exists():
                    raise Conflict(f"the result of jobuild {index} was already received; attachment {name} "
                                   "was not among its attachments, and none can be added now")
                att = Attachment.objects.create(run=run, index=index, name=name, size=size, sha256=sha)
                os.replace(tmp, att.path)
                tmp = None
                return True, att.as_json()
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    # -- result -------------------------------------------------------------------------------------
    def report(self, index: int, data: dict, request: dict) -> dict:
        """Record jobuild ``index``'s result (validated ``data``; ``request`` as received) and say what next."""
        from autotua_master.jobs.models import Attachment, JobuildResult, LogFile, Provision

        with transaction.atomic():
            run = self._locked()
            run._check_writable()
            entry = run._check_index(index)
            received = {i: (st, req) for i, st, req in run.results.values_list("index", "status", "request")}
            if index in received:
                if received[index][1] != request:
                    raise Conflict(f"the result of jobuild {index} was already received, with other content")
                return run._next(index, received[index][0])
            missing = set(range(index)) - set(received)
            if missing:
                raise Invalid(f"send the result of jobuild {min(missing)} before that of jobuild {index}",
                              field="index")
            failed = sorted(i for i, (st, _) in received.items() if st == "failed")
            if failed:
                raise Invalid(f"jobuild {failed[0]} failed, so nothing after it runs; finish the run")
            held = {a.name: a for a in Attachment.objects.filter(run=run, index=index)} if data["attachments"] else {}
            for att in data["attachments"]:
                have = held.get(att["name"])
                if have is None:
                    raise Invalid(f"attachment {att['name']} was not uploaded", field="attachments")
                if have.sha256 != att["sha256"] or have.size != att["size"]:
                    raise Conflict(f"attachment {att['name']} was uploaded with sha-256 {have.sha256} and size "
                                   f"{have.size}, not as this result says")
                if att.get("label") and have.label != att["label"]:
                    have.label = att["label"]
                    have.save(update_fields=["label"])
            log = LogFile.objects.filter(run=run, index=index).first()
            log_size = log.size if log else 0
            if data["log_size"] != log_size:
                raise Conflict(f"log_size is {data['log_size']}, but {log_size} bytes of the log were received",
                               offset=log_size)
            result = JobuildResult.objects.create(
                run=run, job=run.job, index=index, jobuild=entry["jobuild"], digest=entry["digest"],
                request=request, **data)
            if result.status == "passed":
                from autotua.params import identity

                Provision.objects.passed(result.jobuild, identity(result.digest, entry.get("parameters") or {}),
                                         result)
            faults.point("master:result:locked")  # the result's rows are written, not committed
            return run._next(index, result.status)

    def _next(self, index: int, status: str) -> dict:
        from autotua_master.jobs.models import Job, ProvisionState

        # the job's state now (a cancel may have come since the run was read); only the state matters
        self.job.state, self.job.reason = Job.objects.filter(pk=self.job_id).values_list("state", "reason").get()
        why = self._abort_reason()
        if why:
            return {"action": "abort", "reason": why}
        plan = self.job.plan
        if status == "passed" and index + 1 < len(plan):
            nxt = plan[index + 1]["jobuild"]
            pending = (self.job.requirements.filter(required_by=nxt)
                       .exclude(provision__state=ProvisionState.PASSED).select_related("provision"))
            names = [r.provision.jobuild for r in pending]
            if names:
                return {"action": "wait", "retry_after": settings.AUTOTUA_WAIT_RETRY_AFTER,
                        "reason": f"SIDEPEND {', '.join(names)} has not passed yet"}
        return {"action": "continue"}

    # -- finish -------------------------------------------------------------------------------------
    def finish_with(self, status: str, reason: str) -> dict:
        from autotua_master.jobs.models import Job, JobState

        from .models import RunEnd

        request = {"status": status, "reason": reason}
        with transaction.atomic():
            run = self._locked()
            if run.finish is not None:
                if run.finish["request"] != request:
                    raise Conflict(f"run {run.uuid} was already finished as {run.finish['request']['status']}")
                return run.finish["answer"]
            run._check_writable()
            job = Job.objects.select_for_update().get(pk=run.job_id)
            results = {r.index: r.status for r in run.results.all()}
            if job.state == JobState.RUNNING and run.live:
                if status == "passed":
                    missing = [e["jobuild"] for e in job.plan if results.get(e["index"]) != "passed"]
                    if missing:
                        raise Invalid(f"finish passed, but no passed result for {', '.join(missing)}",
                                      field="status")
                    job.end(JobState.PASSED, run_end=RunEnd.FINISHED)
                elif status == "failed":
                    if not reason:
                        failed = [job.plan[i]["jobuild"] for i, s in sorted(results.items()) if s == "failed"]
                        reason = f"{failed[0]} failed" if failed else "failed"
                    job.end(JobState.FAILED, reason, run_end=RunEnd.FINISHED)
                else:
                    # error, or a cancel the master did not ask for: the job was not done, try again
                    job.lose_run(run, RunEnd.FINISHED, f"{status}: {reason}" if reason else status)
            elif run.live:
                run.close(RunEnd.FINISHED, reason)
            answer = {"job": {"id": job.pk, "state": job.state}}
            type(self).objects.filter(pk=run.pk).update(finish={"request": request, "answer": answer})
            faults.point("master:finish:locked")  # the job's end is written, not committed
            return answer
