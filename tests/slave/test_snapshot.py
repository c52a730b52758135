"""The Gentoo repository snapshots: Gentoo's snapshots/ layout exactly, the signature by the snapshot
key and the MD5 checked, unpacked once per date with every entry checked, the last few kept; and each
way a mirror or a stolen key can lie refused with nothing cached. Real gpg keys, a real HTTP mirror,
real tarballs of a real repository (built with portage's egencache)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.repository import (
    build_repository,
    make_snapshot_key,
    publish_snapshot,
    sign_snapshot,
    signing_time,
    write_snapshot_tarball,
)
from autotua.demo.sampletree import stop_agent
from autotua.slave import SlaveError
from autotua.slave.config import from_dict
from autotua.slave.snapshot import (
    LATEST,
    SnapshotStore,
    check_date,
    host_repository,
    open_repository,
    parse_md5sum,
    read_timestamp,
)
from tests.conftest import days_ago

bad = pytest.mark.bad_input


@pytest.fixture
def mirror(tmp_path, snapshots):
    """A private copy of the session's snapshots mirror (a test may spoil it), served on 127.0.0.1."""
    root = tmp_path / "mirror"
    shutil.copytree(snapshots[0].mirror, root)
    with MirrorServer(root) as server:
        server.old, server.new = (root / "snapshots" / s.tarball.name for s in snapshots)
        server.dates = [s.date for s in snapshots]
        yield server


@pytest.fixture
def store(mirror, tmp_path, snapshot_key):
    def make(key_file=None, fingerprint=None, keep=3, cache="cache"):
        return SnapshotStore([mirror.url], tmp_path / cache, key_file or snapshot_key.key_file,
                             fingerprint=snapshot_key.fingerprint if fingerprint is None else fingerprint, keep=keep)
    return make


def nothing_cached(cache: Path) -> bool:
    """No snapshot a job could use: no tarball at its name, no tree (a ``.part`` to resume is fine)."""
    files = [p for p in (cache / "snapshots").glob("*") if not p.name.endswith((".lock", ".part"))]
    trees = list((cache / "repos").glob("*")) if (cache / "repos").exists() else []
    return not files and not [t for t in trees if not t.name.endswith((".lock", ".unpack-lock", ".inuse"))]


def tarball_gets(mirror) -> list[str]:
    return [r[1] for r in mirror.requests if r[1].endswith(".tar.xz")]


# -- the good path ----------------------------------------------------------------------------------
def test_fetch_verify_unpack_and_cache(store, mirror, tmp_path):
    s = store()
    date = mirror.dates[0]
    repo = s.get(date)
    assert repo.path == tmp_path / f"cache/repos/gentoo-{date}"
    assert (repo.path / "profiles/repo_name").read_text() == "gentoo\n"  # the top directory is stripped
    assert (repo.path / "metadata/md5-cache/app-misc/hello-1.0").read_text().count("REQUIRED_USE=^^ ( english french )")
    assert repo.timestamp == read_timestamp(repo.path) and repo.timestamp.endswith("00:45:00 +0000")
    assert repo.inputs() == {"source": "snapshot", "snapshot": date, "name": f"gentoo-{date}.tar.xz",
                             "timestamp_chk": repo.timestamp}
    st = (repo.path / "app-misc/hello/hello-1.0.ebuild").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)  # owned by root, not the tarball's 250
    # the tarball was checked against its .md5sum and .gpgsig, and is kept with its stamp
    assert (tmp_path / f"cache/snapshots/gentoo-{date}.tar.xz.verified").exists()
    assert tarball_gets(mirror) == [f"/snapshots/gentoo-{date}.tar.xz"]
    assert s.get(date).path == repo.path and len(tarball_gets(mirror)) == 1  # the second time: from the cache
    assert s.cached() == [date]


def test_gentoo_latest_is_dated_by_its_signature(store, mirror):
    s = store()
    repo = s.get(LATEST)
    assert repo.snapshot == mirror.dates[1]  # yesterday's, from the signature's creation time
    assert repo.path.name == f"gentoo-{mirror.dates[1]}"
    assert tarball_gets(mirror) == ["/snapshots/gentoo-latest.tar.xz"]
    # the next time only the signature is fetched; the same date by name is the same tree
    assert s.get(LATEST).path == repo.path and s.get(mirror.dates[1]).path == repo.path
    assert tarball_gets(mirror) == ["/snapshots/gentoo-latest.tar.xz"]


