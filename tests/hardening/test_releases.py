"""Signatures, stage3 releases and Manifests that lie, beyond tests/slave/test_stage3.py,
tests/test_signature.py and tests/test_depgraph.py: pointers replayed from another stage3, sizes
and digests that lie, files edited inside and outside their signed blocks, clearsigned blocks by
another key before or after the real one, an expired release key. Real gpg keys, a real HTTP
mirror; every refusal leaves nothing in the stage3 cache, every invalid tree leaves nothing in the plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autotua.demo.sampletree import make_key, stop_agent
from autotua.demo.stage3 import ReleaseKey, digests_block
from autotua.manifest import Manifest
from autotua.signature import Signer
from autotua.slave import SlaveError
from autotua.slave.stage3 import Stage3Store
from tests.test_depgraph import kinds, res

bad = pytest.mark.bad_input


def body_of(clearsigned: bytes) -> bytes:
    return clearsigned.split(b"\n\n", 1)[1].split(b"-----BEGIN PGP SIGNATURE-----")[0]


def cache_is_empty(cache: Path) -> bool:
    """No stage3 that could be used: nothing but the lock and a ``.part`` kept to resume a download."""
    return not [p for p in (cache / "stage3").rglob("*")
                if p.is_file() and p.name != ".lock" and not p.name.endswith(".part")]


@pytest.fixture
def fetch(mirror, tmp_path, release_key):
    """Fetch amd64/openrc from the test's private mirror into a fresh cache; (store, cache dir)."""
    cache = tmp_path / "cache"

    def run(key_file=None, flavour="openrc"):
        return Stage3Store(mirror.url, cache, key_file or release_key.key_file).fetch("amd64", flavour)
    run.cache = cache
    return run


# -- latest-stage3 pointers ------------------------------------------------------------------------
def test_a_genuine_release_is_fetched(fetch, mirror):
    assert fetch().read_bytes() == mirror.release.tarball.read_bytes()  # the fixtures themselves are sound


@bad("stage3", "a signed pointer of another flavour (systemd) served as latest-stage3-amd64-openrc.txt",
     "SlaveError: not the amd64 openrc stage3 of <ts>: a pointer for another stage3; nothing cached")
@bad("stage3", "a signed pointer naming another arch's stage3", "SlaveError: a pointer for another stage3")
def test_pointer_for_another_stage3(fetch, mirror, release_key):
    rel = mirror.release
    for other in (rel.path.replace("-openrc-", "-systemd-"), rel.path.replace("-amd64-", "-arm64-")):
        rel.latest.write_bytes(release_key.signer.clearsign(f"# ts=1\n{other} 1234\n".encode()))
        with pytest.raises(SlaveError, match=r"is not the amd64 openrc stage3 of .*a pointer for another stage3"):
            fetch()
        assert cache_is_empty(fetch.cache)


@bad("stage3", "a signed pointer whose size is not the tarball's", "SlaveError: could not fetch; nothing cached")
def test_pointer_whose_size_lies(fetch, mirror, release_key):
    rel = mirror.release
    for size in (rel.tarball.stat().st_size + 1, rel.tarball.stat().st_size - 1):
        rel.latest.write_bytes(release_key.signer.clearsign(f"# ts=1\n{rel.path} {size}\n".encode()))
        with pytest.raises(SlaveError, match=r"stage3: "):
            fetch()
        assert cache_is_empty(fetch.cache)


@bad("stage3", "a signed pointer with only comments", "SlaveError: names no stage3")
@bad("stage3", "a signed pointer whose size has non-ASCII digits", "SlaveError: expected '<timestamp>/<file> <size>'")
@bad("stage3", "a pointer file larger than 1 MiB", "SlaveError: larger than 1048576 bytes")
def test_malformed_pointers(fetch, mirror, release_key):
    rel = mirror.release
    for body, why in [("# ts=1\n# nothing\n", "names no stage3"),
                      (f"# ts=1\n{rel.path} \u00b9\u00b2\u00b3\n", "expected '<timestamp>/<file> <size>'")]:
        rel.latest.write_bytes(release_key.signer.clearsign(body.encode()))
        with pytest.raises(SlaveError, match=why):
            fetch()
    rel.latest.write_bytes(b"#" * (1 << 20) + b"\n" + release_key.signer.clearsign(b"x"))
    with pytest.raises(SlaveError, match="larger than 1048576 bytes"):
        fetch()
    assert cache_is_empty(fetch.cache)


@bad("signature", "a clearsigned pointer with a block by another key appended",
     "ignored: only the release key's block is read")
