"""Talking to a live master as people do, over HTTP, in end-to-end tests (the slave's and tests/e2e).

``master`` is a :class:`~autotua_master.live.LiveMaster` with ``people``: user -> a requests session
holding that maintainer's API token. Jobs are read through the public API, as a maintainer reads them.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import requests

from autotua.demo.sampletree import SampleTree


def wait_for(pred, timeout: float = 60, what: str = "a condition", interval: float = 0.2):
    """``pred()``'s first true value, asked every ``interval`` s; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def answers(master) -> bool:
    try:
        return requests.get(master.url + "/api/v1/jobs/", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def start(master, timeout: float = 120):
    """Start a LiveMaster; on a busy machine gunicorn's first answer may come late: wait it out."""
    try:
        master.start(timeout=timeout)
    except requests.Timeout:
        wait_for(lambda: answers(master), timeout, "the master to answer")
    return master


def create(master, user: str, root: str, **kw) -> dict:
    r = master.people[user].post(master.url + "/api/v1/jobs/", json={"root": root, **kw}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()


def job(master, job_id: int) -> dict:
    r = requests.get(f"{master.url}/api/v1/jobs/{job_id}/", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def group(master, gid: int) -> dict:
    r = requests.get(f"{master.url}/api/v1/groups/{gid}/", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def latest(j: dict) -> dict:
    """The job's latest run (the API lists them newest first; this does not rely on it)."""
    return max(j["runs"], key=lambda r: r["attempt"])


def log_of(master, j: dict, index: int, run: str | None = None) -> str:
    run = run or latest(j)["uuid"]
    r = requests.get(f"{master.url}/api/v1/jobs/{j['id']}/runs/{run}/jobuilds/{index}/log", timeout=60)
    assert r.status_code == 200, r.text
    return r.text


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HEADER_RE = re.compile(r"^>>> Running (?:pkg_setup|src_unpack|src_compile|src_test)\n", re.M)


def printed(log: str) -> str:
    """What the jobuild itself printed: its log without the bridge's phase headers and the colours."""
    return _HEADER_RE.sub("", _ANSI_RE.sub("", log))


def log_has(master, job_id: int, index: int, text: str) -> bool:
    """Whether jobuild ``index``'s log of the job's latest run holds ``text`` yet (it may not exist yet)."""
    try:
        j = job(master, job_id)
        if not j["runs"]:
            return False
        r = requests.get(f"{master.url}/api/v1/jobs/{job_id}/runs/{latest(j)['uuid']}/jobuilds/{index}/log",
                         timeout=10)
    except (requests.RequestException, AssertionError):
        return False
    return r.status_code == 200 and text in r.text


def run_once(slave) -> str:
    """``autotua-slave run --once`` to completion; its log (stderr)."""
    r = slave.run("run", "--once", timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr


def slave_log(slave) -> str:
    """What a slave started with ``SlaveSetup.start()`` logged so far."""
    path = Path(slave.base) / "slave.log"
    return path.read_text(errors="replace") if path.exists() else ""


def add_jobuilds(tree: SampleTree, jobuilds: dict[str, str], message: str) -> str:
    """Write ``jobuilds`` (tree path -> text) into ``tree``'s branch, signed by their owners, and
    commit them as one more revision; returns its id."""
    for path, text in jobuilds.items():
        full = tree.branch / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
        tree.sign(full, user=path.split("/", 1)[0])
    return tree.commit(message)


def extend_tree(sample: SampleTree, dest: str | Path, jobuilds: dict[str, str], message: str) -> SampleTree:
    """A copy of the sample branch at ``dest`` with ``jobuilds`` (tree path -> text) added, signed by
    their owners, as one more revision."""
    dest = Path(dest)
    shutil.copytree(sample.branch, dest, symlinks=True)
    tree = SampleTree(dest, sample.gnupghome, sample.distdir, dict(sample.fingerprints))
    add_jobuilds(tree, jobuilds, message)
    return tree