def test_a_download_cut_short_is_resumed(store, mirror, tmp_path, snapshot_key):
    # a snapshot of some size (a real one is ~45 MiB): the tiny repository and 256 KiB that xz cannot shrink
    date = mirror.dates[0]
    blob = member(f"gentoo-{date}/distfiles-blob", data=os.urandom(256 << 10))
    write_snapshot_tarball(mirror.old, build_repository(tmp_path / "tree", date, tmp_path / "d"), f"gentoo-{date}",
                           [blob])
    sign_snapshot(mirror.old, snapshot_key, date)
    path = f"/snapshots/{mirror.old.name}"
    mirror.faults[path] = "truncate"
    s = store()
    with pytest.raises(SlaveError, match="could not fetch"):
        s.get(mirror.dates[0])
    part = tmp_path / f"cache/snapshots/{mirror.old.name}.part"
    assert 0 < part.stat().st_size < mirror.old.stat().st_size
    assert nothing_cached(tmp_path / "cache")
    resume = part.stat().st_size
    del mirror.faults[path]
    assert s.get(mirror.dates[0]).path.is_dir()
    assert ("GET", path, f"bytes={resume}-") in mirror.requests


def test_the_last_few_are_kept(tmp_path, snapshot_key, snapshots):
    """Four dates with keep=2: the oldest go, but never one a job holds."""
    root = tmp_path / "mirror"
    shutil.copytree(snapshots[0].mirror, root)
    tree = build_repository(tmp_path / "tree", days_ago(9), tmp_path / "distfiles")
    extra = [days_ago(n) for n in (9, 7)]
    for date in extra:
        tarball = root / "snapshots" / f"gentoo-{date}.tar.xz"
        write_snapshot_tarball(tarball, tree, f"gentoo-{date}")
        sign_snapshot(tarball, snapshot_key, date)
    with MirrorServer(root) as m:
        s = SnapshotStore([m.url], tmp_path / "cache", snapshot_key.key_file, fingerprint=snapshot_key.fingerprint,
                          keep=2)
        oldest = s.get(extra[0])
        held = oldest.hold()
        try:
            for date in (extra[1], snapshots[0].date, snapshots[1].date):
                s.get(date)
            # the newest two are kept, and the oldest because a job holds it
            assert s.cached() == [snapshots[1].date, snapshots[0].date, extra[0]]
        finally:
            os.close(held)
        assert s.prune() == [extra[0]]
        assert s.cached() == [snapshots[1].date, snapshots[0].date]
        assert not oldest.path.exists() and not (tmp_path / f"cache/snapshots/gentoo-{extra[0]}.tar.xz").exists()


# -- bad inputs -------------------------------------------------------------------------------------
@bad("snapshot", "a snapshot changed after it was signed (its .md5sum made to match)",
     "SlaveError: repository: BAD signature; the download was deleted, nothing cached")
