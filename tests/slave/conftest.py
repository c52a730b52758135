"""The slave's fixtures: a local HTTP mirror serving a private copy of the session's tiny stage3 (no
internet here). The release key and the stage3 itself (``release_key``, ``stage3``) are in
tests/conftest.py: the end-to-end tests use them too."""

from __future__ import annotations

import shutil

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.stage3 import copy_release


@pytest.fixture
def mirror(tmp_path, stage3):
    """A private copy of the published stage3 (a test may spoil it) on a local HTTP server."""
    release = copy_release(stage3, tmp_path / "mirror")
    with MirrorServer(release.mirror) as server:
        server.release = release
        yield server
    shutil.rmtree(tmp_path / "mirror", ignore_errors=True)
