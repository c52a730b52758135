"""Stage3s from the autobuilds layout: the exact formats, every signature and digest checked, resumed
downloads, and each way a mirror can lie refused."""

import os

import pytest

from autotua.demo.stage3 import digests_block
from autotua.signature import Signer
from autotua.slave import SlaveError
from autotua.slave.stage3 import Stage3Store, parse_digests, parse_latest

# As Gentoo publishes them (bodies of the clearsigned files).
GENTOO_LATEST = """\
# Latest as of Sun, 17 Nov 2024 17:00:08 +0000
# ts=1731862808
20241117T170000Z/stage3-amd64-openrc-20241117T170000Z.tar.xz 264375836
"""
GENTOO_DIGESTS = """\
# BLAKE2B HASH
{b}  stage3-amd64-openrc-20241117T170000Z.tar.xz
# SHA512 HASH
{s}  stage3-amd64-openrc-20241117T170000Z.tar.xz
# BLAKE2B HASH
{b}  stage3-amd64-openrc-20241117T170000Z.tar.xz.CONTENTS.gz
# SHA512 HASH
{s}  stage3-amd64-openrc-20241117T170000Z.tar.xz.CONTENTS.gz
""".format(b="ab" * 64, s="cd" * 64)


def test_parse_gentoo_formats():
    latest = parse_latest(GENTOO_LATEST, "latest")
    assert latest.path == "20241117T170000Z/stage3-amd64-openrc-20241117T170000Z.tar.xz"
    assert (latest.size, latest.timestamp) == (264375836, "20241117T170000Z")
    digests = parse_digests(GENTOO_DIGESTS, "DIGESTS")
    assert digests["stage3-amd64-openrc-20241117T170000Z.tar.xz"] == {"BLAKE2B": "ab" * 64, "SHA512": "cd" * 64}
    assert set(digests) == {"stage3-amd64-openrc-20241117T170000Z.tar.xz",
                            "stage3-amd64-openrc-20241117T170000Z.tar.xz.CONTENTS.gz"}


@pytest.mark.parametrize("line", ["../../etc/passwd 5", "20241117T170000Z/../x.tar.xz 5",
                                  "/abs/stage3-amd64-openrc-1.tar.xz 5", "20241117T170000Z/stage3-x.tar.xz big",
                                  "20241117T170000Z/evil.sh 5"])
@pytest.mark.bad_input('stage3', 'the latest-stage3 line {line!r}', 'SlaveError: latest...')
def test_latest_refuses_strange_paths(line):
    with pytest.raises(SlaveError, match=r"latest"):
        parse_latest(f"# ts=1\n{line}\n", "latest")


def test_the_builder_writes_what_the_parser_reads(stage3):
    digests = (stage3.tarball.parent / (stage3.tarball.name + ".DIGESTS")).read_text()
    assert "-----BEGIN PGP SIGNED MESSAGE-----" in digests
    body = digests.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0]
    assert body == digests_block(stage3.tarball) + digests_block(stage3.tarball.with_name(stage3.tarball.name +
                                                                                         ".CONTENTS.gz"))
    latest = stage3.latest.read_text()
    assert f"\n{stage3.path} {stage3.tarball.stat().st_size}\n" in latest
    assert "# Latest as of " in latest and "\n# ts=" in latest
    for suffix in (".asc", ".CONTENTS.gz", ".sha256"):
        assert (stage3.tarball.parent / (stage3.tarball.name + suffix)).exists()


def store(mirror, tmp_path, key_file):
    return Stage3Store(mirror.url, tmp_path / "cache", key_file)


def test_fetch_verifies_and_caches(mirror, tmp_path, release_key):
    s = store(mirror, tmp_path, release_key.key_file)
    path = s.fetch("amd64", "openrc")
    assert path.read_bytes() == mirror.release.tarball.read_bytes()
    assert path.with_name(path.name + ".verified").exists()
    tarball_gets = [r for r in mirror.requests if r[1].endswith(".tar.xz")]
    assert len(tarball_gets) == 1
    assert s.fetch("amd64", "openrc") == path
    assert len([r for r in mirror.requests if r[1].endswith(".tar.xz")]) == 1  # not fetched again
    assert s.cached("amd64", "openrc") == [path]


def resign(path, signer):
    """Re-clearsign a clearsigned file's body with another key."""
    text = path.read_text()
    body = text.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0]
    path.write_bytes(signer.clearsign(body.encode()))


@pytest.mark.bad_input('stage3', 'latest-stage3 signed by another key',
                       'stage3: signed by key ..., not by a key of the release key file')