@bad("signature", "a clearsigned pointer with a block by another key before the real one", "WrongKey: signed by key")
def test_second_clearsigned_blocks(fetch, mirror, gnupghome, keys):
    rel = mirror.release
    genuine = rel.latest.read_bytes()
    mallory = Signer(keys["mallory"], str(gnupghome))
    evil = mallory.clearsign(f"# ts=9\n{rel.path.replace('-openrc-', '-evil-')} 1\n".encode())
    rel.latest.write_bytes(genuine + evil)
    assert fetch().read_bytes() == rel.tarball.read_bytes()  # the appended block changed nothing
    rel.latest.write_bytes(evil + genuine)
    with pytest.raises(SlaveError, match=r"latest-stage3-amd64-openrc\.txt: signed by key"):
        fetch()


# -- DIGESTS ----------------------------------------------------------------------------------------
def digests_path(rel) -> Path:
    return Path(f"{rel.tarball}.DIGESTS")


@bad("stage3", "a DIGESTS edited after signing", "SlaveError: BAD signature; nothing fetched")
@bad("stage3", "a DIGESTS that is not clearsigned", "SlaveError: not clearsigned")
@bad("stage3", "a signed DIGESTS without the tarball's SHA512", "SlaveError: has no SHA512 digest")
@bad("stage3", "a signed DIGESTS with a malformed line", "SlaveError: expected '# <NAME> HASH' or '<hex>  <file>'")
@bad("stage3", "a replaced tarball with its digests prepended outside the signed block",
     "SlaveError: DIGESTS does not match; the download is deleted")
def test_digests_that_lie(fetch, mirror, release_key):
    rel, path = mirror.release, digests_path(mirror.release)
    genuine = path.read_bytes()
    body = body_of(genuine)
    signer = release_key.signer
    cases = [
        (genuine.replace(body[:20], body[:19] + (b"0" if body[19:20] != b"0" else b"1")), "BAD signature"),
        (body, "not clearsigned"),
        (signer.clearsign(body.split(b"# SHA512 HASH")[0]), "has no SHA512 digest"),
        (signer.clearsign(body + b"not a digest line\n"), "expected '# <NAME> HASH'"),
    ]
    for text, why in cases:
        path.write_bytes(text)
        with pytest.raises(SlaveError, match=why):
            fetch()
        assert cache_is_empty(fetch.cache)
    # the mirror swaps the tarball and puts its digests above the signed block: the signed ones count
    fake = rel.tarball.read_bytes()[:-1] + b"\0"
    rel.tarball.write_bytes(fake)
    path.write_bytes(digests_block(rel.tarball).encode() + b"\n" + genuine)
    with pytest.raises(SlaveError, match=r"DIGESTS does not match .*deleted"):
        fetch()
    assert cache_is_empty(fetch.cache)


@bad("stage3", "a stage3 tarball without its .asc", "SlaveError: no signature; the download is deleted")
def test_tarball_without_its_signature(fetch, mirror):
    Path(f"{mirror.release.tarball}.asc").unlink()
    with pytest.raises(SlaveError, match=r"stage3: cannot fetch .*\.asc.*; the download was deleted"):
        fetch()
    assert cache_is_empty(fetch.cache)


@bad("signature", "a stage3 release signed by a release key whose primary key expired",
     "SlaveError: the Gentoo release key <fpr> expired on <date>: update it (on Gentoo: ...); nothing cached")
@bad("signature", "a stage3 release signed by a release key whose signing subkey expired (as Gentoo's exports are)",
     "SlaveError: the Gentoo release key <fpr> expired on <date> (its signing subkey ...): update it; nothing cached")
def test_expired_release_key(tmp_path, mirror, release_key):
    rel = mirror.release
    genuine = {p: p.read_bytes() for p in (rel.latest, digests_path(rel), Path(f"{rel.tarball}.asc"))}
    # a primary key that expires (made the way the maintainers' keys are), and a key made as Gentoo's
    home = tmp_path / "old-release-gpg"
    fpr = make_key(home, "release", expire="1d", fake_time="20200101T000000")
    primary = Signer(fpr, str(home))
    primary.gpg.options = ["--faked-system-time", "20200101T060000!"]
    subkey = ReleaseKey.make(tmp_path / "subkey-gpg", sign_expire="1d", fake_time="20200101T000000")
    cases = [(primary, tmp_path / "primary.asc", fpr, False),
             (subkey.signer, subkey.key_file, subkey.fingerprint, True)]
    for signer, key_file, fingerprint, sub in cases:
        for path, data in genuine.items():
            path.write_bytes(data)
        if not key_file.exists():
            key_file.write_bytes(signer.export_public(fingerprint))
        # the pointer (clearsigned), and on a second try the DIGESTS and the tarball's detached .asc
        rel.latest.write_bytes(signer.clearsign(body_of(genuine[rel.latest])))
        words = (rf"the Gentoo release key {fingerprint} expired on 2020-01-02"
                 + (r" \(its signing subkey [0-9A-F]{40}\)" if sub else "")
                 + r": update it \(on Gentoo: emerge --oneshot sec-keys/openpgp-keys-gentoo-release; elsewhere: ")
        with pytest.raises(SlaveError, match=r"stage3: latest-stage3-amd64-openrc\.txt: " + words):
            Stage3Store(mirror.url, tmp_path / "cache", key_file).fetch("amd64", "openrc")
        assert cache_is_empty(tmp_path / "cache")
        # a key file that holds both the genuine release key and the expired one: the pointer is fine,
        # the tarball's signature by the expired key is refused as expired, and the download deleted
        both = tmp_path / f"both-{sub}.asc"
        both.write_bytes(release_key.key_file.read_bytes() + key_file.read_bytes())
        rel.latest.write_bytes(genuine[rel.latest])
        Path(f"{rel.tarball}.asc").write_bytes(signer.detached(rel.tarball.read_bytes()))
        with pytest.raises(SlaveError, match=rf"stage3: {rel.tarball.name}: " + words + r".*the download was deleted"):
            Stage3Store(mirror.url, tmp_path / "cache", both).fetch("amd64", "openrc")
        assert cache_is_empty(tmp_path / "cache")
    stop_agent(home)
    stop_agent(subkey.gnupghome)


