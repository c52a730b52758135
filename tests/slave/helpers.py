"""Small things the slave's tests share."""

import os

import pytest

#: mounts, chroots and namespaces need root; CI runs as root, so there these never skip
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs the tests as root)")
