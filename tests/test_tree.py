import os

import pytest

from autotua.atom import JobuildId
from autotua.tree import BzrTree, DirTree, TreeError, TreeFileMissing, open_tree


def make_dir_tree(root):
    files = {
        "alice/alice.asc": "key",
        "alice/foo/foo-1.0.jobuild": "DESCRIPTION=a",
        "alice/foo/foo-1.10.jobuild": "DESCRIPTION=b",
        "alice/foo/foo-1.9.jobuild": "DESCRIPTION=c",
        "alice/foo/foo-1.0.jobuild.asc": "sig",
        "alice/foo/Manifest": "DIST x 1 BLAKE2B a SHA512 b",
        "alice/foo/files/helper.sh": "echo",
        "alice/foo/files/sub/data.txt": "d",
        "alice/foo/bar-1.0.jobuild": "misplaced: name does not match its directory",
        "alice/foo/foo-1.05.jobuild": "bad version",
        "alice/templates/suite.jtemplate": "src_test() { :; }",
        "bob/bar/bar-2.jobuild": "DESCRIPTION=d",
        "overlays/alice/foo/foo-9.jobuild": "never read",
        ".hidden/x/x-1.jobuild": "never read",
    }
    for path, text in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return files


def check_index(tree):
    assert tree.users() == ["alice", "bob"]
    assert [str(j) for j in tree.all_jobuilds()] == [
        "alice/foo-1.0", "alice/foo-1.9", "alice/foo-1.10", "bob/bar-2",
    ]
    assert [str(j.version) for j in tree.jobuilds("alice", "foo")] == ["1.0", "1.9", "1.10"]
    assert tree.jobuilds("alice", "nope") == []
    assert tree.misnamed_jobuilds() == ["alice/foo/bar-1.0.jobuild", "alice/foo/foo-1.05.jobuild"]
    assert tree.templates() == {"alice/suite": "alice/templates/suite.jtemplate"}
    assert tree.files_under("alice/foo/files") == ["alice/foo/files/helper.sh", "alice/foo/files/sub/data.txt"]
    assert tree.read_bytes("alice/foo/foo-1.10.jobuild") == b"DESCRIPTION=b"
    assert tree.read_many(["alice/alice.asc", "bob/bar/bar-2.jobuild"]) == {
        "alice/alice.asc": b"key", "bob/bar/bar-2.jobuild": b"DESCRIPTION=d"}
    assert not tree.is_file("overlays/alice/foo/foo-9.jobuild")
    with pytest.raises(TreeFileMissing):
        tree.read_bytes("overlays/alice/foo/foo-9.jobuild")
    with pytest.raises(TreeFileMissing):
        tree.read_bytes("alice/foo")  # a directory is not a file
    with pytest.raises(TreeFileMissing):
        tree.read_many(["alice/nope"])


def test_dir_tree(tmp_path):
    make_dir_tree(tmp_path)
    check_index(DirTree(tmp_path))


@pytest.mark.bad_input('tree', 'a symlink in the tree pointing outside it', 'not a file of the tree: TreeFileMissing')
def test_dir_tree_never_follows_symlinks_out(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    root = tmp_path / "tree"
    make_dir_tree(root)
    os.symlink(secret, root / "alice/foo/files/link")
    os.symlink(tmp_path, root / "alice/escape")
    tree = DirTree(root)
    assert not tree.is_file("alice/foo/files/link")
    assert "alice/foo/files/link" not in tree.files_under("alice/foo/files")
    with pytest.raises(TreeFileMissing):
        tree.read_bytes("alice/foo/files/link")
    assert not any(p.startswith("alice/escape/") for p in tree.paths)


def commit_all(wt, message):
    wt.smart_add([wt.basedir])
    return wt.commit(message, committer="T <t@example.org>").decode()


@pytest.fixture
def branch(tmp_path):
    import breezy.bzr  # noqa: F401
    from breezy import controldir

    path = tmp_path / "branch"
    wt = controldir.ControlDir.create_standalone_workingtree(
        str(path), format=controldir.format_registry.make_controldir("2a"))
    (path / ".bzrignore").write_text("overlays\n")
    make_dir_tree(path)
    r1 = commit_all(wt, "one")
    (path / "alice/foo/foo-2.jobuild").write_text("DESCRIPTION=new")
    (path / "alice/foo/foo-1.0.jobuild").write_text("DESCRIPTION=changed")
    r2 = commit_all(wt, "two")
    return path, r1, r2


def test_bzr_tree_reads_any_revision_without_working_tree(branch):
    path, r1, r2 = branch
    t1 = BzrTree(path, 1)
    check_index(t1)
    assert (t1.revision, t1.revno) == (r1, 1)
    t2 = BzrTree(path)  # the tip
    assert (t2.revision, t2.revno) == (r2, 2)
    assert t2.read_bytes("alice/foo/foo-1.0.jobuild") == b"DESCRIPTION=changed"
    assert JobuildId.parse("alice/foo-2") in t2.all_jobuilds()
    assert BzrTree(path, r1).read_bytes("alice/foo/foo-1.0.jobuild") == b"DESCRIPTION=a"
    # reading does not need (or touch) the working tree
    (path / "alice/foo/foo-1.0.jobuild").write_text("uncommitted")
    assert BzrTree(path, "2").read_bytes("alice/foo/foo-1.0.jobuild") == b"DESCRIPTION=changed"


def test_bzr_tree_ignores_overlays_even_if_forced_in(branch):
    from breezy.workingtree import WorkingTree

    path, _, _ = branch
    wt = WorkingTree.open(str(path))
    wt.add(["overlays", "overlays/alice", "overlays/alice/foo", "overlays/alice/foo/foo-9.jobuild"])
    wt.commit("force an overlay in", committer="T <t@example.org>")
    tree = BzrTree(path)
    assert not any(p.startswith("overlays") for p in tree.paths)


def test_bzr_tree_export(branch, tmp_path):
    path, _, _ = branch
    dest = tmp_path / "export"
    BzrTree(path, 1).export(dest)
    assert (dest / "alice/foo/foo-1.0.jobuild").read_text() == "DESCRIPTION=a"
    assert not (dest / "alice/foo/foo-2.jobuild").exists()


@pytest.mark.parametrize("rev", ["99", "no-such-revision-id", 0])
@pytest.mark.bad_input('tree', 'the revision {rev!r}', 'a clear unknown-revision error')
def test_unknown_revision_is_a_clear_error(branch, rev):
    path, _, _ = branch
    with pytest.raises(TreeError) as e:
        BzrTree(path, rev)
    assert "revision" in str(e.value)


def test_open_tree(branch, tmp_path):
    from breezy.branch import Branch

    path, _, _ = branch
    # a checkout: its working files (what is about to be committed), or a committed revision
    (path / "alice/foo/foo-3.jobuild").write_text("DESCRIPTION=uncommitted")
    work = open_tree(path)
    assert isinstance(work, DirTree) and "alice/foo/foo-3.jobuild" in work.paths
    assert isinstance(open_tree(path, "1"), BzrTree) and "alice/foo/foo-3.jobuild" not in open_tree(path, "1").paths
    # a branch without a working tree: its tip
    bare = tmp_path / "bare"
    Branch.open(str(path)).controldir.sprout(str(bare), create_tree_if_local=False)
    assert isinstance(open_tree(bare), BzrTree)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert isinstance(open_tree(plain), DirTree)
    with pytest.raises(TreeError, match="plain directory"):
        open_tree(plain, "3")
    with pytest.raises(TreeError, match="not a directory"):
        open_tree(tmp_path / "missing")
