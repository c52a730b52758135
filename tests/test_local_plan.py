"""The plan of a local run (autotua.slave.local), without root: resolved from a working tree whose
files need not be signed, and the files the runner writes into the job's tree are exactly those the
plan's content digests cover. The runs themselves are tests/slave/test_local_run.py."""

from __future__ import annotations

from autotua.depgraph import Resolver, content_digest
from autotua.maintainer import tree_fingerprints
from autotua.manifest import Manifest
from autotua.signature import Signer, Verifier
from autotua.slave.local import LocalVerifier, clearsigned_body, plan_files
from autotua.tree import DirTree

BODY = b"AUX check.sh 5 BLAKE2B 00 SHA512 00\n- a line gpg dash-escapes\n-----a dashed line\n\nlast\n"


def test_clearsigned_body_is_what_gpg_vouches_for(gnupghome, keys):
    text = Signer(keys["alice"], str(gnupghome)).clearsign(BODY)
    assert b"\n- -----a dashed line" in text  # dash-escaped
    key = Signer(keys["alice"], str(gnupghome)).export_public(keys["alice"])
    with Verifier({"alice": keys["alice"]}) as v:
        vouched = v.verify_clearsigned("alice", key, text, "Manifest")
    assert clearsigned_body(text).rstrip(b"\n") == vouched.rstrip(b"\n") == BODY.rstrip(b"\n")
    assert clearsigned_body(BODY) == BODY  # not signed: as it is


def test_unsigned_and_wrongly_signed_files_are_planned_and_named(tree_writer, reader):
    tw = tree_writer
    tw.write("alice/wip/files/check.sh", "echo ok\n")
    aux = Manifest.build({}, {"check.sh": str(tw.root / "alice/wip/files/check.sh")}).to_text()
    tw.write("alice/wip/Manifest", aux, sign_as="mallory")  # clearsigned, by someone else's key
    tw.jobuild("alice/wip-1.0", 'DEPEND="alice/base"\ninherit alice/t\n', sign_as=None)
    tw.write("alice/templates/t.jtemplate", "src_test() { bash \"${FILESDIR}/check.sh\"; }\n", sign_as=None)
    tw.jobuild("alice/base-1.0")  # signed by alice, whose key the tree holds
    tree = DirTree(tw.root)
    with LocalVerifier(tree_fingerprints(tree), reader.cache) as verifier:
        res = Resolver(tree, verifier, reader).resolve("alice/wip", "amd64")
    assert res.valid, res.errors
    assert [e.jobuild for e in res.plan] == ["alice/base-1.0", "alice/wip-1.0"]
    assert sorted(verifier.unsigned) == ["alice/templates/t.jtemplate", "alice/wip/Manifest",
                                         "alice/wip/wip-1.0.jobuild"]
    assert "no signature" in verifier.unsigned["alice/wip/wip-1.0.jobuild"]
    wip = res.plan[1]
    files = plan_files(tree, wip)
    assert sorted(files) == ["alice/templates/t.jtemplate", "alice/wip/Manifest", "alice/wip/files/check.sh",
                             "alice/wip/wip-1.0.jobuild"]
    assert content_digest(files) == wip.digest
    assert content_digest(plan_files(tree, res.plan[0])) == res.plan[0].digest
    # the same tree, as a master resolves it: every one of them is an error
    with Verifier(tree_fingerprints(tree), reader.cache) as strict:
        kinds = sorted({p.kind for p in Resolver(tree, strict, reader).resolve("alice/wip", "amd64").errors})
    assert kinds == ["missing-signature", "wrong-key"], kinds
