"""``autotua-jobuild submit|watch|results|rerun``: jobs on the master, from the terminal (docs/maintainer.md).

``watch`` follows a job: its state as it changes and each jobuild's log as the slave sends it (the
bridge's colours kept on a terminal), and exits with the job's outcome: 0 passed, 1 failed or
invalid, 3 error (the infrastructure's), 4 cancelled (2 stays usage or environment, as everywhere in
this tool).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from autotua.cli.master import MasterClient, load_settings

EXIT = {"passed": 0, "failed": 1, "invalid": 1, "error": 3, "cancelled": 4}
FINAL = ("passed", "failed", "error", "cancelled")
ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+@=,~-]")


def client(args) -> MasterClient:
    return MasterClient(load_settings(args.master, args.token, args.config))


def _problems(job: dict) -> list[str]:
    return ([f" * WARNING [{w['kind']}] {w['message']}" for w in job.get("warnings", [])]
            + [f" * ERROR [{e['kind']}] {e['message']}" for e in job.get("errors", [])])


def describe(job: dict) -> str:
    where = f"r{job['revno']}" if job.get("revno") is not None else job.get("revision", "")[:20]
    reason = f" ({job['reason']})" if job.get("reason") else ""
    return f"job #{job['id']} {job['root']}: {job['state']} at {where} ({job['arch']}, {job['stage3']}){reason}"


def _created(c: MasterClient, job: dict, verb: str) -> int:
    print(f">>> {verb} {describe(job)}")
    for line in _problems(job):
        print(line)
    print(f"    {c.job_url(job['id'])}")
    return EXIT["invalid"] if job["state"] == "invalid" else 0


# -- submit, rerun ------------------------------------------------------------------------------------
def cmd_submit(args) -> int:
    c = client(args)
    job = c.create_job(args.atom, revision=args.revision or "", arch=args.arch or "", stage3=args.stage3 or "",
                       notify=args.notify)
    code = _created(c, job, "created")
    if args.watch and job["state"] != "invalid":
        return Watcher(c, job["id"], colour=_colour(args), poll=args.poll, timeout=args.timeout).run()
    return code


def cmd_rerun(args) -> int:
    c = client(args)
    job = c.rerun(args.job, notify=True if args.notify else None)
    code = _created(c, job, f"job #{args.job} rerun as")
    if args.watch and job["state"] != "invalid":
        return Watcher(c, job["id"], colour=_colour(args), poll=args.poll, timeout=args.timeout).run()
    return code


# -- watch ---------------------------------------------------------------------------------------------
def _colour(args) -> bool:
    return args.color == "always" or (args.color == "auto" and sys.stdout.isatty())


def latest_run(job: dict) -> dict | None:
    return max(job["runs"], key=lambda r: r["attempt"]) if job.get("runs") else None


class Watcher:
    """Polls the job and appends the running jobuild's log to the terminal."""

    def __init__(self, c: MasterClient, job_id: int, *, colour: bool, poll: float = 1.0, timeout: float | None = None,
                 out=None):
        self.c = c
        self.job_id = job_id
        self.colour = colour
        self.poll = poll
        self.timeout = timeout
        self.out = out or sys.stdout.buffer
        self.state = None
        self.run_uuid = None
        self.index = 0
        self.offset = 0
        self.begun: set[int] = set()

    def say(self, text: str) -> None:
        self.out.write(f">>> {text}\n".encode())
        self.out.flush()

    def write(self, data: bytes) -> None:
        self.out.write(data if self.colour else ANSI_RE.sub(b"", data))
        self.out.flush()

    def run(self) -> int:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while True:
            job = self.c.job(self.job_id)
            if job["state"] in FINAL:
                self.follow(job)  # the log to its end first, then the outcome
                self.say(f"job #{job['id']} {job['state']}" + (f": {job['reason']}" if job.get("reason") else ""))
                return EXIT[job["state"]]
            if job["state"] != self.state:
                self.state = job["state"]
                self.say(describe(job))
                if job["state"] == "invalid":
                    for line in _problems(job):
                        self.out.write(line.encode() + b"\n")
                    return EXIT["invalid"]
            self.follow(job)
            if deadline and time.monotonic() > deadline:
                self.say(f"still {job['state']} after {self.timeout:g} s; stopped watching (the job goes on)")
                return 2
            time.sleep(self.poll)

    def follow(self, job: dict) -> None:
        run = latest_run(job)
        if run is None:
            return
        if run["uuid"] != self.run_uuid:
            self.run_uuid, self.index, self.offset, self.begun = run["uuid"], 0, 0, set()
            self.say(f"attempt {run['attempt']} on {run['slave']}")
        results = {r["index"]: r for r in run["results"]}
        sizes = {int(i): n for i, n in run.get("logs", {}).items()}
        plan = job["plan"]
        while self.index < len(plan):
            i = self.index
            if i not in self.begun and (i in sizes or i in results):
                self.begun.add(i)
                self.say(f"[{i + 1}/{len(plan)}] {plan[i]['jobuild']}")
            data, _ = self.c.log(job["id"], run["uuid"], i, self.offset) if i in sizes else (b"", 0)
            if data:
                self.write(data)
                self.offset += len(data)
            result = results.get(i)
            if result is not None and self.offset >= sizes.get(i, 0):  # its result is in: the log is whole
                self.say(result_line(plan[i]["jobuild"], result))
                self.index, self.offset = i + 1, 0
                continue
            break


