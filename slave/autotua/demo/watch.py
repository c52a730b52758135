"""Follow jobs through the master's API and say what happens as it happens: new jobs (the master's
own SIDEPEND jobs too), state changes, which slave took a job, and each jobuild's result."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

FINAL = {"passed", "failed", "error", "cancelled", "invalid"}


class JobWatcher:
    """``poll()`` prints what changed since the last poll; ``jobs`` is the latest view of every job."""

    def __init__(self, url: str, session: requests.Session, out: Callable[[str], None] = print):
        self.api = url.rstrip("/") + "/api/v1/"
        self.http = session
        self.out = out
        self.jobs: dict[int, dict] = {}
        self.details: dict[int, dict] = {}
        self._said: set[tuple] = set()

    def say(self, msg: str) -> None:
        self.out(f"{time.strftime('%H:%M:%S')}  {msg}")

    def poll(self) -> None:
        r = self.http.get(self.api + "jobs/", params={"limit": 500}, timeout=30)
        r.raise_for_status()
        for job in sorted(r.json()["results"], key=lambda j: j["id"]):
            old = self.jobs.get(job["id"])
            self.jobs[job["id"]] = job
            if old is None:
                who = "queued by the master for a SIDEPEND" if job["automatic"] else f"by {job['owner']}"
                self.say(f"#{job['id']} {job['root']} ({job['stage3']}) {who}: {self._state(job)}")
            if job["state"] not in ("waiting", "queued", "invalid") and (
                    old is None or old != job or job["state"] == "running"):
                self._follow(job)  # the runs and results first, then the state they led to
            if old is not None and old["state"] != job["state"] and job["state"] != "running":
                self.say(f"#{job['id']} {job['root']}: {old['state']} -> {self._state(job)}")

    @staticmethod
    def _state(job: dict) -> str:
        return job["state"] + (f" ({job['reason']})" if job["reason"] else "")

    def _follow(self, job: dict) -> None:
        r = self.http.get(self.api + f"jobs/{job['id']}/", timeout=30)
        r.raise_for_status()
        detail = self.details[job["id"]] = r.json()
        for run in sorted(detail["runs"], key=lambda run: run["claimed"]):
            key = ("run", run["uuid"])
            if key not in self._said:
                self._said.add(key)
                self.say(f"#{job['id']} {job['root']}: running on {run['slave']} (attempt {run['attempt']})")
            for res in sorted(run["results"], key=lambda x: x["index"]):
                key = ("result", run["uuid"], res["index"])
                if key in self._said:
                    continue
                self._said.add(key)
                phases = " ".join(f"{p['name']}:{'ok' if p['status'] == 'passed' else p['status']}"
                                  for p in res["phases"])
                values = ", ".join(f"{k}={v}" for k, v in sorted(res["results"].items()))
                files = ", ".join(a.get("label") or a["name"] for a in res["attachments"])
                extra = "".join(f"; {label} {text}" for label, text in (("results", values), ("attached", files))
                                if text)
                self.say(f"#{job['id']}   {res['jobuild']} {res['status'].upper()} on {run['slave']} "
                         f"[{phases}]{extra}")
            if run["ended"] and run["end"] != "finished" and ("end", run["uuid"]) not in self._said:
                self._said.add(("end", run["uuid"]))
                self.say(f"#{job['id']} {job['root']}: run on {run['slave']} ended: {run['end']}"
                         + (f" ({run['end_reason']})" if run["end_reason"] else ""))

    def all_final(self) -> bool:
        return bool(self.jobs) and all(j["state"] in FINAL for j in self.jobs.values())

    def summary(self) -> list[str]:
        lines = []
        for job in sorted(self.jobs.values(), key=lambda j: j["id"]):
            slaves = sorted({run["slave"] for run in self.details.get(job["id"], {}).get("runs", [])})
            lines.append(f"  #{job['id']:<3} {job['root']:<24} {job['state']:<9} "
                         f"{', '.join(slaves) or '-':<26} {job['reason'][:70]}")
        return lines
