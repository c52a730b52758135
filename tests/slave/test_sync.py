"""Sync: the cached branch pulled over HTTP, the plan's files verified (signatures against the job's
fingerprints, Manifests, files/, content digests) and only those written."""

import shutil
from dataclasses import asdict

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.depgraph import resolve
from autotua.signature import Signer
from autotua.slave import SlaveError
from autotua.slave.sync import TreeCache, prepare
from autotua.tree import BzrTree


def job_for(tree, root, trusted, reader):
    """The job payload's tree-related part, as the master builds it from the same core (docs/protocol.md)."""
    res = resolve(tree, root, trusted=trusted, reader=reader)
    assert res.valid, res.errors
    plan = []
    for i, e in enumerate(res.plan):
        d = asdict(e)
        plan.append({"index": i, "jobuild": d["jobuild"], "path": d["path"], "digest": d["digest"],
                     "inherited": d["inherited"], "src_uri": d["src_uri"], "portconf_uri": d["portconf_uri"]})
    return {"plan": plan, "maintainers": dict(trusted),
            "tree": {"revision": tree.revision_id, "revno": tree.revno}}


@pytest.fixture
def branch(tmp_path, sample):
    """A private copy of the signed sample branch (tests commit to it), served over HTTP."""
    work = tmp_path / "master"
    shutil.copytree(sample.branch, work / "jobtage", symlinks=True)
    with MirrorServer(work) as server:
        server.branch = work / "jobtage"
        yield server


def test_sync_verifies_and_writes_only_the_plan(tmp_path, branch, sample, reader):
    trusted = sample.fingerprints
    tree = BzrTree(branch.branch)
    job = job_for(tree, "bob/integration", trusted, reader)
    cache = TreeCache(tmp_path / "cache")
    synced = cache.update(branch.url + "/jobtage/", tree.revision_id)
    assert synced.revision_id == tree.revision_id
    prepared = prepare(synced, job, tmp_path / "job/tree")
    assert [str(p.jid) for p in prepared] == [e["jobuild"] for e in job["plan"]]
    written = sorted(str(p.relative_to(tmp_path / "job/tree")) for p in (tmp_path / "job/tree").rglob("*")
                     if p.is_file())
    assert "bob/integration/files/check-env.sh" in written
    assert "bob/integration/integration-1.0.jobuild" in written
    assert not any(w.endswith(".asc") for w in written)
    assert not any(w.startswith("alice/hello-suite") for w in written)  # SIDEPEND: not in the plan
    portconf = [d for p in prepared for d in p.portconf]
    assert [d.name for d in portconf] == ["bob-portconf-1.tar.gz"]


def test_sync_pulls_only_new_revisions(tmp_path, branch, sample, caplog):
    caplog.set_level("INFO", logger="autotua.slave.sync")
    cache = TreeCache(tmp_path / "cache")
    first = BzrTree(branch.branch).revision_id
    cache.update(branch.url + "/jobtage/", first)
    assert caplog.messages[-1].endswith(f"branched from {branch.url}/jobtage/")
    packs = {p.name for p in (tmp_path / "cache/tree/.bzr/repository/packs").iterdir()}
    (branch.branch / "NEWS").write_text("new\n")
    new = sample.__class__(branch.branch, sample.gnupghome, sample.distdir).commit("news")
    branch.requests.clear()
    tree = cache.update(branch.url + "/jobtage/", new)
    assert tree.revno == 2 and tree.is_file("NEWS")
    assert caplog.messages[-1].endswith(f"pulled from {branch.url}/jobtage/, revno 1 -> 2")
    # only the new revision travelled: none of the packs the cache already had was fetched again
    fetched = {path.rsplit("/", 1)[-1] for _, path, _ in branch.requests if "/packs/" in path}
    assert fetched and not fetched & packs
    # the pinned older revision is still there
    assert cache.update(branch.url + "/jobtage/", first).revno == 1


def test_unknown_revision(tmp_path, branch):
    with pytest.raises(SlaveError, match=r"sync: .*unknown revision"):
        TreeCache(tmp_path / "cache").update(branch.url + "/jobtage/", "nobody@example.org-20200101-none")


def test_no_branch_there(tmp_path, branch):
    with pytest.raises(SlaveError, match=r"cannot pull the tree"):
        TreeCache(tmp_path / "cache").update(branch.url + "/nothing/", "x")


