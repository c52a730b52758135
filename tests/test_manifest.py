import hashlib

import pytest

from autotua.manifest import (
    DigestMismatch,
    Manifest,
    ManifestError,
    data_digests,
    file_digests,
    verify_data,
    verify_file,
)

B2 = hashlib.blake2b(b"hello").hexdigest()
S5 = hashlib.sha512(b"hello").hexdigest()


def test_roundtrip(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"hello")
    (tmp_path / "s.sh").write_bytes(b"echo")
    m = Manifest.build({"a.tar.gz": tmp_path / "a.tar.gz"}, {"sub/s.sh": tmp_path / "s.sh"})
    text = m.to_text()
    assert text.splitlines()[0].startswith("AUX sub/s.sh 4 BLAKE2B ")
    assert f"DIST a.tar.gz 5 BLAKE2B {B2} SHA512 {S5}\n" in text
    again = Manifest.parse(text)
    assert again.to_text() == text
    assert again.names("DIST") == ["a.tar.gz"]
    assert again.get("AUX", "sub/s.sh").size == 4


@pytest.mark.bad_input('manifest', 'a DIST line with a wrong extra SHA256 digest', 'DigestMismatch: SHA256')
def test_extra_hashes_are_kept_and_checked(tmp_path):
    sha256 = hashlib.sha256(b"hello").hexdigest()
    m = Manifest.parse(f"DIST a 5 SHA256 {sha256} BLAKE2B {B2} SHA512 {S5}\n")
    (tmp_path / "a").write_bytes(b"hello")
    verify_file(tmp_path / "a", m.get("DIST", "a"))
    bad = Manifest.parse(f"DIST a 5 SHA256 {'0' * 64} BLAKE2B {B2} SHA512 {S5}\n")
    with pytest.raises(DigestMismatch, match="SHA256"):
        verify_file(tmp_path / "a", bad.get("DIST", "a"))


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (f"EBUILD a 5 BLAKE2B {B2} SHA512 {S5}", 1, "unknown entry type 'EBUILD'"),
        (f"\nDIST a five BLAKE2B {B2} SHA512 {S5}", 2, "size 'five' is not a number"),
        (f"DIST a 5 BLAKE2B {B2}", 1, "lacks the SHA512 digest"),
        (f"DIST a 5 SHA512 {S5}", 1, "lacks the BLAKE2B digest"),
        (f"DIST a 5 BLAKE2B {B2} SHA512", 1, "expected"),
        ("DIST a", 1, "expected"),
        (f"DIST a 5 BLAKE2B {B2[:-2]} SHA512 {S5}", 1, "hex digits"),
        (f"DIST a 5 BLAKE2B {B2.upper()} SHA512 {S5}", 1, "lower-case hex"),
        (f"DIST a 5 BLAKE2B {B2} BLAKE2B {B2} SHA512 {S5}", 1, "given twice"),
        (f"DIST ../a 5 BLAKE2B {B2} SHA512 {S5}", 1, "'..'"),
        (f"DIST dir/a 5 BLAKE2B {B2} SHA512 {S5}", 1, "with a '/'"),
        (f"AUX /etc/passwd 5 BLAKE2B {B2} SHA512 {S5}", 1, "absolute"),
        (f"DIST a 5 BLAKE2B {B2} SHA512 {S5}\n\nDIST a 5 BLAKE2B {B2} SHA512 {S5}", 3, "listed twice"),
        ("-----BEGIN PGP SIGNED MESSAGE-----\n", None, "still clearsigned"),
    ],
)
@pytest.mark.bad_input('manifest', 'a Manifest line: {why}', 'ManifestError naming the file and line: {why}')
def test_malformed_lines_name_the_line(text, line, why):
    with pytest.raises(ManifestError) as e:
        Manifest.parse(text, "bob/x/Manifest")
    assert why in str(e.value)
    if line:
        assert f"bob/x/Manifest, line {line}:" in str(e.value)


@pytest.mark.bad_input('manifest', 'a file whose BLAKE2B differs from its DIST line',
                       'DigestMismatch: BLAKE2B digest mismatch')
@pytest.mark.bad_input('manifest', 'a file of another size than its DIST line',
                       'DigestMismatch: size is 6 bytes, expected 5')
@pytest.mark.bad_input('manifest', 'a file the Manifest lists that is not there', 'DigestMismatch: missing')
def test_verify(tmp_path):
    f = tmp_path / "a"
    f.write_bytes(b"hello")
    entry = Manifest.parse(f"DIST a 5 BLAKE2B {B2} SHA512 {S5}").get("DIST", "a")
    verify_file(f, entry)
    verify_data(b"hello", entry)
    f.write_bytes(b"hellO")
    with pytest.raises(DigestMismatch, match="BLAKE2B digest mismatch"):
        verify_file(f, entry)
    f.write_bytes(b"hello!")
    with pytest.raises(DigestMismatch, match="size is 6 bytes, expected 5"):
        verify_file(f, entry)
    with pytest.raises(DigestMismatch, match="missing"):
        verify_file(tmp_path / "nope", entry)
    with pytest.raises(DigestMismatch):
        verify_data(b"jello", entry)


def test_digests_agree(tmp_path):
    data = bytes(range(256)) * 10000
    (tmp_path / "big").write_bytes(data)
    assert file_digests(tmp_path / "big") == data_digests(data)