def test_pointer_signed_by_another_key(mirror, tmp_path, release_key, gnupghome, keys):
    resign(mirror.release.latest, Signer(keys["mallory"], str(gnupghome)))
    with pytest.raises(SlaveError, match=r"stage3: latest-stage3-amd64-openrc\.txt: signed by key .* not by a key of"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "openrc")


@pytest.mark.bad_input('stage3', 'latest-stage3 not clearsigned', 'not clearsigned')
def test_pointer_not_signed(mirror, tmp_path, release_key):
    mirror.release.latest.write_text(f"{mirror.release.path} 100\n")
    with pytest.raises(SlaveError, match=r"not clearsigned"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "openrc")


@pytest.mark.bad_input('stage3', 'latest-stage3 edited after signing', 'BAD signature')
def test_pointer_edited_after_signing(mirror, tmp_path, release_key):
    latest = mirror.release.latest
    latest.write_text(latest.read_text().replace(mirror.release.timestamp + "/", "20200101T000000Z/", 1))
    with pytest.raises(SlaveError, match=r"BAD signature"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "openrc")


@pytest.mark.bad_input('stage3', 'a DIGESTS signed by another key', '.DIGESTS: signed by key ...')
def test_digests_signed_by_another_key(mirror, tmp_path, release_key, gnupghome, keys):
    resign(mirror.release.tarball.with_name(mirror.release.tarball.name + ".DIGESTS"),
           Signer(keys["mallory"], str(gnupghome)))
    with pytest.raises(SlaveError, match=r"\.DIGESTS: signed by key"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "openrc")


@pytest.mark.bad_input('stage3', 'a stage3 tarball that does not match its DIGESTS',
                       'DIGESTS does not match; deleted, nothing cached')
def test_tarball_that_does_not_match_its_digests_is_deleted(mirror, tmp_path, release_key):
    tarball = mirror.release.tarball
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    tarball.write_bytes(bytes(data))
    s = store(mirror, tmp_path, release_key.key_file)
    with pytest.raises(SlaveError, match=r"DIGESTS does not match stage3-amd64-openrc-.*deleted"):
        s.fetch("amd64", "openrc")
    left = list((tmp_path / "cache/stage3/amd64").rglob("*.tar.xz*"))
    assert left == []


@pytest.mark.bad_input('stage3', 'a stage3 tarball .asc by another key', 'signed by key ...; deleted')
def test_tarball_signature_by_another_key_is_refused(mirror, tmp_path, release_key, gnupghome, keys):
    tarball = mirror.release.tarball
    tarball.with_name(tarball.name + ".asc").write_bytes(
        Signer(keys["mallory"], str(gnupghome)).detached(tarball.read_bytes()))
    with pytest.raises(SlaveError, match=r"signed by key .* deleted"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "openrc")
    assert not list((tmp_path / "cache/stage3/amd64").rglob("*.tar.xz"))


@pytest.mark.bad_input('stage3', 'a stage3 download cut short', 'could not fetch; resumed later, never used')
def test_truncated_download_is_resumed_never_used(mirror, tmp_path, release_key):
    s = store(mirror, tmp_path, release_key.key_file)
    path = "/releases/amd64/autobuilds/" + mirror.release.path
    mirror.faults[path] = "truncate"
    with pytest.raises(SlaveError, match=r"could not fetch"):
        s.fetch("amd64", "openrc")
    part = list((tmp_path / "cache/stage3/amd64").rglob("*.tar.xz.part"))
    assert len(part) == 1 and 0 < part[0].stat().st_size < mirror.release.tarball.stat().st_size
    assert not list((tmp_path / "cache/stage3/amd64").rglob("*.tar.xz"))
    resume_from = part[0].stat().st_size
    del mirror.faults[path]
    fetched = s.fetch("amd64", "openrc")
    assert fetched.read_bytes() == mirror.release.tarball.read_bytes()
    assert ("GET", path, f"bytes={resume_from}-") in mirror.requests
    assert not part[0].exists()


@pytest.mark.bad_input('stage3', 'no release key file', 'no release key: ... does not exist')
def test_missing_release_key(mirror, tmp_path):
    with pytest.raises(SlaveError, match=r"no release key: .* does not exist"):
        store(mirror, tmp_path, tmp_path / "none.asc").fetch("amd64", "openrc")


@pytest.mark.bad_input('stage3', 'a stage3 flavour the mirror does not have',
                       'cannot fetch latest-stage3-amd64-nosuch.txt; nothing cached')
def test_unknown_flavour(mirror, tmp_path, release_key):
    with pytest.raises(SlaveError, match=r"cannot fetch .*latest-stage3-amd64-nosuch.txt"):
        store(mirror, tmp_path, release_key.key_file).fetch("amd64", "nosuch")
    assert not os.path.exists(tmp_path / "cache/stage3/amd64/nosuch")
