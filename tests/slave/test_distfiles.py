"""Distfiles: fetched through mirror://, verified against the Manifest's digests, not fetched twice."""

import hashlib

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.slave import SlaveError
from autotua.slave.distfiles import Distfiles, merge_mirrors
from autotua.slave.sync import Distfile
from autotua.srcuri import Mirrors


def spec(path, name=None, url=None):
    data = path.read_bytes()
    name = name or path.name
    return Distfile(name, url or f"mirror://samples/{path.name}", len(data),
                    {"BLAKE2B": hashlib.blake2b(data).hexdigest(), "SHA512": hashlib.sha512(data).hexdigest()})


@pytest.fixture
def server(tmp_path):
    d = tmp_path / "srv"
    d.mkdir()
    (d / "suite-1.tar.gz").write_bytes(b"suite one\n" * 1000)
    with MirrorServer(d) as s:
        yield s


def test_fetch_verify_and_no_second_fetch(tmp_path, server):
    df = Distfiles(tmp_path / "distfiles", merge_mirrors(Mirrors(), {"samples": [server.url]}))
    path = df.get(spec(server.root / "suite-1.tar.gz"))
    assert path.read_bytes() == (server.root / "suite-1.tar.gz").read_bytes()
    n = len(server.requests)
    assert df.get(spec(server.root / "suite-1.tar.gz")) == path
    assert len(server.requests) == n


def test_own_mirrors_come_first_then_the_jobs_hints(tmp_path, server):
    merged = merge_mirrors(Mirrors({"samples": ["http://127.0.0.1:9/own"]}), {"samples": [server.url]})
    assert merged.resolve("mirror://samples/x") == ["http://127.0.0.1:9/own/x", f"{server.url}/x"]
    df = Distfiles(tmp_path / "distfiles", merged)
    assert df.get(spec(server.root / "suite-1.tar.gz")).exists()  # the first base is down; the hint works


def test_renamed_with_arrow(tmp_path, server):
    df = Distfiles(tmp_path / "distfiles", merge_mirrors(Mirrors(), {"samples": [server.url]}))
    path = df.get(spec(server.root / "suite-1.tar.gz", name="alice-suite-1.tar.gz"))
    assert path.name == "alice-suite-1.tar.gz"


@pytest.mark.bad_input('manifest', 'a distfile that does not match the signed Manifest',
                       'distfiles: SHA512 digest mismatch; deleted')
def test_wrong_digest_is_an_error_and_nothing_is_kept(tmp_path, server):
    df = Distfiles(tmp_path / "distfiles", merge_mirrors(Mirrors(), {"samples": [server.url]}))
    s = spec(server.root / "suite-1.tar.gz")
    s.hashes["SHA512"] = "0" * 128
    with pytest.raises(SlaveError, match=r"distfiles: suite-1.tar.gz: SHA512 digest mismatch.*deleted"):
        df.get(s)
    assert not (tmp_path / "distfiles/suite-1.tar.gz").exists()
    assert not (tmp_path / "distfiles/suite-1.tar.gz.part").exists()


@pytest.mark.bad_input('manifest', 'a cached distfile changed on disk', 'fetched again and verified')
def test_a_changed_cached_file_is_checked_again(tmp_path, server):
    df = Distfiles(tmp_path / "distfiles", merge_mirrors(Mirrors(), {"samples": [server.url]}))
    s = spec(server.root / "suite-1.tar.gz")
    path = df.get(s)
    path.write_bytes(b"tampered in the cache\n")
    assert df.get(s).read_bytes() == (server.root / "suite-1.tar.gz").read_bytes()  # replaced, verified


@pytest.mark.bad_input('manifest', 'a mirror:// name nobody configured', "no mirror named 'samples'")
def test_unknown_mirror_and_unreachable(tmp_path, server):
    df = Distfiles(tmp_path / "distfiles", Mirrors())
    with pytest.raises(SlaveError, match=r"no mirror named 'samples'"):
        df.get(spec(server.root / "suite-1.tar.gz"))
    server.faults["/suite-1.tar.gz"] = 404
    df = Distfiles(tmp_path / "distfiles", merge_mirrors(Mirrors(), {"samples": [server.url]}))
    with pytest.raises(SlaveError, match=r"could not fetch suite-1.tar.gz"):
        df.get(spec(server.root / "suite-1.tar.gz"))
