"""What a slave does with the run it holds (docs/protocol.md, During the run): heartbeat, log,
attachment, result, finish.

Each call finds the slave's run and locks its row in one query, checks the run may still be written
to, and is idempotent: a repeat of the same call is answered as the first was, a repeat with
different content is a ``conflict``. Holding the run's lock is what entitles a call to change its
running job: every other writer of a running job locks the live run first (:mod:`.models.job`).

A run the master ended while the slave was at work (a cancel, a SIDEPEND that failed, a wait given
up: :data:`~.models.states.ABORTING`) still takes logs, attachments, results and its finish (they are
worth keeping), but every answer says ``abort``.

The result of the last jobuild, or of a failed one, decides the job: it ends the job and finishes the
run, and its answer says so (``finished``), so the slave need not call finish; a finish that comes
anyway (an older slave) gets the job's state when it agrees (or reports an error after the results,
in its teardown), a ``conflict`` when it contradicts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from autotua import faults
from autotua.params import identity
from autotua_master import rows

from .errors import Conflict, Invalid, NotFound, OffsetGap, RunOver, TooLarge
from .models import Attachment, Job, JobuildResult, LogFile, Provision, Run, RunInputs
from .models.inputs import FIXED as INPUTS_FIXED
from .models.result import check_attachment_name, spool
from .models.states import ABORTING, JobState, ProvisionState, RunEnd

_DIGEST_RE = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):")
#: a field of the job's plan entry whose index is the parameter, in each database's JSON
_PLAN_ENTRY = {"postgresql": "(jobs_job.plan -> %s ->> '{}')",
               "sqlite": "json_extract(jobs_job.plan, '$[' || %s || '].{}')"}
#: a column of the run's result of the jobuild whose index is the parameter (for held()'s extras)
_RESULT_OF = 'SELECT {} FROM jobs_jobuildresult WHERE run_id = jobs_run.id AND jobs_jobuildresult."index" = %s'


class Answer(dict):
    """An answer to a slave's call; ``waiting_on`` names the SIDEPEND provisions a ``wait`` waits for."""

    waiting_on: tuple[int, ...] = ()


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


