"""What a run is made of, as the slave tells the master (``PUT /api/v1/runs/<run>/inputs``,
docs/protocol.md): the stage3 it used (file name and release timestamp), the tree revision it
synced, the Gentoo repository (the pinned snapshot's date, or the host's repository and its
``metadata/timestamp.chk``, or none) and, once the job's container can run it, ``emerge --info``."""

from __future__ import annotations

from pathlib import Path

from autotua.slave.snapshot import Repository


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