def tampered(tmp_path, branch, sample, reader, mutate, root="bob/integration"):
    """Sync a job validated at revision 1 after ``mutate`` changed the tree and committed revision 2,
    pinned to revision 2 but with revision 1's plan (what a lying master or tree would do)."""
    tree = BzrTree(branch.branch)
    job = job_for(tree, root, sample.fingerprints, reader)
    mutate(branch.branch)
    rev2 = sample.__class__(branch.branch, sample.gnupghome, sample.distdir).commit("tamper")
    synced = TreeCache(tmp_path / "cache").update(branch.url + "/jobtage/", rev2)
    dest = tmp_path / "job/tree"
    try:
        return prepare(synced, job, dest)
    finally:
        assert not dest.exists() or not any(dest.rglob("*.jobuild"))  # nothing written on failure


def test_jobuild_changed_after_signing(tmp_path, branch, sample, reader):
    def mutate(b):
        p = b / "bob/integration/integration-1.0.jobuild"
        p.write_text(p.read_text() + "\nrm -rf / # evil\n")
    with pytest.raises(SlaveError, match=r"integration-1.0.jobuild: BAD signature"):
        tampered(tmp_path, branch, sample, reader, mutate)


def test_jobuild_resigned_by_a_key_the_job_does_not_trust(tmp_path, branch, sample, reader, gnupghome, keys):
    def mutate(b):
        p = b / "bob/integration/integration-1.0.jobuild"
        p.write_text(p.read_text() + "\n# changed\n")
        mallory = Signer(keys["mallory"], str(gnupghome))
        (b / "bob/bob.asc").write_bytes(mallory.export_public(keys["mallory"]))
        (b / "bob/integration/integration-1.0.jobuild.asc").write_bytes(mallory.detached(p.read_bytes()))
    with pytest.raises(SlaveError, match=r"the trusted key for 'bob' is"):
        tampered(tmp_path, branch, sample, reader, mutate)


def test_signature_removed(tmp_path, branch, sample, reader):
    with pytest.raises(SlaveError, match=r"alice/templates/testsuite.jtemplate: no signature"):
        tampered(tmp_path, branch, sample, reader,
                 lambda b: (b / "alice/templates/testsuite.jtemplate.asc").unlink(), root="alice/hello-suite")


def test_files_dir_changed(tmp_path, branch, sample, reader):
    def mutate(b):
        (b / "bob/integration/files/check-env.sh").write_text("echo pwned\n")
    with pytest.raises(SlaveError, match=r"files/check-env.sh: SHA512 digest mismatch|files/check-env.sh: size"):
        tampered(tmp_path, branch, sample, reader, mutate)


def test_file_added_to_files_dir(tmp_path, branch, sample, reader):
    with pytest.raises(SlaveError, match=r"files/extra.sh is not in"):
        tampered(tmp_path, branch, sample, reader,
                 lambda b: (b / "bob/integration/files/extra.sh").write_text("echo extra\n"))


def test_resigned_change_does_not_match_the_validated_digest(tmp_path, branch, sample, reader):
    """Signed properly by bob, but not what the master validated: the content digest catches it."""
    def mutate(b):
        p = b / "bob/integration/integration-1.0.jobuild"
        p.write_text(p.read_text() + "\n# a later, signed change\n")
        sample.sign(p, user="bob")
    with pytest.raises(SlaveError, match=r"does not match the plan the master validated"):
        tampered(tmp_path, branch, sample, reader, mutate)


def test_plan_distfile_digests_must_match_the_manifest(tmp_path, branch, sample, reader):
    tree = BzrTree(branch.branch)
    job = job_for(tree, "bob/portconf-check", sample.fingerprints, reader)
    job["plan"][0]["portconf_uri"][0]["sha512"] = "0" * 128
    synced = TreeCache(tmp_path / "cache").update(branch.url + "/jobtage/", tree.revision_id)
    with pytest.raises(SlaveError, match=r"differ from bob/portconf-check/Manifest"):
        prepare(synced, job, tmp_path / "job/tree")


def test_unknown_maintainer_fingerprint(tmp_path, branch, sample, reader):
    tree = BzrTree(branch.branch)
    job = job_for(tree, "alice/toolchain-sanity", sample.fingerprints, reader)
    job["maintainers"] = {"bob": sample.fingerprints["bob"]}
    synced = TreeCache(tmp_path / "cache").update(branch.url + "/jobtage/", tree.revision_id)
    with pytest.raises(SlaveError, match=r"no key fingerprint is recorded for maintainer 'alice'"):
        prepare(synced, job, tmp_path / "job/tree")
