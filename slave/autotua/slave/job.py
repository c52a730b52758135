"""One job from claim to finish: trust, sync, stage3, distfiles, container, each jobuild, teardown, finish.

Every step's fault is a :class:`~autotua.slave.SlaveError` naming the step; the job then
finishes as ``error`` with that sentence. A failed phase fails the job and nothing after it runs;
so does a limit of the container (memory, processes, disk): ``failed``, with the limit as the
reason, never an ``error`` that would send the same job to the next volunteer.
A cancel (heartbeat or result answer) kills what runs and finishes as ``cancelled``; a SIGTERM
does the same as ``error`` ("the slave was stopped"), so the master can requeue the job. Teardown
happens on every way out, before finish; the job's directory is deleted only once nothing is
mounted below it (and kept, for a failed job, with ``keep_failed_roots``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autotua import faults
from autotua.bridge import jobuild_sh
from autotua.slave import Cancelled, SlaveError, Stopped, binpkgs
from autotua.slave.api import (
    LONG_POLL,
    Api,
    ApiError,
    AuthError,
    Conflict,
    Interrupted,
    RunOver,
    TooLarge,
    Unreachable,
)
from autotua.slave.binpkgs import stage3_profile
from autotua.slave.claim import Heartbeat
from autotua.slave.config import Config
from autotua.slave.container import INSIDE, Container, Keeper
from autotua.slave.distfiles import Distfiles, merge_mirrors
from autotua.slave.fsutil import UnsafePath, read_regular_in, remove_tree
from autotua.slave.harvest import harvest
from autotua.slave.inputs import emerge_info, run_inputs, stage3_input
from autotua.slave.logstream import LogStream
from autotua.slave.makeconf import portage_spec
from autotua.slave.phases import Outcome, iso, run_jobuild
from autotua.slave.preflight import Host
from autotua.slave.rootfs import RootCache
from autotua.slave.snapshot import Repository, open_repository
from autotua.slave.stage3 import Stage3Store
from autotua.slave.sync import Prepared, TreeCache, prepare
from autotua.slave.trust import check as check_trust

log = logging.getLogger("autotua.slave.job")
_ATTACHMENT_CHARS = re.compile(r"[^A-Za-z0-9_.+@=,~-]")
DEFAULT_LIMITS = {"phase_timeout": 3600, "log_chunk_bytes": 1 << 20, "attachment_bytes": 10 << 20}


def attachment_name(name: str) -> str:
    """The protocol's attachment names: letters, digits and ``_.+@=,~-``, at most 200, no leading . or -."""
    safe = _ATTACHMENT_CHARS.sub("_", name)
    if safe[:1] in (".", "-"):
        safe = "_" + safe
    return safe[:200]


