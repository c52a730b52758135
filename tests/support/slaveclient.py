"""The slave's side of docs/protocol.md over plain HTTP, one method per endpoint, raw responses: for
the master's protocol tests and the load test's simulated slaves."""

from __future__ import annotations

import base64
import hashlib
import uuid

import requests


def sha256_digest_header(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


class SlaveClient:
    """The slave's side of docs/protocol.md, one method per endpoint, returning raw responses."""

    def __init__(self, url: str, token: str, name: str = ""):
        self.url = url + "/api/v1/"
        self.token = token
        self.name = name
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Slave {token}"

    def claim(self, run: str | None = None, arch: str = "amd64", flavours=("openrc",), *, wait: int = 0,
              timeout: float | None = None, **extra):
        """A claim; ``wait``: a long-poll (``Prefer: wait=N``), as autotua-slave claims; without it, as an
        older slave does (answered at once)."""
        body = {"run": run or str(uuid.uuid4()), "arch": arch, "flavours": list(flavours), **extra}
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        return self.http.post(self.url + "claim", json=body, headers=headers, timeout=timeout)

    def me(self):
        return self.http.get(self.url + "slaves/me")

    def heartbeat(self, run: str):
        return self.http.post(self.url + f"runs/{run}/heartbeat", json={})

    def log(self, run: str, index: int, first: int, data: bytes, *, content_range: str | None = None):
        last = first + len(data) - 1
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": content_range or f"bytes {first}-{last}"}
        return self.http.patch(self.url + f"runs/{run}/jobuilds/{index}/log", data=data, headers=headers)

    def attach(self, run: str, index: int, name: str, data: bytes, *, digest: str | None = None):
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Digest": digest if digest is not None else sha256_digest_header(data)}
        return self.http.put(self.url + f"runs/{run}/jobuilds/{index}/attachments/{name}", data=data,
                             headers=headers)

    def result(self, run: str, index: int, status: str = "passed", *, wait: int = 0, **body):
        body = {"status": status, "exit_code": 0 if status == "passed" else 1, "log_size": 0, **body}
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        return self.http.put(self.url + f"runs/{run}/jobuilds/{index}/result", json=body, headers=headers)

    def finish(self, run: str, status: str = "passed", reason: str = ""):
        return self.http.post(self.url + f"runs/{run}/finish", json={"status": status, "reason": reason})

    def run_through(self, claimed: dict, status: str = "passed") -> dict:
        """Report every jobuild of a claimed job as ``status`` (the last one) and finish."""
        run = claimed["run"]
        plan = claimed["job"]["plan"]
        for e in plan:
            last = e["index"] == len(plan) - 1
            r = self.result(run, e["index"], status if last else "passed")
            assert r.status_code == 200, r.text
        if r.json().get("finished"):  # the last result finished the run
            return {"job": r.json()["job"]}
        r = self.finish(run, status)
        assert r.status_code == 200, r.text
        return r.json()
