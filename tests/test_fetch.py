import hashlib
import io
import sys

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.fetch import FetchError, Progress, fetch
from autotua.manifest import DigestMismatch

DATA = bytes(range(256)) * 4096  # 1 MiB
HASHES = {"BLAKE2B": hashlib.blake2b(DATA).hexdigest(), "SHA512": hashlib.sha512(DATA).hexdigest()}


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "f.bin").write_bytes(DATA)
    with MirrorServer(root) as m:
        yield m


def test_fetch_and_verify(mirror, tmp_path):
    dest = tmp_path / "f.bin"
    fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "f.bin.part").exists()
    # already there and verified: no new request
    n = len(mirror.requests)
    fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert len(mirror.requests) == n


def test_resume_with_range(mirror, tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA[:300000])
    fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert dest.read_bytes() == DATA
    assert mirror.requests[-1][2] == "bytes=300000-"


@pytest.mark.bad_input('manifest', 'a download cut short', 'FetchError; the part is resumed, never used')
def test_truncated_download_is_resumed_never_used(mirror, tmp_path):
    mirror.faults["/f.bin"] = "truncate"
    dest = tmp_path / "f.bin"
    with pytest.raises(FetchError):
        fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert not dest.exists()
    part = tmp_path / "f.bin.part"
    assert 0 < part.stat().st_size < len(DATA)
    del mirror.faults["/f.bin"]
    fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert dest.read_bytes() == DATA
    assert mirror.requests[-1][2].startswith("bytes=")


@pytest.mark.bad_input('manifest', 'a fetched file whose digest differs', 'DigestMismatch; the file is deleted')
def test_bad_digest_deletes_the_file(mirror, tmp_path):
    dest = tmp_path / "f.bin"
    wrong = dict(HASHES, SHA512="0" * 128)
    with pytest.raises(DigestMismatch, match="SHA512"):
        fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=wrong, progress=None)
    assert not dest.exists()
    assert not (tmp_path / "f.bin.part").exists()


def test_a_stale_wrong_file_is_replaced(mirror, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"stale")
    fetch([mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert dest.read_bytes() == DATA


@pytest.mark.bad_input('manifest', "a server sending more bytes than the Manifest's size",
                       'FetchError: more than the expected bytes')
def test_more_bytes_than_expected_are_refused(mirror, tmp_path):
    with pytest.raises(FetchError, match="more than the expected 1000 bytes"):
        fetch([mirror.url + "/f.bin"], tmp_path / "f.bin", size=1000, hashes=HASHES, progress=None)


def test_falls_back_to_the_next_url(mirror, tmp_path):
    dest = tmp_path / "f.bin"
    fetch([mirror.url + "/missing", mirror.url + "/f.bin"], dest, size=len(DATA), hashes=HASHES, progress=None)
    assert dest.read_bytes() == DATA
    with pytest.raises(FetchError, match="404"):
        fetch([mirror.url + "/missing"], tmp_path / "g", progress=None)


def test_progress_on_a_terminal(mirror, tmp_path):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    fetch([mirror.url + "/f.bin"], tmp_path / "f.bin", size=len(DATA), hashes=HASHES,
          progress=lambda label, total: Progress(label, total, out))
    assert "f.bin" in out.getvalue()
    assert "100.0%" in out.getvalue()
    assert "1.0 MiB/1.0 MiB" in out.getvalue()
    assert Progress("x", 1, sys.stderr if not sys.stderr.isatty() else io.StringIO()).enabled is False
