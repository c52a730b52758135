import shutil

import pytest

from autotua.cache import DigestCache
from autotua.demo.sampletree import make_key, revoke_key, stop_agent
from autotua.demo.stage3 import ReleaseKey
from autotua.signature import (
    BadSignature,
    ExpiredKey,
    MissingSignature,
    RevokedKey,
    Signer,
    UnknownMaintainer,
    UntrustedKey,
    Verifier,
    WrongKey,
    normalise_fingerprint,
)

DATA = b'DESCRIPTION="signed jobuild"\n'


@pytest.fixture(scope="module")
def alice(gnupghome, keys):
    s = Signer(keys["alice"], str(gnupghome))
    return s, s.export_public(keys["alice"])


def test_good_signature(alice, keys):
    signer, key = alice
    with Verifier({"alice": keys["alice"]}) as v:
        signed = v.verify_detached("alice", key, DATA, signer.detached(DATA), "alice/x/x-1.jobuild")
    assert signed.fingerprint == keys["alice"]
    assert signed.key_expires == 0


@pytest.mark.bad_input('signature', 'a jobuild without its .asc', 'MissingSignature: x-1.jobuild.asc is missing')
def test_missing_signature(alice, keys):
    _, key = alice
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(MissingSignature, match=r"1\.jobuild\.asc is missing"):
        v.verify_detached("alice", key, DATA, None, "alice/x/x-1.jobuild")


@pytest.mark.bad_input('signature', 'a jobuild changed after it was signed',
                       'BadSignature (bad-signature): changed after it was signed')
def test_tampered_file(alice, keys):
    signer, key = alice
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(BadSignature, match="changed after it was signed"):
        v.verify_detached("alice", key, DATA + b"rm -rf /\n", signer.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'an .asc that is not a signature', 'BadSignature: no valid signature')
def test_garbage_signature(alice, keys):
    _, key = alice
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(BadSignature, match="no valid signature"):
        v.verify_detached("alice", key, DATA, b"not a signature", "f")


@pytest.mark.bad_input('signature', "another key appended to the maintainer's .asc, and a signature by it",
                       'WrongKey (wrong-key)')
def test_valid_signature_by_another_key_in_the_same_file(gnupghome, alice, keys):
    """mallory appends her key to alice.asc and signs: valid gpg signature, wrong key."""
    _, key = alice
    mallory = Signer(keys["mallory"], str(gnupghome))
    both = key + mallory.export_public(keys["mallory"])
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(WrongKey, match=keys["mallory"]):
        v.verify_detached("alice", both, DATA, mallory.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'a signature by a key the tree does not hold', "WrongKey: not by alice's key")
def test_signature_by_a_key_not_in_the_tree(gnupghome, alice, keys):
    _, key = alice
    mallory = Signer(keys["mallory"], str(gnupghome))
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(WrongKey, match="not by alice's key"):
        v.verify_detached("alice", key, DATA, mallory.detached(DATA), "f")


@pytest.mark.bad_input('signature', "the maintainer's .asc swapped for another key",
                       "UntrustedKey: not the trusted key's fingerprint")
def test_tree_key_swapped_for_another(gnupghome, keys):
    """The tree's alice.asc holds mallory's key, signed by mallory: the fingerprint pin refuses it."""
    mallory = Signer(keys["mallory"], str(gnupghome))
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(UntrustedKey, match="trusted key for 'alice'"):
        v.verify_detached("alice", mallory.export_public(keys["mallory"]), DATA, mallory.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'no <user>/<user>.asc in the tree', 'UntrustedKey (untrusted-key)')
def test_no_key_in_tree(alice, keys):
    signer, _ = alice
    with Verifier({"alice": keys["alice"]}) as v, pytest.raises(UntrustedKey, match=r"alice/alice\.asc"):
        v.verify_detached("alice", None, DATA, signer.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'a jobuild of a maintainer with no recorded fingerprint',
                       'UnknownMaintainer (unknown-maintainer)')
