"""A job run on this machine with no master: ``autotua-jobuild run`` (docs/maintainer.md, "Run it locally").

The plan is resolved from a working tree, signed or not (it is the maintainer's own work in
progress: what does not verify is run as it is and named once), and then goes through the slave's
own pipeline, :class:`~autotua.slave.job.JobRunner`, step for step: the stage3 (fetched and verified,
cached), its root, the SRC_URI/PORTCONF_URI files (verified against the Manifest), the job
container, each jobuild's phases, teardown. Two things differ, and only these:

* the plan's files come from the working tree, not from the master's verified branch
  (:meth:`LocalRunner._sync`);
* what the slave would send the master goes to a :class:`Reporter`: each jobuild's log (the very
  bytes the slave sends) to the terminal and to ``<out>/<n>-<jobuild>.log``, its attachments to
  ``<out>/<n>-<jobuild>/``, the results and the outcome to ``<out>/results.json``.

SIDEPENDs are not checked: nothing here knows what passed elsewhere (the command says so).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import uuid
from pathlib import Path

from autotua.cli.jobs import ANSI_RE, result_line
from autotua.depgraph import PlanEntry, Resolution, content_digest
from autotua.signature import SignatureError, Signed, Verifier
from autotua.slave import SlaveError
from autotua.slave.config import Config
from autotua.slave.job import DEFAULT_LIMITS, JobRunner, Report, attachment_name
from autotua.slave.preflight import Host
from autotua.slave.sync import Distfile, Prepared, write_files
from autotua.tree import Tree

_CLEARSIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"


def jobuild_name(index: int, jobuild: str) -> str:
    """``3-bob_integration-1.0``: a plan entry's name in the output directory."""
    return f"{index + 1}-{attachment_name(jobuild)}"


def clearsigned_body(text: bytes) -> bytes:
    """The text of a clearsigned file, unverified (dash-escaping undone); a plain file as it is."""
    if _CLEARSIGNED not in text:
        return text
    lines = text.split(b"\n")
    start = lines.index(next(x for x in lines if x.rstrip(b"\r") == _CLEARSIGNED))
    i = start + 1
    while i < len(lines) and lines[i].strip():  # the armour headers (Hash: ...), then a blank line
        i += 1
    body = []
    for line in lines[i + 1:]:
        if line.rstrip(b"\r") == b"-----BEGIN PGP SIGNATURE-----":
            break
        body.append(line[2:] if line.startswith(b"- ") else line)
    return b"\n".join(body) + b"\n"


class LocalVerifier:
    """A verifier for a local run: a signature that verifies (with the trust given) counts; a file
    whose signature is missing or does not verify is taken as it is and listed in ``unsigned``."""

    def __init__(self, trusted: dict[str, str], cache=None):
        self.real = Verifier(trusted, cache)
        self.unsigned: dict[str, str] = {}  # path -> why it did not verify

    def close(self) -> None:
        self.real.close()

    def __enter__(self) -> LocalVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def verify_detached(self, user: str, key_data: bytes | None, data: bytes, sig: bytes | None,
                        label: str) -> Signed:
        try:
            return self.real.verify_detached(user, key_data, data, sig, label)
        except SignatureError as e:
            self.unsigned[label] = str(e)
            return Signed("")

    def verify_clearsigned(self, user: str, key_data: bytes | None, text: bytes, label: str) -> bytes:
        try:
            return self.real.verify_clearsigned(user, key_data, text, label)
        except SignatureError as e:
            self.unsigned[label] = str(e)
            return clearsigned_body(text)


def plan_files(tree: Tree, entry: PlanEntry) -> dict[str, bytes]:
    """What a plan entry's content digest covers, read from ``tree``: the jobuild, the templates it
    inherits, its Manifest and ``files/`` (as :class:`~autotua.depgraph.Resolver` reads them)."""
    jid = entry.id
    paths = [entry.path] + [tree.template_path(*name.split("/", 1)) for name in entry.inherited]
    mpath = tree.manifest_path(jid.user, jid.name)
    if tree.is_file(mpath):
        paths.append(mpath)
    paths += tree.files_under(tree.files_dir(jid.user, jid.name) + "/")
    return {p: tree.read_bytes(p) for p in paths}