def result_line(jobuild: str, r: dict) -> str:
    phases = " ".join(f"{p['name']}:{'ok' if p['status'] == 'passed' else p['status']}" for p in r["phases"])
    values = ", ".join(f"{k}={v}" for k, v in sorted(r["results"].items()))
    return f"{jobuild} {r['status'].upper()}" + (f" [{phases}]" if phases else "") + (f"; {values}" if values else "")


def cmd_watch(args) -> int:
    return Watcher(client(args), args.job, colour=_colour(args), poll=args.poll, timeout=args.timeout).run()


# -- results -------------------------------------------------------------------------------------------
def cmd_results(args) -> int:
    c = client(args)
    job = c.job(args.job)
    run = latest_run(job)
    results = sorted(run["results"], key=lambda r: r["index"]) if run else []
    if args.json:
        print(json.dumps({"job": job["id"], "state": job["state"], "run": run["uuid"] if run else None,
                          "results": results}, indent=2))
    else:
        print(f">>> {describe(job)}" + (f"; attempt {run['attempt']} on {run['slave']}" if run else ""))
        done = {r["index"]: r for r in results}
        for entry in job["plan"]:
            r = done.get(entry["index"])
            if r is None:
                print(f"  {entry['index'] + 1:2}. {entry['jobuild']:<36} (no result)")
                continue
            print(f"  {entry['index'] + 1:2}. {result_line(entry['jobuild'], r)}")
            for k, v in sorted(r["results"].items()):
                print(f"        {k} = {v}")
            for a in r["attachments"]:
                label = f", {a['label']}" if a.get("label") else ""
                print(f"        attachment {a['name']} ({a['size']} bytes{label})")
    if args.download and run:
        dest = Path(args.download)
        for r in results:
            where = dest / f"{r['index'] + 1}-{_SAFE_NAME.sub('_', r['jobuild'])}"
            where.mkdir(parents=True, exist_ok=True)
            data, _ = c.log(job["id"], run["uuid"], r["index"], 0)
            (where / "log.txt").write_bytes(data)
            for a in r["attachments"]:
                name = _SAFE_NAME.sub("_", a["name"]).lstrip(".") or "attachment"
                (where / name).write_bytes(c.attachment(job["id"], run["uuid"], r["index"], a["name"]))
        print(f">>> logs and attachments in {dest}")
    return EXIT.get(job["state"], 0) if job["state"] in (*FINAL, "invalid") else 0


def add_parsers(sub) -> None:
    """The job commands, on ``autotua-jobuild``'s subcommand parser."""
    def master_options(s):
        s.add_argument("--master", help="the master's URL (default: $AUTOTUA_MASTER or the config file)")
        s.add_argument("--token", help="your API token (default: $AUTOTUA_TOKEN or the config file)")
        s.add_argument("--config", help="the config file (default: ~/.config/autotua/jobuild.conf)")

    def watch_options(s):
        s.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                       help="keep the log's colours (auto: on a terminal)")
        s.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the job (default 1)")
        s.add_argument("--timeout", type=float, help="stop watching after this many seconds (exit 2)")

    s = sub.add_parser("submit", help="create a job on the master; print its page (--watch: follow it)")
    s.add_argument("atom")
    s.add_argument("--revision", "-r", help="the tree revision (default: the master's tip)")
    s.add_argument("--arch", help="default: the master's")
    s.add_argument("--stage3", metavar="FLAVOUR", help="default: the root jobuild's STAGE3")
    s.add_argument("--notify", action="store_true", help="email me when it ends")
    s.add_argument("--watch", action="store_true", help="then follow it, as `watch` does")
    master_options(s)
    watch_options(s)
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser("watch", help="follow a job: its state and its live log; exit with its outcome")
    s.add_argument("job", type=int, metavar="JOB")
    master_options(s)
    watch_options(s)
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("results", help="a job's results, phases and attachments (--download: save them)")
    s.add_argument("job", type=int, metavar="JOB")
    s.add_argument("--json", action="store_true")
    s.add_argument("--download", metavar="DIR", help="save each jobuild's log and attachments below DIR")
    master_options(s)
    s.set_defaults(func=cmd_results)

    s = sub.add_parser("rerun", help="a new job with an ended job's pins (root, arch, flavour, revision)")
    s.add_argument("job", type=int, metavar="JOB")
    s.add_argument("--notify", action="store_true", help="email me when it ends")
    s.add_argument("--watch", action="store_true", help="then follow it, as `watch` does")
    master_options(s)
    watch_options(s)
    s.set_defaults(func=cmd_rerun)
