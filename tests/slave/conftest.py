"""The slave's fixtures: a private copy of the tiny stage3 (from tests/conftest.py) on a local HTTP
mirror (no internet here)."""

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