def local_job(res: Resolution, tree: Tree, arch: str, flavour: str) -> dict:
    """The job as a claim would carry it, for :class:`~autotua.slave.job.JobRunner`."""
    return {"id": "local", "attempt": 1, "root": res.root, "arch": arch, "stage3": flavour,
            "tree": {"url": tree.describe(), "revision": res.revision, "revno": res.revno},
            "snapshot": None, "maintainers": {}, "mirrors": {}, "limits": dict(DEFAULT_LIMITS),
            "plan": [{"index": i, "jobuild": e.jobuild, "path": e.path, "digest": e.digest,
                      "parameters": dict(e.parameters)} for i, e in enumerate(res.plan)]}


class Reporter:
    """Stands in for the master's :class:`~autotua.slave.api.Api`: what the slave would send is
    written below ``out``, and each jobuild's log goes to ``terminal`` (bytes) as it arrives."""

    def __init__(self, out: str | os.PathLike, plan: list[dict], terminal=None, colour: bool = False):
        self.out = Path(out)
        self.plan = plan
        self.terminal = terminal
        self.colour = colour
        self.inputs: dict = {}
        self.results: dict[int, dict] = {}
        self.finished: dict | None = None
        self._begun: set[int] = set()
        self._lock = threading.Lock()  # the heartbeat's thread calls in too

    def say(self, text: str) -> None:
        self._write(f">>> {text}\n".encode())

    def _write(self, data: bytes) -> None:
        if self.terminal is not None:
            self.terminal.write(data if self.colour else ANSI_RE.sub(b"", data))
            self.terminal.flush()

    def _begin(self, index: int) -> None:
        if index not in self._begun:
            self._begun.add(index)
            self.say(f"[{index + 1}/{len(self.plan)}] {self.plan[index]['jobuild']}")

    def log_path(self, index: int) -> Path:
        return self.out / f"{jobuild_name(index, self.plan[index]['jobuild'])}.log"

    def attachment_dir(self, index: int) -> Path:
        return self.out / jobuild_name(index, self.plan[index]["jobuild"])

    # -- the Api's calls, as JobRunner makes them ------------------------------------------------
    def heartbeat(self, run: str, retry_for: float | None = None) -> dict:
        return {"action": "continue"}

    def put_inputs(self, run: str, inputs: dict) -> dict:
        self.inputs = inputs
        return {}

    def append_log(self, run: str, index: int, offset: int, data: bytes) -> int:
        with self._lock:
            self._begin(index)
            fd = os.open(self.log_path(index), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.pwrite(fd, data, offset)
                os.ftruncate(fd, offset + len(data))  # an --out used before holds no older log's tail
            finally:
                os.close(fd)
            self._write(data)
        return offset + len(data)

    def put_attachment(self, run: str, index: int, name: str, data: bytes) -> dict:
        where = self.attachment_dir(index)  # ``name`` is the protocol's: no '/', no leading '.'
        where.mkdir(parents=True, exist_ok=True)
        (where / name).write_bytes(data)
        return {}

    def put_result(self, run: str, index: int, result: dict, hold: int = 0, abandon=None) -> dict:
        with self._lock:
            self._begin(index)
            self.results[index] = {"index": index, "jobuild": self.plan[index]["jobuild"], **result}
            if self.log_path(index).exists():
                self.results[index]["log"] = self.log_path(index).name
                if not self._ends_with_newline(index):
                    self._write(b"\n")
            self.say(result_line(self.plan[index]["jobuild"], result))
        return {"action": "continue"}

    def _ends_with_newline(self, index: int) -> bool:
        with open(self.log_path(index), "rb") as f:
            f.seek(0, os.SEEK_END)
            if not f.tell():
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def finish(self, run: str, payload: dict, retry_for: float | None = None) -> dict:
        self.finished = dict(payload)
        return {}

    # -- the end ---------------------------------------------------------------------------------------
    def write(self, job: dict, report: Report, extra: dict) -> Path:
        """``<out>/results.json``: the job, how it ended, and every jobuild's result."""
        results = [self.results[i] for i in sorted(self.results)]
        for r in results:
            for a in r.get("attachments", []):
                a["path"] = f"{self.attachment_dir(r['index']).name}/{a['name']}"
        body = {"root": job["root"], "arch": job["arch"], "stage3": job["stage3"], "tree": job["tree"],
                "state": report.status, "reason": report.reason, **extra, "inputs": self.inputs,
                "plan": job["plan"], "results": results}
        path = self.out / "results.json"
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path


class LocalRunner(JobRunner):
    """:class:`~autotua.slave.job.JobRunner` with the plan's files from a working tree."""

    log_interval = 0.2  # someone is watching the terminal

    def __init__(self, cfg: Config, reporter: Reporter, job: dict, tree: Tree, plan: list[PlanEntry], *,
                 host: Host | None = None, stopping: threading.Event | None = None,
                 at_once: threading.Event | None = None):
        super().__init__(cfg, reporter, {"run": uuid.uuid4().hex, "job": job}, host=host, stopping=stopping,
                         at_once=at_once)
        self.tree = tree
        self.entries = plan
        self.label = f"{job['root']} (local run {self.run_id[:8]})"
        self.building = False  # from the container's first step on, a signal stops the run, never interrupts it

    def stop_reason(self) -> str | None:
        return "interrupted" if self.stopping.is_set() or self.at_once.is_set() else None

    def _sync(self) -> list[Prepared]:
        files: dict[str, bytes] = {}
        prepared = []
        for i, e in enumerate(self.entries):
            mine = plan_files(self.tree, e)
            if content_digest(mine) != e.digest:
                raise SlaveError(f"{e.jobuild}: its files changed in {self.tree.describe()} since the plan was "
                                 "resolved; run it again", "sync")
            files.update(mine)
            distfiles = [Distfile(d.name, d.url, d.size, {"BLAKE2B": d.blake2b, "SHA512": d.sha512}, portconf)
                         for portconf, specs in ((False, e.src_uri), (True, e.portconf_uri)) for d in specs]
            prepared.append(Prepared(i, e.id, e.path, e.digest, distfiles, dict(e.parameters)))
        write_files(self.ws.tree, files)
        return prepared

    def _start_container(self, *args) -> None:
        self.building = True
        super()._start_container(*args)


def run(cfg: Config, reporter: Reporter, job: dict, tree: Tree, plan: list[PlanEntry], *,
        stopping: threading.Event, at_once: threading.Event, on_runner=None) -> tuple[Report, LocalRunner]:
    """Run one local job as the daemon runs a claimed one: its own work directory locked, what a
    crashed local run left there cleaned first, the host checked, temporary files below the work
    directory. ``on_runner(runner)`` is called once the runner exists (the command's signal handler
    needs it)."""
    from autotua.slave import preflight
    from autotua.slave.cleanup import clean
    from autotua.slave.container import cgroups
    from autotua.slave.locks import Lock, Locked

    os.makedirs(cfg.work_dir, mode=0o700, exist_ok=True)
    try:
        lock = Lock(f"{cfg.work_dir}/slave.lock").acquire(wait=False)
    except Locked as e:
        raise SlaveError(f"another local run uses {cfg.work_dir} ({e})", "start") from None
    saved = tempfile.tempdir
    try:
        for line in clean(cfg):
            reporter.say(f"cleaned up after an earlier run: {line}")
        missing = preflight.problems(cfg)
        if missing:
            raise SlaveError("this host cannot build the job container as configured: " + "; ".join(missing),
                             "preflight")
        cgroups.prepare()
        os.makedirs(cfg.tmp_dir, mode=0o700, exist_ok=True)
        tempfile.tempdir = str(cfg.tmp_dir)
        runner = LocalRunner(cfg, reporter, job, tree, plan, host=Host.of(cfg), stopping=stopping, at_once=at_once)
        if on_runner:
            on_runner(runner)
        return runner.run(), runner
    finally:
        tempfile.tempdir = saved
        lock.release()
