"""What a run is made of, as the slave tells the master (``PUT /api/v1/runs/<run>/inputs``,
docs/protocol.md): the stage3 it used (file name and release timestamp), the tree revision it
synced, the Gentoo repository (the pinned snapshot's date, or the host's repository and its
``metadata/timestamp.chk``, or none) and, once the job's container is up, ``emerge --info`` from
inside it (:func:`emerge_info`; none where the stage3 has no portage)."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

from autotua.slave import SlaveError
from autotua.slave.snapshot import Repository

#: what the master keeps of it (autotua_master.api.inputs.EMERGE_INFO_CHARS)
EMERGE_INFO_CHARS = 256 << 10
_NO_PORTAGE = 127
_EMERGE_INFO = f"command -v emerge >/dev/null 2>&1 || exit {_NO_PORTAGE}; exec emerge --info"


def stage3_input(tarball: Path) -> dict:
    """``{"name", "timestamp"}`` of a verified stage3 (``<cache>/stage3/<arch>/<timestamp>/<file>``)."""
    return {"name": tarball.name, "timestamp": tarball.parent.name}


def run_inputs(tarball: Path, revision: str, repository: Repository | None, emerge_info: str | None = None) -> dict:
    """The body of ``PUT runs/<run>/inputs``; send it again with ``emerge_info`` to add that."""
    body = {"stage3": stage3_input(tarball), "revision": revision,
            "repository": repository.inputs() if repository else {"source": "none"}}
    if emerge_info is not None:
        body["emerge_info"] = emerge_info
    return body


def run_in_job(container, script: str, timeout: float = 120, keep: int = 1 << 20) -> tuple[int, str]:
    """``bash -c script`` in the job's container as its root, outside any jobuild; (exit status, its
    output: the first ``keep`` bytes). Past ``timeout`` every process of the job is killed."""
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = container.spawn(["/bin/bash", "-c", script],
                               {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "NOCOLOR": "true",
                                "LC_ALL": "C"}, {0: null, 1: w, 2: w})
    finally:
        os.close(w)
        os.close(null)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                container.killall()
                raise SlaveError(f"it ran longer than {timeout:.0f} s", "container")
            if select.select([r], [], [], min(left, 0.5))[0]:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                if len(out) < keep:
                    out += chunk
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        os.close(r)
    return code, out[:keep].decode(errors="replace")


def emerge_info(container, timeout: float = 120) -> str | None:
    """``emerge --info`` run in the job's container as its root, before any jobuild: portage's own
    account of the job's configuration (the slave's make.conf and PORTCONF included); None where the
    stage3 has no portage."""
    code, text = run_in_job(container, _EMERGE_INFO, timeout, EMERGE_INFO_CHARS)
    if code == _NO_PORTAGE:
        return None
    if code != 0:
        raise SlaveError(f"exit status {code}: {text.strip()[-300:]}", "container")
    return text
