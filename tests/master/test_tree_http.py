"""The branch over HTTP: a real ``brz branch`` and ``brz pull`` from the live server (breezy sends
Range requests, multipart too), and nothing outside the branch's .bzr is ever served."""

from __future__ import annotations

import os
import shutil

import pytest
import requests

from autotua.tree import BzrTree
from autotua_master.tree.static import parse_ranges

from .conftest import commit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_branch(master_settings, sample, tmp_path):
    dest = tmp_path / "served"
    shutil.copytree(sample.branch, dest, symlinks=True)
    master_settings.AUTOTUA_TREE = dest
    return dest


def test_brz_branch_and_pull_over_http(master, own_branch, tmp_path):
    from breezy.branch import Branch
    from breezy.controldir import ControlDir

    remote = master.url + "/tree/"
    local = tmp_path / "slave-copy"
    ControlDir.open(remote).sprout(str(local), create_tree_if_local=False)
    tree = BzrTree(local)
    assert tree.revno == 1 and "alice/toolchain-sanity/toolchain-sanity-1.0.jobuild" in tree.paths
    (own_branch / "NEWS").write_text("news\n")
    rev2 = commit(own_branch, "second")
    Branch.open(str(local)).pull(Branch.open(remote))
    assert BzrTree(local).revision == rev2 and BzrTree(local).revno == 2


def test_the_smart_protocol_probe_is_a_quiet_405(master, own_branch, caplog):
    """breezy POSTs to .bzr/smart first; read only, the answer is 405, not a CSRF 403 in the log."""
    r = requests.post(master.url + "/tree/.bzr/smart", data=b"bzr request 2\n")
    assert r.status_code == 405
    assert not [rec for rec in caplog.records if "CSRF" in rec.getMessage()]
    assert requests.get(master.url + "/tree/.bzr/branch-format").status_code == 200


def test_range_requests(master, own_branch):
    url = master.url + "/tree/.bzr/branch-format"
    whole = requests.get(url).content
    assert whole.startswith(b"Bazaar-NG meta directory")
    r = requests.get(url, headers={"Range": "bytes=0-5"})
    assert r.status_code == 206 and r.content == whole[:6]
    assert r.headers["Content-Range"] == f"bytes 0-5/{len(whole)}"
    r = requests.get(url, headers={"Range": "bytes=0-1,4-6"})
    assert r.status_code == 206 and r.headers["Content-Type"].startswith("multipart/byteranges")
    assert whole[:2] in r.content and whole[4:7] in r.content
    r = requests.get(url, headers={"Range": f"bytes={len(whole) + 10}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(whole)}"


def test_parse_ranges():
    assert parse_ranges("bytes=0-9", 100) == [(0, 9)]
    assert parse_ranges("bytes=90-", 100) == [(90, 99)]
    assert parse_ranges("bytes=-10", 100) == [(90, 99)]
    assert parse_ranges("bytes=95-200", 100) == [(95, 99)]
    assert parse_ranges("bytes=0-1, 5-6", 100) == [(0, 1), (5, 6)]
    assert parse_ranges("bytes=200-", 100) == []
    assert parse_ranges("bytes=5-1", 100) is None
    assert parse_ranges("lines=1-2", 100) is None
    assert parse_ranges("bytes=x-y", 100) is None


def test_nothing_outside_the_branch(master, own_branch, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, own_branch / ".bzr" / "link")
    (own_branch / "README").write_text("working tree file")
    base = master.url + "/tree/"
    for path in [".bzr/link", "README", "alice/alice.asc", "../secret.txt", ".bzr/../../secret.txt",
                 "%2E%2E/secret.txt", ".bzr/%2E%2E/%2E%2E/secret.txt", ".bzr//branch-format", "/etc/passwd",
                 ".bzr", ".bzr/branch", ".bzr/%00"]:
        r = _raw_get(base, path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"top secret" not in r.content and b"working tree" not in r.content


def _raw_get(base: str, path: str):
    """GET the path as written (requests would normalise '..' away)."""
    req = requests.Request("GET", base).prepare()
    req.url = base + path
    return requests.Session().send(req)