def test_bad_signature(store, mirror, tmp_path):
    data = bytearray(mirror.old.read_bytes())
    data[len(data) // 2] ^= 0x01
    mirror.old.write_bytes(bytes(data))
    Path(f"{mirror.old}.md5sum").write_text(f"{hashlib.md5(bytes(data)).hexdigest()}  {mirror.old.name}\n")
    with pytest.raises(SlaveError, match=r"repository: gentoo-\d{8}\.tar\.xz: BAD signature.*download was deleted"):
        store().get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")


@bad("snapshot", "a snapshot signed by a key that is not the snapshot key",
     "SlaveError: signed by key ..., not by the Gentoo snapshot key <fpr>; nothing cached")
@bad("snapshot", "a snapshot signed by the release key, another key of the same key file",
     "SlaveError: signed by key <release fpr>, not by the Gentoo snapshot key <fpr>; nothing cached")
def test_wrong_key(store, mirror, tmp_path, release_key, snapshot_key, gnupghome, keys):
    from autotua.signature import Signer

    mallory = Signer(keys["mallory"], str(gnupghome))
    sig = Path(f"{mirror.old}.gpgsig")
    sig.write_bytes(mallory.detached(mirror.old.read_bytes()))
    words = rf"signed by key \w+, not by the Gentoo snapshot key {snapshot_key.fingerprint}"
    with pytest.raises(SlaveError, match=words):
        store().get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")
    # gentoo-release.asc holds both the release key and the snapshot key: a snapshot signed by the
    # release key is still refused, the store being pinned to the snapshot key's fingerprint
    both = tmp_path / "gentoo-release.asc"
    both.write_bytes(release_key.key_file.read_bytes() + snapshot_key.key_file.read_bytes())
    sig.write_bytes(release_key.signer.detached(mirror.old.read_bytes()))
    with pytest.raises(SlaveError, match=rf"signed by key {release_key.fingerprint}, not by the Gentoo snapshot key"):
        store(key_file=both).get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")
    sig.write_bytes(snapshot_key.signer_at(signing_time(mirror.dates[0])).detached(mirror.old.read_bytes()))
    assert store(key_file=both).get(mirror.dates[0]).path.is_dir()  # the genuine one, from the same file


@bad("snapshot", "a key file without the snapshot key", "SlaveError: does not hold the key <fpr> (on Gentoo: ...)")
@bad("snapshot", "no snapshot key file", "SlaveError: no snapshot key: ... does not exist (on Gentoo: ...)")
def test_missing_snapshot_key(store, mirror, tmp_path, release_key, snapshot_key):
    with pytest.raises(SlaveError, match=rf"does not hold the key {snapshot_key.fingerprint} \(on Gentoo: emerge"):
        store(key_file=release_key.key_file).get(mirror.dates[0])
    with pytest.raises(SlaveError, match=r"repository: no snapshot key: .*none\.asc does not exist \(on Gentoo: "
                                         r"emerge --oneshot sec-keys/openpgp-keys-gentoo-release; elsewhere: "):
        store(key_file=tmp_path / "none.asc").get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")


@bad("snapshot", "a snapshot signed by a snapshot key whose signing subkey expired (as Gentoo's exports are)",
     "SlaveError: the Gentoo snapshot key <fpr> expired on <date> (its signing subkey ...): update it; nothing cached")
def test_expired_snapshot_key(mirror, tmp_path):
    old = make_snapshot_key(tmp_path / "old-gpg", sign_expire="1d", fake_time="20200101T000000")
    try:
        Path(f"{mirror.old}.gpgsig").write_bytes(old.signer_at("20200101T060000").detached(mirror.old.read_bytes()))
        s = SnapshotStore([mirror.url], tmp_path / "cache", old.key_file, fingerprint=old.fingerprint)
        with pytest.raises(SlaveError) as e:
            s.get(mirror.dates[0])
    finally:
        stop_agent(old.gnupghome)
    assert str(e.value).startswith(
        f"repository: {mirror.old.name}: the Gentoo snapshot key {old.fingerprint} expired on 2020-01-02 "
        "(its signing subkey ")
    assert ": update it (on Gentoo: emerge --oneshot sec-keys/openpgp-keys-gentoo-release; elsewhere: download " \
           "the current gentoo-release.asc from https://www.gentoo.org/downloads/signatures/ and set snapshot_key " \
           "to it); the download was deleted" in str(e.value)
    assert "BAD" not in str(e.value) and "bad signature" not in str(e.value).lower()
    assert nothing_cached(tmp_path / "cache")


@bad("snapshot", "a snapshot whose MD5 is not its .md5sum's", "SlaveError: MD5 ... is not the ... of .md5sum; deleted")
@bad("snapshot", "a .md5sum that is not an MD5 sum", "SlaveError: not an MD5 sum; nothing fetched")
@bad("snapshot", "a snapshot without its .gpgsig", "SlaveError: cannot fetch ....gpgsig; the download was deleted")
def test_digests_and_signatures_missing_or_wrong(store, mirror, tmp_path):
    md5sum = Path(f"{mirror.old}.md5sum")
    md5sum.write_text(f"{'0' * 32}  {mirror.old.name}\n")
    with pytest.raises(SlaveError, match=rf"MD5 [0-9a-f]{{32}} is not the {'0' * 32} of {mirror.old.name}\.md5sum.*"
                                         "the download was deleted"):
        store().get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")
    md5sum.write_text("<html>not found</html>\n")
    with pytest.raises(SlaveError, match="not an MD5 sum"):
        store().get(mirror.dates[0])
    assert tarball_gets(mirror) == [f"/snapshots/{mirror.old.name}"]  # not fetched again for a bad .md5sum
    md5sum.write_text(f"{hashlib.md5(mirror.old.read_bytes()).hexdigest()}  {mirror.old.name}\n")
    Path(f"{mirror.old}.gpgsig").unlink()
    with pytest.raises(SlaveError, match=r"cannot fetch .*\.gpgsig.*the download was deleted"):
        store().get(mirror.dates[0])
    assert nothing_cached(tmp_path / "cache")


@bad("snapshot", "an older signed snapshot served under a newer date's name",
     "SlaveError: signed on <date>: not the snapshot of <date>; the download was deleted")
def test_another_days_snapshot_under_this_name(store, mirror, tmp_path):
    for suffix in ("", ".gpgsig", ".md5sum"):
        Path(f"{mirror.new}{suffix}").write_bytes(Path(f"{mirror.old}{suffix}").read_bytes())
    old, new = mirror.dates
    with pytest.raises(SlaveError, match=rf"{mirror.new.name} was signed on {old}: it is not the snapshot of {new}"):
        store().get(new)
    assert nothing_cached(tmp_path / "cache")


@bad("snapshot", "a snapshot date the mirror does not have", "SlaveError: cannot fetch ....md5sum; nothing cached")
def test_unknown_date(store, mirror, tmp_path):
    with pytest.raises(SlaveError, match=r"repository: cannot fetch .*gentoo-20000101\.tar\.xz\.md5sum"):
        store().get("20000101")
    assert nothing_cached(tmp_path / "cache")


@pytest.mark.parametrize("date", ["../../etc", "2026111", "20261340", "2026-11-17", ""])
@bad("snapshot", "the snapshot date {date!r}", "SlaveError: not a snapshot date (YYYYMMDD)")
def test_dates_are_checked(date):
    with pytest.raises(SlaveError, match="not a snapshot date"):
        check_date(date)


def test_md5sum_format():
    assert parse_md5sum(b"9e107d9d372bb6826bd81d3542a419d6  gentoo-20261117.tar.xz\n", "m") == \
        "9e107d9d372bb6826bd81d3542a419d6"


def member(name, kind=tarfile.REGTYPE, data=b"x\n", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


HOSTILE = {
    "dotdot": ([member("gentoo-{d}/../../etc/cron.d/evil")], "'..' component"),
    "absolute": ([member("/etc/cron.d/evil")], "absolute name"),
    "outside the top directory": ([member("evil/profiles/x")], "outside the top directory"),
    "a file beside the top directory": ([member("evil.sh")], "outside the top directory"),
    "absolute symlink": ([member("gentoo-{d}/app-misc/hello/files", tarfile.SYMTYPE, linkname="/etc")],
                         "points outside the repository"),
    "symlink climbing out": ([member("gentoo-{d}/profiles/up", tarfile.SYMTYPE, linkname="../../etc")],
                             "points outside the repository"),
    "write through own symlink": ([member("gentoo-{d}/x", tarfile.SYMTYPE, linkname="profiles"),
                                   member("gentoo-{d}/x/evil")], "below the symlink"),
    "setuid file": ([member("gentoo-{d}/scripts/su", mode=0o4755)], "setuid or setgid"),
    "device node": ([member("gentoo-{d}/dev-null", tarfile.CHRTYPE)], "device node"),
    "fifo": ([member("gentoo-{d}/fifo", tarfile.FIFOTYPE)], "only files, directories and links"),
    "hard link outside": ([member("gentoo-{d}/shadow", tarfile.LNKTYPE, linkname="/etc/shadow")], "absolute"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@bad("snapshot", "a signed snapshot with an entry that escapes or does not belong: {case}",
     "SlaveError: refusing entry ...; nothing unpacked, the tarball not kept")
def test_signed_snapshot_with_a_hostile_entry(case, tmp_path, snapshot_key, mirror):
    """Signed by the genuine key (a stolen key, or a bug upstream): still nothing lands outside."""
    date = mirror.dates[0]
    entries, why = HOSTILE[case]
    extra = [(_with_name(info, info.name.format(d=date)), data) for info, data in entries]
    tree = build_repository(tmp_path / "tree", date, tmp_path / "distfiles")
    write_snapshot_tarball(mirror.old, tree, f"gentoo-{date}", extra)
    sign_snapshot(mirror.old, snapshot_key, date)
    s = SnapshotStore([mirror.url], tmp_path / "cache", snapshot_key.key_file, fingerprint=snapshot_key.fingerprint)
    with pytest.raises(SlaveError, match=rf"repository: {mirror.old.name}: (refusing entry .*{why}|.*{why})"):
        s.get(date)
    assert nothing_cached(tmp_path / "cache")
    assert not list((tmp_path / "cache/repos").glob("*.tmp"))
    assert not Path("/etc/cron.d/evil").exists()


def _with_name(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    info.name = name
    return info


# -- the host's repository, and which one a job gets ------------------------------------------------
def test_the_hosts_repository(tmp_path, snapshots):
    tree = build_repository(tmp_path / "gentoo", snapshots[0].date, tmp_path / "distfiles")
    repo = host_repository(tree)
    assert repo.inputs() == {"source": "host", "path": str(tree), "timestamp_chk": read_timestamp(tree)}
    assert repo.timestamp and repo.hold() is None
    cfg = from_dict({"master": "http://m.example", "repository": str(tree)})
    assert open_repository(cfg, {"date": snapshots[1].date}).path == tree  # the host's, whatever the pin


@bad("slave", "repository = a directory that is not an ebuild repository", "SlaveError: has no profiles/ directory")
@bad("slave", "repository = a relative path", "ConfigError: repository: \"snapshot\", an absolute path, or \"\"")
def test_the_hosts_repository_must_be_one(tmp_path):
    from autotua.slave.config import ConfigError

    with pytest.raises(SlaveError, match="has no profiles/ directory: not an ebuild repository"):
        host_repository(tmp_path)
    with pytest.raises(ConfigError, match="repository: 'gentoo': \"snapshot\""):
        from_dict({"master": "http://m.example", "repository": "gentoo"})


def test_which_repository_a_job_gets(mirror, tmp_path, snapshot_key):
    cfg = from_dict({"master": "http://m.example", "stage3_mirror": "http://127.0.0.1:9", "cache_dir": str(tmp_path),
                     "snapshot_key": str(snapshot_key.key_file), "snapshot_key_fingerprint": snapshot_key.fingerprint})
    assert open_repository(cfg, None) is None  # the master pinned none
    # the slave's own mirror (here: nothing listening) first, then the claim's url
    repo = open_repository(cfg, {"date": mirror.dates[0], "name": mirror.old.name, "url": f"{mirror.url}/snapshots/"})
    assert repo.snapshot == mirror.dates[0] and (repo.path / "profiles/repo_name").exists()
    with pytest.raises(SlaveError, match="not a snapshot date"):
        open_repository(cfg, {"date": "../x", "url": f"{mirror.url}/snapshots/"})
    assert open_repository(from_dict({"master": "http://m.example", "repository": ""}), {"date": "x"}) is None


def test_publish_snapshot_writes_gentoos_layout(snapshots):
    new = snapshots[1]
    names = sorted(p.name for p in new.snapshots.iterdir())
    for date in (snapshots[0].date, new.date, "latest"):
        for suffix in ("", ".gpgsig", ".md5sum"):
            assert f"gentoo-{date}.tar.xz{suffix}" in names
    assert new.latest.read_bytes() == new.tarball.read_bytes()
    with tarfile.open(new.tarball) as tar:
        assert {n.split("/")[0] for n in tar.getnames()} == {f"gentoo-{new.date}"}
    assert sorted(p.name for p in (new.mirror / "distfiles").iterdir()) == [
        "greeter-1.0.tar.gz", "greeter-extras-1.0.tar.gz", "hello-1.0.tar.gz", "libgreet-0.9.tar.gz",
        "libgreet-1.0.tar.gz", "oldgreet-1.0.tar.gz", "slowlib-1.0.tar.gz", "tiny-1.0.tar.gz", "tiny-1.1.tar.gz"]
    assert publish_snapshot  # the fixture's builder


def test_clean_removes_an_unpack_a_crash_left(tmp_path):
    """A slave killed while tar unpacked a snapshot leaves ``repos/gentoo-<date>.tmp``: the next start
    (or ``autotua-slave clean``) removes it, and never a complete tree."""
    from autotua.slave.cleanup import clean

    cfg = from_dict({"master": "http://m.example", "cache_dir": str(tmp_path / "cache"),
                     "work_dir": str(tmp_path / "work")})
    repos = tmp_path / "cache/repos"
    (repos / "gentoo-20261101.tmp/profiles").mkdir(parents=True)
    (repos / "gentoo-20261102/profiles").mkdir(parents=True)
    (repos / "gentoo-20261102.complete").write_text("gentoo-20261102.tar.xz\n")
    report = clean(cfg)
    assert f"{repos}/gentoo-20261101.tmp: removed (an unpack that did not finish)" in report
    assert not (repos / "gentoo-20261101.tmp").exists() and (repos / "gentoo-20261102/profiles").is_dir()