class Workspace:
    """A job's directory under ``<work>/jobs/<run>`` (the layout is in :mod:`autotua.slave.container`)."""

    def __init__(self, jobs_dir: str | os.PathLike, run: str):
        if not run or "/" in run or run.startswith("."):
            raise SlaveError(f"{run!r} is not a run id", "claim")
        self.run = run
        self.dir = Path(jobs_dir) / run
        self.tree, self.bridge, self.logs = (self.dir / d for d in ("tree", "bridge", "logs"))

    def create(self) -> None:
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir.parent, 0o700)  # the jobs' disks hold their setuid programs: no host user goes there
        for d in (self.tree, self.bridge, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(jobuild_sh(), self.bridge / "jobuild.sh")
        for d in (self.tree, self.bridge):
            d.chmod(0o755)

    def spec(self, lower: Path, prepared: list[Prepared], distdir: Path, host: Host, *, repository: str = "",
             portconf: list[Path] = (), portage: dict | None = None, pkgdir: str = "") -> dict:
        """What the keeper builds: the root, its mounts, the slave's portage defaults, PORTCONF, the
        binary package cache, the limits and the network."""
        return {
            **host.container, "lower": str(lower), "tree": str(self.tree), "bridge": str(self.bridge),
            "distdir": str(distdir), "repository": repository if repository and os.path.isabs(repository) else "",
            "portage": portage or {}, "pkgdir": pkgdir if pkgdir and os.path.isabs(pkgdir) else "",
            "portconf": [str(p) for p in portconf], "outs": [p.index for p in prepared],
            "dirs": [f"{INSIDE}/jobs/{p.index}/{d}" for p in prepared for d in ("work", "temp")],
            "hostname": f"autotua-{self.run[:8]}",
        }


@dataclass
class Report:
    """How the job ended, for the finish call and the daemon's log."""

    status: str
    reason: str = ""
    run_over: bool = False
    teardown_failed: bool = False


class JobRunner:
    """One claimed job through the pipeline; ``api`` is the master's (a local run,
    :mod:`autotua.slave.local`, gives a stand-in that writes what the master would get to a directory)."""

    log_interval = 1.0  # seconds between log chunks sent while a jobuild prints

    def __init__(self, cfg: Config, api: Api, claimed: dict, *, host: Host | None = None,
                 keeper: Keeper | None = None, stopping: threading.Event | None = None,
                 at_once: threading.Event | None = None):
        self.cfg = cfg
        self.host = host or Host.of(cfg)
        self.keeper = keeper  # started ahead by the daemon; it closes it if the job never gets this far
        self.api = api
        self.run_id: str = claimed["run"]
        self.job: dict = claimed["job"]
        self.lease: dict = claimed.get("lease") or {}
        self.limits = {**DEFAULT_LIMITS, **(self.job.get("limits") or {})}
        self.stopping = stopping or threading.Event()
        self.at_once = at_once or threading.Event()
        self.heartbeat = Heartbeat(api, self.run_id, self.lease)
        self.ws = Workspace(cfg.jobs_dir, self.run_id)
        self.ns: Container | None = None
        self.held: int | None = None
        self.decided: dict | None = None  # the job as the result that finished the run left it
        self.repository: Repository | None = None
        self.repository_held: int | None = None
        self.label = f"job {self.job.get('id')} ({self.job.get('root')}, run {self.run_id[:8]})"

    # -- interruptions --------------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        if self.heartbeat.cancelled:
            return f"cancelled: {self.heartbeat.cancelled}"
        if self.at_once.is_set() or self.stopping.is_set():
            return "the slave is stopping"
        return None

    def check(self) -> None:
        """Raise if the job must stop (between steps, and while waiting)."""
        if self.heartbeat.cancelled:
            raise Cancelled(self.heartbeat.cancelled, self.heartbeat.run_over)
        if self.at_once.is_set() or self.stopping.is_set():
            raise Stopped("SIGTERM" if not self.at_once.is_set() else "at once", self.at_once.is_set())

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self.check()

    # -- the job --------------------------------------------------------------------------------------
    def run(self) -> Report:
        log.info("%s: claimed (attempt %s, %d jobuilds)", self.label, self.job.get("attempt"),
                 len(self.job.get("plan") or []))
        self.heartbeat.start()
        report = Report("error", "the job did not start")
        try:
            report = self._run()
        except Cancelled as c:
            report = Report("cancelled", f"aborted on the master's request: {c.reason}", run_over=c.run_over)
        except Stopped as s:
            report = Report("error", f"the slave was stopped ({s.reason}) before the job ended")
        except (RunOver, Interrupted) as e:
            report = Report("cancelled", str(e), run_over=True)
        except (SlaveError, ApiError) as e:
            report = Report("error", str(e))
        except KeyboardInterrupt:  # a local run, interrupted before its container was built (the daemon
            report = Report("error", "interrupted")  # takes SIGINT as a stop, and never gets one)
        except Exception as e:  # a bug of ours: still tear down and report, never leave mounts
            log.exception("%s: unexpected failure", self.label)
            report = Report("error", f"the slave failed: {type(e).__name__}: {e}")
        finally:
            self.heartbeat.stop()
            self._harvest()
            report.teardown_failed = not self._teardown()
            if self.held is not None:  # the shared lock on the stage3 root
                os.close(self.held)
                self.held = None
            if self.repository_held is not None:  # and on the repository snapshot
                os.close(self.repository_held)
                self.repository_held = None
        if report.teardown_failed and report.status == "passed":
            report = Report("error", "teardown failed (mounts left behind); see the slave's log", teardown_failed=True)
        self._finish(report)
        self._cleanup(report)
        log.info("%s: %s%s", self.label, report.status, f" ({report.reason})" if report.reason else "")
        return report

    def _run(self) -> Report:
        cfg, job = self.cfg, self.job
        check_trust(self.host.trusted, job.get("maintainers") or {})  # before anything of it is fetched
        self.ws.create()
        arch, flavour = job.get("arch") or cfg.arch, job.get("stage3") or "openrc"
        if arch != cfg.arch:
            raise SlaveError(f"the job is for {arch}, this slave runs {cfg.arch}", "claim")
        if flavour not in cfg.flavours:
            raise SlaveError(f"the job wants a {flavour} stage3; this slave serves {', '.join(cfg.flavours)}",
                             "claim")
        tree_info = job.get("tree") or {}
        prepared = self._sync()
        self.check()
        store = Stage3Store(cfg.stage3_mirror, cfg.cache_dir, cfg.release_key)
        try:
            tarball = store.fetch(arch, flavour)
        except SlaveError as e:
            cached = store.cached(arch, flavour)
            if not cached or "cannot fetch" not in str(e):
                raise
            tarball = cached[0]  # the mirror is down: the newest stage3 we verified earlier will do
            log.warning("%s: %s; using the cached %s", self.label, e, tarball.name)
        roots = RootCache(cfg.cache_dir)
        lower = roots.get(tarball)
        self.held = roots.hold(lower)
        profile = stage3_profile(lower)
        if not self.host.idmap:
            lower = roots.shifted(lower, self.host.ids)
        self.repository = self._inputs(tarball, tree_info.get("revision", ""))
        self.check()
        distfiles = Distfiles(cfg.distdir, merge_mirrors(cfg.mirror_list(), job.get("mirrors")))
        try:
            paths = distfiles.get_all(d for p in prepared for d in p.distfiles)
        finally:
            distfiles.close()
        self.check()
        portconf = [paths[d.name] for p in prepared for d in p.portconf]
        pkgdir = self._pkgdir(arch, flavour, tarball, profile)
        self._start_container(lower, prepared, portconf, pkgdir)
        self._send_emerge_info(tarball, tree_info.get("revision", ""))
        for p in prepared:
            self.check()
            outcome = self._jobuild(p)
            if not outcome.passed:
                return Report("failed", outcome.reason())
        return Report("passed")

    def _sync(self) -> list[Prepared]:
        """The plan's files, verified, in the job's ``tree/``: the master's branch, pulled into the
        cache, at the pinned revision (:mod:`autotua.slave.sync`)."""
        tree_info = self.job.get("tree") or {}
        tree = TreeCache(self.cfg.cache_dir).update(tree_info.get("url") or self.cfg.master.rstrip("/") + "/tree/",
                                                    tree_info.get("revision", ""))
        return prepare(tree, self.job, self.ws.tree)

    def _start_container(self, lower: Path, prepared: list[Prepared], portconf: list[Path], pkgdir: Path) -> None:
        cfg = self.cfg
        repository = str(self.repository.path) if self.repository else ""
        portage = portage_spec(cfg.cpus, cfg.binhost, cfg.mirrors.get("gentoo", []))
        self.ns = Container(self.ws.dir, self.ws.spec(lower, prepared, cfg.distdir, self.host,
                                                       repository=repository, portconf=portconf, portage=portage,
                                                       pkgdir=str(pkgdir)), self.keeper)
        self.keeper = None  # the container has it now
        info = self.ns.start()
        for w in info.get("warnings", []):
            log.warning("%s: %s", self.label, w)

    # -- what the run is made of (issue 12; the container mounts self.repository) -------------------
    def _inputs(self, tarball: Path, revision: str) -> Repository | None:
        """Get the job's Gentoo repository (the pinned snapshot, verified, unpacked and held; or the
        host's, by the ``repository`` setting) and tell the master what the run is made of: the stage3,
        the revision, the repository. ``emerge --info`` follows, from inside the job, in a second PUT
        (:func:`autotua.slave.inputs.run_inputs` with ``emerge_info``)."""
        repo = open_repository(self.cfg, self.job.get("snapshot"))
        self.repository_held = repo.hold() if repo else None
        try:
            self.api.put_inputs(self.run_id, run_inputs(tarball, revision, repo))
        except (RunOver, AuthError, Unreachable, Interrupted):
            raise
        except ApiError as e:  # refused (a conflict, a master without the endpoint): the run goes on
            log.warning("%s: the master did not record the run's inputs: %s", self.label, e)
        return repo

    def _pkgdir(self, arch: str, flavour: str, tarball: Path, profile: str) -> Path:
        """The binary package cache of this job's signers (:mod:`autotua.slave.binpkgs`)."""
        repo = self.repository
        k = binpkgs.key(arch=arch, flavour=flavour, stage3=stage3_input(tarball)["timestamp"], profile=profile,
                        repository=(repo.snapshot or f"{repo.source}:{repo.timestamp}") if repo else "none",
                        signers=binpkgs.signers(self.job.get("maintainers") or {}))
        owner = None if self.host.idmap else self.host.ids.root
        return binpkgs.BinpkgCache(self.cfg.cache_dir).get(k, owner)

    def _send_emerge_info(self, tarball: Path, revision: str) -> None:
        """``emerge --info`` from inside the job (where the stage3 has portage), added to the run's inputs."""
        try:
            info = emerge_info(self.ns)
        except SlaveError as e:
            log.warning("%s: emerge --info: %s", self.label, e)
            return
        if info is None:
            return
        try:
            self.api.put_inputs(self.run_id, run_inputs(tarball, revision, self.repository, info))
        except (RunOver, AuthError, Unreachable, Interrupted):
            raise
        except ApiError as e:
            log.warning("%s: the master did not record emerge --info: %s", self.label, e)

    def _harvest(self) -> None:
        """The verified distfiles portage fetched in the job, into the shared cache (before teardown:
        the job's DISTDIR layer is on its disk); never a reason for the job to fail."""
        if self.ns is None or self.ns.proc is None or self.at_once.is_set():
            return
        try:
            done = harvest(self.ns.host_path("disk", "dist-upper"), self.cfg.distdir,
                           self.repository.path if self.repository else None)
        except Exception as e:  # a harvest that failed leaves the cache as it was
            log.warning("%s: distfile harvest failed: %s", self.label, e)
            return
        if done.kept or done.dropped:  # a job can leave many files: the first few of each are named
            dropped = sorted(done.dropped.items())
            log.info("%s: %d distfiles harvested (%s); %d dropped (%s)", self.label, len(done.kept),
                     ", ".join(done.kept[:10]) + (", ..." if len(done.kept) > 10 else ""), len(dropped),
                     ", ".join(f"{n}: {why}" for n, why in dropped[:10]) + (", ..." if len(dropped) > 10 else ""))

    def _phase_timeout(self) -> float:
        job_limit = self.limits.get("phase_timeout") or 0
        return min(t for t in (self.cfg.phase_timeout, job_limit) if t) if job_limit else self.cfg.phase_timeout

    def _jobuild(self, p: Prepared) -> Outcome:
        log.info("%s: %s (%d/%d)", self.label, p.jid, p.index + 1, len(self.job["plan"]))
        stream = LogStream(self.ws.logs / f"{p.index}.log",
                           lambda offset, data: self.api.append_log(self.run_id, p.index, offset, data),
                           chunk=int(self.limits["log_chunk_bytes"]), interval=self.log_interval)
        try:
            outcome = run_jobuild(self.ns, p, stream, timeout=self._phase_timeout(), should_stop=self.stop_reason)
        except BaseException:
            stream.close(flush=False)
            raise
        if outcome.interrupted:
            stream.close(flush=not self.at_once.is_set())  # what it printed until then, unless in a hurry
            self.check()
            raise Stopped(outcome.interrupted)
        attachments = self._check_attachments(p, outcome, stream)
        outcome.log_size = stream.close()
        sent = [self._upload(p, name, send_as, label) for name, send_as, label in attachments]
        result = {
            "status": "passed" if outcome.passed else "failed",
            "exit_code": outcome.exit_code,
            "started": iso(outcome.started),
            "finished": iso(outcome.finished),
            "phases": [ph.to_json() for ph in outcome.phases],
            "results": outcome.results,
            "attachments": sent,
            "log_size": outcome.log_size,
        }
        if not outcome.passed and (outcome.limit or outcome.timed_out):
            result["reason"] = outcome.limit or outcome.timed_out  # the job's reason ends with it
        self._report(p, result)
        return outcome

    def _check_attachments(self, p: Prepared, outcome: Outcome, stream: LogStream) -> list[tuple[str, str, str]]:
        """(file in the out dir, name to send it under, label) for each attachment we can send."""
        ok, names = [], set()
        for name, label in outcome.attachments:
            if not name or "/" in name or name in (".", ".."):
                stream.note(f"attachment {name!r} left out: not a file name")
                continue
            try:
                self._read_attachment(p, name)
            except UnsafePath as e:
                stream.note(f"attachment left out: {e}")
                continue
            send_as = attachment_name(name)
            if send_as in names:
                stream.note(f"attachment {name!r} left out: named twice")
                continue
            names.add(send_as)
            ok.append((name, send_as, label))
        return ok

    def _read_attachment(self, p: Prepared, name: str) -> bytes:
        """From the job's disk (through the keeper's namespace), never through a link the job made."""
        return read_regular_in(self.ns.out_dir(), [str(p.index)], name, int(self.limits["attachment_bytes"]))

    def _upload(self, p: Prepared, name: str, send_as: str, label: str) -> dict:
        data = self._read_attachment(p, name)
        try:
            self.api.put_attachment(self.run_id, p.index, send_as, data)
        except TooLarge as e:
            raise SlaveError(f"attachment {name}: {e}", "report") from None
        faults.point(f"attach:{p.jid}")  # the master holds the attachment, not yet the result
        return {"name": send_as, "label": label, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def _report(self, p: Prepared, result: dict) -> None:
        """PUT the result; do what the answer says (continue, wait and ask again, abort).

        The master may hold the call while the next jobuild's SIDEPEND runs elsewhere (a long-poll:
        the container stays up, the heartbeat goes on); a ``wait`` answer is asked again at once, or
        after its ``retry_after`` when the master did not hold it. An answer that says the result
        ``finished`` the run (the last jobuild's, or a failed one's) needs no finish call."""
        resent = False
        while True:
            try:
                answer = self.api.put_result(self.run_id, p.index, result, hold=LONG_POLL, abandon=self.stopping)
                faults.point(f"result:{p.jid}")  # the master holds the result
            except Interrupted:
                self.check()  # stopping: Stopped (the job ends as the slave's stop says)
                raise
            except Conflict as e:
                # the master holds less of the log than log_size: send the rest, then the result again
                if resent or "offset" not in e.body:
                    raise
                stream = LogStream(self.ws.logs / f"{p.index}.log",
                                   lambda offset, data: self.api.append_log(self.run_id, p.index, offset, data),
                                   chunk=int(self.limits["log_chunk_bytes"]))
                stream.sent = int(e.body["offset"])
                stream.close()
                resent = True
                continue
            action = answer.get("action", "continue")
            if action == "continue":
                if answer.get("finished"):
                    self.decided = answer.get("job") or {}
                    self.heartbeat.stop()  # the run is over on the master
                return
            if action == "abort":
                raise Cancelled(answer.get("reason") or "aborted")
            if action == "wait":
                wait = float(answer.get("retry_after") or 0)
                log.info("%s: waiting (%s)%s", self.label, answer.get("reason", ""),
                         f"; asking again in {wait:.0f} s" if wait else "")
                faults.point(f"wait:{p.jid}")  # the master said wait; the container is up, the heartbeat on
                self.sleep(min(wait, 300))
                continue
            raise SlaveError(f"the master answered the result with an unknown action {action!r}", "report")

    # -- the end --------------------------------------------------------------------------------------
    def _teardown(self) -> bool:
        if self.ns is None:
            return True
        try:
            self.ns.teardown()
            return True
        except SlaveError as e:
            log.error("%s: teardown: %s; killing the namespace", self.label, e)
            self.ns.kill()
            return False
        finally:
            self.ns = None

    def _finish(self, report: Report) -> None:
        if report.run_over:
            return
        faults.point("finish")  # torn down; the finish (if the results did not decide the job) not sent
        if self.decided is not None:  # the last result (or a failed one) finished the run on the master
            log.info("%s: the master finished the run with its results: job %s", self.label,
                     self.decided.get("state", "?"))
            return
        payload = {"status": report.status}
        if report.reason:
            payload["reason"] = report.reason
        try:
            self.api.finish(self.run_id, payload, retry_for=5 if self.at_once.is_set() else None)
        except (RunOver, Interrupted):
            pass
        except (Unreachable, AuthError, ApiError) as e:
            log.error("%s: finish: %s", self.label, e)

    def _cleanup(self, report: Report) -> None:
        if report.teardown_failed:
            log.error("%s: keeping %s: teardown did not finish; run `autotua-slave clean`", self.label, self.ws.dir)
            return
        if self.cfg.keep_failed_roots and report.status != "passed":
            log.info("%s: keeping %s (keep_failed_roots)", self.label, self.ws.dir)
            return
        try:
            remove_tree(self.ws.dir)
        except (SlaveError, OSError) as e:
            log.error("%s: cleanup: %s", self.label, e)