# -- Manifests and jobuild signatures in a job's graph -----------------------------------------------
def manifest_text(tmp_path: Path) -> bytes:
    data = tmp_path / "suite.tar.gz"
    data.write_bytes(b"suite\n")
    return Manifest.build({"suite.tar.gz": data}, {}).to_text().encode()


@bad("manifest", "a Manifest whose DIST line was edited after clearsigning", "error bad-signature; not in the plan")
@bad("manifest", "a maintainer's Manifest clearsigned by another trusted maintainer", "error wrong-key")
@bad("manifest", "a Manifest with another key's block before the maintainer's", "error wrong-key")
@bad("manifest", "a Manifest with another key's block after the maintainer's, adding a DIST line",
     "the added line is ignored: error manifest-missing-entry")
@bad("signature", "a jobuild whose .asc is a clearsigned copy, not a detached signature", "error bad-signature")
@bad("signature", "a jobuild whose .asc is empty", "error bad-signature or missing-signature")
def test_manifests_and_signatures_that_lie(tree_writer, trusted, reader, tmp_path, gnupghome, keys):
    tw = tree_writer
    text = manifest_text(tmp_path)
    alice, bob = tw.signer("alice"), tw.signer("bob")
    mallory = Signer(keys["mallory"], str(gnupghome))
    deps = "alice/edited alice/bobsigned alice/before alice/after alice/clear alice/empty"
    tw.jobuild("alice/root-1", f'DEPEND="{deps}"')
    for name in ("edited", "bobsigned", "before", "after"):
        tw.jobuild(f"alice/{name}-1", 'SRC_URI="https://e.org/suite.tar.gz https://e.org/extra.tar.gz"')
    sha = hashlib.sha512(b"suite\n").hexdigest()
    extra = text.replace(b"suite.tar.gz", b"extra.tar.gz")
    signed = alice.clearsign(text + extra)
    (tw.root / "alice/edited/Manifest").write_bytes(signed.replace(sha.encode(), b"0" * 128, 1))
    (tw.root / "alice/bobsigned/Manifest").write_bytes(bob.clearsign(text + extra))
    (tw.root / "alice/before/Manifest").write_bytes(mallory.clearsign(text + extra) + signed)
    (tw.root / "alice/after/Manifest").write_bytes(alice.clearsign(text) + mallory.clearsign(extra))
    src = b'DESCRIPTION="clearsigned"\n'
    tw.write("alice/clear/clear-1.jobuild", src, sign_as=None)
    (tw.root / "alice/clear/clear-1.jobuild.asc").write_bytes(alice.clearsign(src))
    tw.write("alice/empty/empty-1.jobuild", b'DESCRIPTION="empty sig"\n', sign_as=None)
    (tw.root / "alice/empty/empty-1.jobuild.asc").write_bytes(b"")
    r = res(tw, "alice/root", trusted, reader)
    got = kinds(r)
    assert ("bad-signature", "alice/edited-1") in got
    assert ("wrong-key", "alice/bobsigned-1") in got
    assert ("wrong-key", "alice/before-1") in got
    assert ("manifest-missing-entry", "alice/after-1") in got
    assert any("extra.tar.gz" in e.message for e in r.errors if e.jobuild == "alice/after-1")
    assert ("bad-signature", "alice/clear-1") in got
    assert any(k in ("bad-signature", "missing-signature") and j == "alice/empty-1" for k, j in got)
    # no DIST line of a Manifest that failed its signature is used, nor the one another key added
    assert {e.jobuild: [d.name for d in e.src_uri] for e in r.plan if e.jobuild != "alice/root-1"} == {
        "alice/edited-1": [], "alice/bobsigned-1": [], "alice/before-1": [], "alice/after-1": ["suite.tar.gz"]}