def test_unknown_maintainer(alice, keys):
    signer, key = alice
    with Verifier({"bob": keys["bob"]}) as v, pytest.raises(UnknownMaintainer, match="'alice'"):
        v.verify_detached("alice", key, DATA, signer.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'a signature by an expired key', 'ExpiredKey (expired-key)')
def test_expired_key(tmp_path):
    home = tmp_path / "g"
    fpr = make_key(home, "old", expire="1d", fake_time="20200101T000000")
    signer = Signer(fpr, str(home))
    signer.gpg.options = ["--faked-system-time", "20200101T060000!"]
    sig = signer.detached(DATA)
    key = signer.export_public(fpr)
    stop_agent(home)
    with Verifier({"old": fpr}) as v, pytest.raises(ExpiredKey, match="expired"):
        v.verify_detached("old", key, DATA, sig, "f")


@pytest.mark.bad_input('signature', 'a cached good signature whose key has expired since',
                       'ExpiredKey, without running gpg')
def test_cached_good_signature_refused_once_the_key_expires(alice, keys, monkeypatch):
    signer, key = alice
    sig = signer.detached(DATA)
    cache = DigestCache()
    with Verifier({"alice": keys["alice"]}, cache) as v:
        v.verify_detached("alice", key, DATA, sig, "f")
    # the key had an expiry date, which has now passed
    [(k,)] = cache._conn.execute("SELECT key FROM cache WHERE ns='signature'").fetchall()
    cache.put("signature", k, {"expires": 1_000_000_000, "body": ""})
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # answered from the cache, no gpg
    with Verifier({"alice": keys["alice"]}, cache) as v, pytest.raises(ExpiredKey, match="expired 2001-09-09"):
        v.verify_detached("alice", key, DATA, sig, "f")


@pytest.mark.bad_input('signature', 'a signature by a revoked key', 'RevokedKey (revoked-key)')
def test_revoked_key(tmp_path):
    home = tmp_path / "g"
    fpr = make_key(home, "gone")
    signer = Signer(fpr, str(home))
    sig = signer.detached(DATA)
    revoked = revoke_key(home, fpr)
    stop_agent(home)
    with Verifier({"gone": fpr}) as v, pytest.raises(RevokedKey, match="revoked"):
        v.verify_detached("gone", revoked, DATA, sig, "f")


@pytest.mark.bad_input('signature', "DIST lines smuggled before a clearsigned Manifest's signed block",
                       'ignored: the body is what gpg verified')
@pytest.mark.bad_input('signature', 'a clearsigned Manifest edited inside its signed block', 'BadSignature')
def test_clearsigned_body_is_what_gpg_vouches_for(alice, keys):
    signer, key = alice
    body = b"DIST a 1 BLAKE2B x SHA512 y\n"
    signed = signer.clearsign(body)
    with Verifier({"alice": keys["alice"]}) as v:
        assert v.verify_clearsigned("alice", key, signed, "Manifest") == body
        # text outside the signed block is not part of the body
        smuggled = b"DIST evil 1 BLAKE2B x SHA512 y\n" + signed
        assert v.verify_clearsigned("alice", key, smuggled, "Manifest") == body
        with pytest.raises(BadSignature):
            v.verify_clearsigned("alice", key, signed.replace(b"DIST a 1", b"DIST a 2"), "Manifest")
        with pytest.raises(MissingSignature, match="not clearsigned"):
            v.verify_clearsigned("alice", key, body, "Manifest")


def test_cache_answers_without_gpg(alice, keys, monkeypatch):
    signer, key = alice
    sig = signer.detached(DATA)
    cache = DigestCache()
    with Verifier({"alice": keys["alice"]}, cache) as v:
        v.verify_detached("alice", key, DATA, sig, "f")
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # no gpg binary from here on
    with Verifier({"alice": keys["alice"]}, cache) as v:
        assert v.verify_detached("alice", key, DATA, sig, "f").fingerprint == keys["alice"]
        with pytest.raises(Exception, match="gpg is not installed"):
            v.verify_detached("alice", key, DATA + b"x", sig, "f")