# -- finding the run -----------------------------------------------------------------------------------
def run_uuid(slave, run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise NotFound(f"no run {run_id} of slave {slave}") from None


def held(slave, run_id: str, *, lock: bool = True, **extras: tuple[str, list]) -> Run:
    """The slave's run ``run_id`` with its job, its row locked (inside a transaction), in one statement;
    another slave's run looks exactly like a missing one. ``extras``: name -> (an SQL expression on
    ``jobs_run``, its parameters), set on the run as attributes (raw values: a JSON one is text)."""
    key = Run._meta.get_field("uuid").get_db_prep_value(run_uuid(slave, run_id), connection)
    names = list(extras)
    sql = (f"SELECT {rows.columns(Run)}, {rows.columns(Job)}"
           + "".join(f", ({extras[n][0]})" for n in names)
           + " FROM jobs_run JOIN jobs_job ON jobs_job.id = jobs_run.job_id"
           + " WHERE jobs_run.uuid = %s AND jobs_run.slave_id = %s"
           + (" FOR UPDATE OF jobs_run" if lock and connection.features.has_select_for_update_of else ""))
    row = rows.one(sql, [p for n in names for p in extras[n][1]] + [key, slave.pk])
    if row is None:
        raise NotFound(f"no run {run_id} of slave {slave}")
    n, m = rows.width(Run), rows.width(Job)
    run = rows.build(Run, row[:n])
    run.job = rows.build(Job, row[n:n + m])
    for name, value in zip(names, row[n + m:], strict=True):
        setattr(run, name, value)
    return run


def check_writable(run: Run) -> None:
    if run.ended is not None and run.end not in ABORTING:
        raise RunOver(f"run {run.uuid} is over: {run.get_end_display()}"
                      + (f" ({run.end_reason})" if run.end_reason else ""))


def check_index(run: Run, index: int) -> dict:
    plan = run.job.plan
    if not 0 <= index < len(plan):
        raise Invalid(f"jobuild index {index} is not in the plan (0 to {len(plan) - 1})", field="index")
    return plan[index]


def abort_reason(run: Run) -> str | None:
    if run.end in ABORTING:
        return run.end_reason or "the master ended the run"
    return None


# -- heartbeat -----------------------------------------------------------------------------------------
def heartbeat(slave, run_id: str) -> Answer:
    """Extend the lease of a live run (one statement); tell the slave to stop otherwise."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.AUTOTUA_LEASE_SECONDS)
    if Run.objects.filter(uuid=run_uuid(slave, run_id), slave=slave, ended__isnull=True).update(
            last_heartbeat=now, lease_expires=expires):
        return Answer(action="continue", lease=Run(lease_expires=expires).lease())
    run = held(slave, run_id, lock=False)
    check_writable(run)
    return Answer(action="abort", reason=abort_reason(run))


# -- log -----------------------------------------------------------------------------------------------
def append_log(slave, run_id: str, index: int, first: int, data: bytes) -> int:
    """Append a chunk that starts at byte ``first`` of jobuild ``index``'s log; the log's new length."""
    with transaction.atomic():
        run = held(slave, run_id, sealed=(_RESULT_OF.format("log_size"), [index]))
        check_writable(run)
        check_index(run, index)
        log = LogFile.objects.select_for_update().filter(run=run, index=index).first()
        if log is None:
            LogFile.objects.bulk_create([LogFile(run=run, index=index)], ignore_conflicts=True)
            log = LogFile.objects.select_for_update().get(run=run, index=index)
        log.run = run
        if first > log.size:
            raise OffsetGap(f"log offset {first} is past the end of the log ({log.size} bytes received)",
                            offset=log.size)
        if run.sealed is not None and first + len(data) > run.sealed:
            raise Conflict(f"the result of jobuild {index} was sent with log_size {run.sealed}; "
                           "its log cannot grow now", offset=log.size)
        size, same = log.append(first, data)
        if not same:
            raise Conflict(f"bytes {first}-{first + len(data) - 1} differ from the log already received",
                           offset=size)
        return size


# -- attachments ---------------------------------------------------------------------------------------
def attach(slave, run_id: str, index: int, name: str, stream, length: int | None,
           digest_header: str | None) -> tuple[bool, dict]:
    """Store an upload; (created, its description). The body is spooled and checked before the lock."""
    limit = settings.AUTOTUA_ATTACHMENT_BYTES
    found = held(slave, run_id, lock=False)
    bad = check_attachment_name(name)
    if bad:
        raise Invalid(bad, field="name")
    want = parse_content_digest(digest_header)
    if length is not None and length > limit:
        raise TooLarge(f"attachment {name} is {length} bytes; the limit is {limit}", limit=limit)
    check_writable(found)
    check_index(found, index)
    spooled = spool(stream, limit, found.directory / str(index) / "attachments")
    if spooled is None:
        raise TooLarge(f"attachment {name} is larger than the limit of {limit} bytes", limit=limit)
    tmp, size, sha = spooled
    try:
        if sha != want:
            raise Invalid(f"attachment {name}: the body's sha-256 is {sha}, not the {want} of Content-Digest",
                          field="Content-Digest")
        with transaction.atomic():
            run = held(slave, run_id, reported=(_RESULT_OF.format("1"), [index]))
            check_writable(run)
            existing = Attachment.objects.filter(run=run, index=index, name=name).first()
            if existing is not None:
                if existing.sha256 != sha:
                    raise Conflict(f"attachment {name} was already uploaded with other content "
                                   f"(sha-256 {existing.sha256})")
                return False, existing.as_json()
            if run.reported:
                raise Conflict(f"the result of jobuild {index} was already received; attachment {name} "
                               "was not among its attachments, and none can be added now")
            att = Attachment.objects.create(run=run, index=index, name=name, size=size, sha256=sha)
            os.replace(tmp, att.path)
            tmp = None
            return True, att.as_json()
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


# -- result --------------------------------------------------------------------------------------------
def report(slave, run_id: str, index: int, data: dict, request: dict) -> Answer:
    """Record jobuild ``index``'s result (validated ``data``; ``request`` as received) and say what next.

    One statement reads and locks the run with all a result is checked against: this jobuild's own
    result (a repeat), the one before (results come in order, none after a failed one), its log's
    length, and whether this jobuild at this digest passed somewhere before."""
    with transaction.atomic():
        entry_of = _PLAN_ENTRY[connection.vendor]
        run = held(slave, run_id, same_request=(_RESULT_OF.format("request"), [index]),
                   before=(_RESULT_OF.format("status"), [index - 1]),
                   log_held=('SELECT size FROM jobs_logfile WHERE run_id = jobs_run.id AND jobs_logfile."index" = %s',
                             [index]),
                   provided=("SELECT 1 FROM jobs_provision WHERE state = 'passed' AND jobuild = "
                             f"{entry_of.format('jobuild')} AND digest = {entry_of.format('digest')}", [index, index]))
        same_request = _json(run.same_request)
        same = same_request == request
        if same and run.finish is not None and run.finish.get("by") == "results":
            return _decided(run)  # the result that decided the job, again (its answer was lost)
        check_writable(run)
        if same_request is not None:  # a repeat
            if not same:
                raise Conflict(f"the result of jobuild {index} was already received, with other content")
            return _next(run, index, same_request["status"])
        entry = check_index(run, index)
        if index > 0 and run.before is None:
            raise Invalid(f"send the result of jobuild {index - 1} before that of jobuild {index}", field="index")
        if run.before == "failed":
            raise Invalid(f"jobuild {index - 1} failed, so nothing after it runs; finish the run")
        held_attachments = ({a.name: a for a in Attachment.objects.filter(run=run, index=index)}
                            if data["attachments"] else {})
        for att in data["attachments"]:
            have = held_attachments.get(att["name"])
            if have is None:
                raise Invalid(f"attachment {att['name']} was not uploaded", field="attachments")
            if have.sha256 != att["sha256"] or have.size != att["size"]:
                raise Conflict(f"attachment {att['name']} was uploaded with sha-256 {have.sha256} and size "
                               f"{have.size}, not as this result says")
            if att.get("label") and have.label != att["label"]:
                have.label = att["label"]
                have.save(update_fields=["label"])
        log_held = run.log_held or 0
        if data["log_size"] != log_held:
            raise Conflict(f"log_size is {data['log_size']}, but {log_held} bytes of the log were received",
                           offset=log_held)
        failure = data.get("reason", "")  # the job's, not the result's: in the job's reason when it decides it
        data = {k: v for k, v in data.items() if k != "reason"}
        result = JobuildResult(run=run, job=run.job, index=index, jobuild=entry["jobuild"], digest=entry["digest"],
                               request=request, **data)
        if result.status == "passed" and not run.provided:
            # a provision that passed stays passed and released its jobs then: only a first pass of this
            # jobuild at this digest takes its lock (the results of one popular jobuild never queue on it)
            rows.insert(result)
            key = identity(result.digest, entry.get("parameters") or {})
            provision = Provision.objects.mark_passed(result.jobuild, key, result)
            if provision is not None:
                Job.objects.release(provision)
        answer = _next(run, index, result.status, result.phases, failure, new=None if result.pk else result)
        faults.point("master:result:locked")  # the result's rows are written, not committed
        return answer


def _json(value):
    """A JSON column read through a subquery arrives as text on some databases."""
    return json.loads(value) if isinstance(value, str) else value


def _next(run: Run, index: int, status: str, phases: list | None = None, failure: str = "",
          new: JobuildResult | None = None) -> Answer:
    """What the slave does after jobuild ``index``: continue, wait for a SIDEPEND, or abort; after
    the last result, or a failed one, the job is decided and the run finished here. ``new``: the
    result not yet written; it is, with the job's end when it decides the job (one statement)."""
    why = abort_reason(run)
    job = run.job
    decides = status == "failed" or index + 1 == len(job.plan)
    if decides and not why and run.finish is None:
        return _decide(run, index, status, phases or [], failure, result=new)
    if new is not None:
        rows.insert(new)
    if why:
        return Answer(action="abort", reason=why)
    if decides:
        return _decided(run)
    nxt = job.plan[index + 1]["jobuild"]
    if not any(s["required_by"] == nxt for s in job.sidepends):
        return Answer(action="continue")
    pending = list(job.requirements.filter(required_by=nxt).exclude(provision__state=ProvisionState.PASSED)
                   .values_list("provision_id", "provision__jobuild", "provision__state", "provision__provider_id",
                                "provision__provider__state"))
    if not pending:
        if run.waiting_since:
            Run.objects.filter(pk=run.pk).update(waiting_since=None)
        return Answer(action="continue")
    names = ", ".join(sorted({j for _, j, *_ in pending}))
    failed = [j for _, j, state, *_ in pending if state == ProvisionState.FAILED]
    if failed:  # its provider's end fails the job first; this is the same, seen from here
        job.end(JobState.FAILED, f"SIDEPEND {', '.join(failed)} failed", run_end=RunEnd.ABORTED, run=run)
        return Answer(action="abort", reason=f"SIDEPEND {', '.join(failed)} failed")
    now = timezone.now()
    stopped = [f"{j} (job #{p} is {state or 'gone'})" if p else j
               for _, j, _, p, state in pending if state != JobState.RUNNING]
    waited = (now - run.waiting_since).total_seconds() if run.waiting_since else 0.0
    if stopped or waited > settings.AUTOTUA_WAIT_LIMIT:
        reason = (f"SIDEPEND {', '.join(stopped)} is not running anywhere now" if stopped else
                  f"waited {waited:.0f} s for SIDEPEND {names}, longer than the limit of "
                  f"{settings.AUTOTUA_WAIT_LIMIT} s")
        job.lose_run(run, RunEnd.WAITED, f"{reason}: the job goes back to the queue")
        return Answer(action="abort", reason=f"{reason}: the job goes back to the queue")
    if run.waiting_since is None:
        Run.objects.filter(pk=run.pk).update(waiting_since=now)
    providers = ", ".join(sorted({f"job #{p}" for _, _, _, p, _ in pending}))
    answer = Answer(action="wait", retry_after=settings.AUTOTUA_WAIT_RETRY_AFTER,
                    reason=f"SIDEPEND {names} has not passed yet (it runs in {providers})")
    answer.waiting_on = tuple(sorted({pid for pid, *_ in pending}))
    return answer


def _decide(run: Run, index: int, status: str, phases: list, failure: str = "", result=None) -> Answer:
    """The last result, or a failed one: the job ends as the results say (a ``failure`` from
    the slave, such as a limit it hit, ends the reason), the run is finished; ``result``, when not
    yet written, in the same statement."""
    job = run.job
    if status == "failed":
        phase = next((p.get("name") for p in phases if p.get("status") == "failed"), None)
        state, reason = JobState.FAILED, f"{job.plan[index]['jobuild']} failed" + (f" in {phase}" if phase else "")
        reason += f": {failure}" if failure else ""
    else:
        state, reason = JobState.PASSED, ""
    run.finish = {"request": {"status": state, "reason": reason}, "answer": {"job": {"id": job.pk, "state": state}},
                  "by": "results"}
    job.end(state, reason, run=run, result=result)
    return _decided(run)


def _decided(run: Run) -> Answer:
    """The answer to the result that decided the job (and to its repeats)."""
    return Answer(action="continue", finished=True, job=run.finish["answer"]["job"])


# -- inputs --------------------------------------------------------------------------------------------
def record_inputs(slave, run_id: str, data: dict) -> tuple[bool, dict]:
    """Store the inputs ``data`` (validated) of the slave's run; (whether that changed the record, the
    answer). Idempotent as every write: the same body again is answered the same; one that differs in
    what is recorded is a ``conflict`` — except ``emerge_info`` (known only once the job's container
    runs), which a later call that repeats the rest may add if the first had none. The answer echoes
    what is recorded for the fields the request carried (``emerge_info`` as its size and SHA-256)."""
    with transaction.atomic():
        run = held(slave, run_id)
        check_writable(run)
        existing = RunInputs.objects.filter(run=run).first()
        info = data.get("emerge_info")
        changed = False
        if existing is None:
            existing = RunInputs.objects.create(run=run, emerge_info=info or "",
                                                **{f: data[f] for f in INPUTS_FIXED})
            changed = True
        else:
            for f in INPUTS_FIXED:
                if getattr(existing, f) != data[f]:
                    raise Conflict(f"the inputs of run {run.uuid} were already received, with another {f}", field=f)
            if info is not None and existing.emerge_info and existing.emerge_info != info:
                raise Conflict(f"emerge_info of run {run.uuid} was already received, with other content",
                               field="emerge_info")
            if info and not existing.emerge_info:
                existing.emerge_info, existing.updated = info, timezone.now()
                existing.save(update_fields=["emerge_info", "updated"])
                changed = True
        faults.point("master:inputs:locked")  # the inputs are written, not committed
    answer = {f: getattr(existing, f) for f in INPUTS_FIXED}
    if info is not None:
        answer["emerge_info"] = {"size": len(info.encode()), "sha256": hashlib.sha256(info.encode()).hexdigest()}
    return changed, answer


# -- finish --------------------------------------------------------------------------------------------
def finish(slave, run_id: str, status: str, reason: str) -> Answer:
    request = {"status": status, "reason": reason}
    with transaction.atomic():
        run = held(slave, run_id)
        if run.finish is not None:
            if run.finish.get("by") == "results":
                # the results decided the job: a finish that says so (or that its teardown failed
                # afterwards, an error) gets the job's state; one that says otherwise is a conflict
                if status not in (run.finish["request"]["status"], "error"):
                    raise Conflict(f"run {run.uuid} was finished by its results: the job "
                                   f"{run.finish['request']['status']}")
                return Answer(run.finish["answer"])
            if run.finish["request"] != request:
                raise Conflict(f"run {run.uuid} was already finished as {run.finish['request']['status']}")
            return Answer(run.finish["answer"])
        check_writable(run)
        job = run.job
        if run.live:
            results = dict(run.results.values_list("index", "status"))
            if status == "passed":
                missing = [e["jobuild"] for e in job.plan if results.get(e["index"]) != "passed"]
                if missing:
                    raise Invalid(f"finish passed, but no passed result for {', '.join(missing)}", field="status")
                job.end(JobState.PASSED, run=run)
            elif status == "failed":
                if not reason:
                    failed = [job.plan[i]["jobuild"] for i, s in sorted(results.items()) if s == "failed"]
                    reason = f"{failed[0]} failed" if failed else "failed"
                job.end(JobState.FAILED, reason, run=run)
            else:
                # error, or a cancel the master did not ask for: the job was not done, try again
                job.lose_run(run, RunEnd.FINISHED, f"{status}: {reason}" if reason else status)
        else:  # the master ended it (cancel, abort): the job is where that left it
            job.state = Job.objects.filter(pk=job.pk).values_list("state", flat=True).get()
        answer = {"job": {"id": job.pk, "state": job.state}}
        Run.objects.filter(pk=run.pk).update(finish={"request": request, "answer": answer})
        faults.point("master:finish:locked")  # the job's end is written, not committed
        return Answer(answer)