@pytest.mark.parametrize("bad", ["", "1234", "G" * 40, "0x" + "A" * 39])
@pytest.mark.bad_input('signature', 'the fingerprint {bad!r}', 'ValueError: not a full OpenPGP fingerprint')
def test_fingerprint_format(bad):
    with pytest.raises(ValueError, match="fingerprint"):
        normalise_fingerprint(bad)
    assert normalise_fingerprint("0x" + "ab" * 20) == "AB" * 20
    assert normalise_fingerprint("ABCD " * 10) == "ABCD" * 10


# -- KeyFileVerifier: a release key file (Gentoo's gentoo-release.asc), every key in it trusted ----------------

def test_key_file_verifier_accepts_any_key_of_the_file(gnupghome, keys, tmp_path):
    from autotua.signature import KeyFileVerifier

    alice = Signer(keys["alice"], str(gnupghome))
    bob = Signer(keys["bob"], str(gnupghome))
    key_file = alice.export_public(keys["alice"]) + bob.export_public(keys["bob"])
    big = tmp_path / "stage3.tar.xz"
    big.write_bytes(b"x" * 300_000)
    with KeyFileVerifier(key_file, "release.asc") as v:
        assert v.verify_file(big, bob.detached(big.read_bytes()), "stage3").fingerprint == keys["bob"]
        assert v.verify_clearsigned(alice.clearsign(b"# ts=1\n"), "latest.txt") == b"# ts=1\n"


@pytest.mark.bad_input('stage3', 'a clearsigned release file signed by a key not in the release key file',
                       'WrongKey: not by a key of release.asc')
@pytest.mark.bad_input('stage3', 'a release key file that holds no key', 'UntrustedKey: no usable OpenPGP key')
def test_key_file_verifier_refuses_other_keys_and_tampering(gnupghome, keys, tmp_path):
    from autotua.signature import KeyFileVerifier

    alice = Signer(keys["alice"], str(gnupghome))
    mallory = Signer(keys["mallory"], str(gnupghome))
    data = tmp_path / "f"
    data.write_bytes(b"data\n")
    with KeyFileVerifier(alice.export_public(keys["alice"]), "release.asc") as v:
        with pytest.raises(WrongKey, match=r"not by a key of release\.asc"):
            v.verify_clearsigned(mallory.clearsign(b"text\n"), "DIGESTS")
        sig = alice.detached(b"data\n")
        data.write_bytes(b"data, changed\n")
        with pytest.raises(BadSignature, match="changed after it was signed"):
            v.verify_file(data, sig, "f")
        with pytest.raises(MissingSignature):
            v.verify_file(data, None, "f")
        with pytest.raises(MissingSignature, match="not clearsigned"):
            v.verify_clearsigned(b"# BLAKE2B HASH\n", "DIGESTS")
    with pytest.raises(UntrustedKey, match="no usable"):
        KeyFileVerifier(b"not a key", "empty.asc")


# -- keys made as Gentoo's are: a certify-only primary key and a signing subkey ---------------------------------

@pytest.fixture
def expired_subkey(tmp_path):
    """A key whose signing subkey expired on 2020-01-02, and what it signed on 2020-01-01."""
    key = ReleaseKey.make(tmp_path / "g", name="old", email="old@jobtage.example", sign_expire="1d",
                          fake_time="20200101T000000")
    yield key
    stop_agent(key.gnupghome)


@pytest.mark.bad_input('signature', "a maintainer's file signed by a key whose signing subkey expired",
                       "ExpiredKey: <user>'s key <fpr> expired on <date> (its signing subkey ...), not BadSignature")
def test_expired_signing_subkey_of_a_maintainer(expired_subkey):
    signer, fpr = expired_subkey.signer, expired_subkey.fingerprint
    key = expired_subkey.key_file.read_bytes()
    words = rf"old's key {fpr} expired on 2020-01-02 \(its signing subkey [0-9A-F]{{40}}\): update it \(old must"
    with Verifier({"old": fpr}) as v:
        with pytest.raises(ExpiredKey, match=words):
            v.verify_detached("old", key, DATA, signer.detached(DATA), "f")
        # clearsigned (a Manifest): gpg's last word there is "key expired", which is not a bad signature
        with pytest.raises(ExpiredKey, match=words):
            v.verify_clearsigned("old", key, signer.clearsign(b"DIST a 1 BLAKE2B x SHA512 y\n"), "Manifest")
        # a bad signature by that key is still a bad signature
        with pytest.raises(BadSignature):
            v.verify_detached("old", key, DATA + b"x", signer.detached(DATA), "f")


@pytest.mark.bad_input('signature', 'a release file signed by a key file whose signing subkey expired',
                       'ExpiredKey: the release key <fpr> expired on <date> (its signing subkey ...): update it')
def test_expired_signing_subkey_of_a_key_file(expired_subkey, tmp_path):
    from autotua.signature import KeyFileVerifier

    data = tmp_path / "snapshot.tar.xz"
    data.write_bytes(b"tarball\n")
    signer = expired_subkey.signer
    with KeyFileVerifier(expired_subkey.key_file.read_bytes(), "release.asc") as v:
        for check in (lambda: v.verify_clearsigned(signer.clearsign(b"# ts=1\n"), "latest.txt"),
                      lambda: v.verify_file(data, signer.detached(data.read_bytes()), "snapshot.tar.xz")):
            with pytest.raises(ExpiredKey, match=rf"the release key {expired_subkey.fingerprint} expired on "
                                                 r"2020-01-02 \(its signing subkey [0-9A-F]{40}\): update it"):
                check()


@pytest.mark.bad_input('signature', 'a file signed by a key whose signing subkey was revoked',
                       'RevokedKey: ... is revoked (its signing subkey ...)')
def test_revoked_signing_subkey(tmp_path):
    from autotua.signature import KeyFileVerifier

    key = ReleaseKey.make(tmp_path / "g", name="gone", email="gone@jobtage.example")
    signer = key.signer
    sig, clear = signer.detached(DATA), signer.clearsign(DATA)
    revoked = key.revoke_signing_subkey()
    stop_agent(key.gnupghome)
    data = tmp_path / "f"
    data.write_bytes(DATA)
    with Verifier({"gone": key.fingerprint}) as v:
        with pytest.raises(RevokedKey, match=rf"gone's key {key.fingerprint} is revoked \(its signing subkey"):
            v.verify_detached("gone", revoked, DATA, sig, "f")
        with pytest.raises(RevokedKey, match="is revoked"):
            v.verify_clearsigned("gone", revoked, clear, "Manifest")
    with KeyFileVerifier(revoked, "release.asc") as v, pytest.raises(RevokedKey, match="is revoked"):
        v.verify_file(data, sig, "f")


@pytest.mark.bad_input('signature', "a snapshot signed by another key of the same key file (the release key)",
                       'WrongKey: not by the snapshot key <fpr>')
@pytest.mark.bad_input('signature', 'a key file that does not hold the pinned snapshot key',
                       'UntrustedKey: does not hold the key <fpr>')
def test_key_file_verifier_pinned_to_one_key(gnupghome, keys, tmp_path):
    from autotua.signature import KeyFileVerifier, KeyWords

    alice, bob = Signer(keys["alice"], str(gnupghome)), Signer(keys["bob"], str(gnupghome))
    both = alice.export_public(keys["alice"]) + bob.export_public(keys["bob"])
    data = tmp_path / "f"
    data.write_bytes(DATA)
    words = KeyWords("the snapshot key")
    with KeyFileVerifier(both, "gentoo-release.asc", only={keys["bob"]}, words=words) as v:
        assert v.verify_file(data, bob.detached(DATA), "f").fingerprint == keys["bob"]
        with pytest.raises(WrongKey, match=rf"not by the snapshot key {keys['bob']}"):
            v.verify_file(data, alice.detached(DATA), "f")
    with pytest.raises(UntrustedKey, match=f"does not hold the key {keys['carol']}"):
        KeyFileVerifier(both, "gentoo-release.asc", only={keys["carol"]})
