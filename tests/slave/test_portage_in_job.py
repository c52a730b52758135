"""Portage in the job as the slave sets it up (issue 12): its make.conf block (MAKEOPTS from the CPU
share, the FEATURES that work in the container, DISTDIR, PKGDIR, the opt-in signed binhost), the
distfile harvest (only what the pinned repository's Manifests say, attacked with wrong content, a
wrong size, links and names no Manifest lists), and the binary package cache's keys (one per set of
signers). The container half (root, slow) runs real portage in the job container."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from autotua.manifest import Manifest, file_digests
from autotua.slave import binpkgs, makeconf
from autotua.slave.harvest import harvest
from tests.slave.helpers import needs_root

ALICE = "A" * 40
BOB = "B" * 40


# -- make.conf ------------------------------------------------------------------------------------
def test_the_make_conf_block():
    block = makeconf.make_conf(2.0)
    assert 'MAKEOPTS="-j2 -l2"\n' in block
    features = block.split('FEATURES="', 1)[1].split('"', 1)[0].split()
    assert features[0] == "${FEATURES}"  # it extends the stage3's, as portage's incremental FEATURES do
    assert {"sandbox", "usersandbox", "userpriv", "ipc-sandbox", "network-sandbox", "pid-sandbox",
            "buildpkg"} <= set(features)
    assert "getbinpkg" not in features  # the binhost is opt-in
    assert 'EMERGE_DEFAULT_OPTS="${EMERGE_DEFAULT_OPTS} --usepkg --binpkg-respect-use=y --binpkg-changed-deps=y"' \
        in block
    assert 'DISTDIR="/var/cache/distfiles"\n' in block and 'PKGDIR="/var/cache/binpkgs"\n' in block
    assert makeconf.portage_spec(2.0)["binrepos_conf"] == ""
    assert "GENTOO_MIRRORS" not in block
    assert 'GENTOO_MIRRORS="http://a.example/gentoo http://b.example"\n' in makeconf.make_conf(
        1, gentoo_mirrors=["http://a.example/gentoo", 'http://x" FEATURES="-sandbox', "http://b.example"])
    assert 'MAKEOPTS="-j3 -l3"' in makeconf.make_conf(2.5)  # a share of 2.5 CPUs: three jobs
    assert f'MAKEOPTS="-j{os.cpu_count()} -l{os.cpu_count()}"' in makeconf.make_conf(0)  # no quota: every CPU


def test_the_opt_in_binhost_is_signed():
    url = "https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64"
    spec = makeconf.portage_spec(1.0, url)
    features = spec["make_conf"].split('FEATURES="', 1)[1].split('"', 1)[0].split()
    assert {"getbinpkg", "binpkg-request-signature"} <= set(features)
    assert spec["binrepos_conf"] == f"[autotua-binhost]\npriority = 1\nsync-uri = {url}\n"


def test_the_job_make_conf_is_the_stage3s_then_the_slaves():
    stage3 = 'COMMON_FLAGS="-O2 -pipe"\nFEATURES="-sandbox"'
    text = makeconf.job_make_conf(stage3, makeconf.make_conf(1))
    assert text.index('COMMON_FLAGS="-O2 -pipe"') < text.index("MAKEOPTS=") and text.count("FEATURES=") == 2
    assert makeconf.job_make_conf("", "X=1\n") == "X=1\n"


# -- the binary package cache's key ---------------------------------------------------------------
def test_a_binary_package_cache_per_set_of_signers(tmp_path):
    def key(*signers, **over):
        base = {"arch": "amd64", "flavour": "openrc", "stage3": "20261130T170000Z",
                "profile": "default/linux/amd64/23.0", "repository": "20261130", "signers": signers}
        return binpkgs.key(**{**base, **over})

    cache = binpkgs.BinpkgCache(tmp_path)
    alice_bob = cache.get(key(ALICE, BOB))
    assert cache.get(key(BOB, ALICE)) == alice_bob  # a set: the order is not part of it
    assert binpkgs.signers({"bob": BOB.lower(), "alice": ALICE, "alice2": ALICE}) == [ALICE, BOB]
    others = {cache.get(key(ALICE)), cache.get(key(BOB)), cache.get(key(ALICE, BOB, "C" * 40)),
              cache.get(key(ALICE, BOB, stage3="20261201T170000Z")), cache.get(key(ALICE, BOB, repository="20261201")),
              cache.get(key(ALICE, BOB, profile="default/linux/amd64/23.0/systemd")),
              cache.get(key(ALICE, BOB, flavour="musl")), cache.get(key(ALICE, BOB, arch="x86"))}
    assert alice_bob not in others and len(others) == 8
    assert all(p.is_dir() and p.name == "pkgdir" for p in others)
    assert (alice_bob.parent / "key.json").read_text().count(ALICE) == 1


def test_slaves_sharing_a_cache_make_one_binary_package_cache_at_once(tmp_path):
    """Two slaves may share a cache directory (docs/slave.md): both may make the same new PKGDIR at
    the same moment, and neither fails (each wrote key.json under the same temporary name, and the
    second's rename found it gone: an e2e test's job ended in error that way)."""
    cache = binpkgs.BinpkgCache(tmp_path)
    failures: list[BaseException] = []

    def get(k: dict, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            cache.get(k)
        except BaseException as e:  # collected, then asserted
            failures.append(e)

    for n in range(150):
        k = binpkgs.key(arch="amd64", flavour="openrc", stage3=f"2026113{n:03d}", profile="p", repository="r",
                        signers=[ALICE])
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=get, args=(k, barrier)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    made = list(tmp_path.glob("binpkgs/*/key.json"))
    assert len(made) == 150 and not list(tmp_path.glob("binpkgs/*/*.tmp"))
    assert {json.loads(m.read_text())["signers"][0] for m in made} == {ALICE}


def test_stage3_profile(tmp_path):
    (tmp_path / "etc/portage").mkdir(parents=True)
    (tmp_path / "etc/portage/make.profile").symlink_to("../../var/db/repos/gentoo/profiles/default/linux/amd64/23.0")
    assert binpkgs.stage3_profile(tmp_path) == "default/linux/amd64/23.0"
    assert binpkgs.stage3_profile(tmp_path / "none") == ""


# -- the distfile harvest -------------------------------------------------------------------------
@pytest.fixture
def repo_and_files(tmp_path):
    """A repository with one Manifest listing good.tar.gz, other.tar.gz, link.tar.gz, dir.tar.gz."""
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for name in ("good.tar.gz", "other.tar.gz", "short.tar.gz", "link.tar.gz", "dir.tar.gz", "fifo.tar.gz"):
        files[name] = src / name
        files[name].write_bytes(f"the real {name}\n".encode() * 100)
    repo = tmp_path / "repo"
    (repo / "app-misc/pkg").mkdir(parents=True)
    (repo / "app-misc/pkg/Manifest").write_text(Manifest.build(files, {}).to_text())
    return repo, files


@pytest.mark.bad_input("manifest", "a job's DISTDIR layer with a distfile of wrong content, of the wrong size, links, "
                       "a directory, a fifo, names no Manifest lists", "dropped, the cache unchanged")
def test_the_harvest_keeps_only_what_the_manifest_says(tmp_path, repo_and_files):
    repo, files = repo_and_files
    upper, distdir = tmp_path / "upper", tmp_path / "distfiles"
    upper.mkdir()
    distdir.mkdir()
    (distdir / "kept-before").write_text("the cache's own\n")
    shutil.copyfile(files["good.tar.gz"], upper / "good.tar.gz")
    wrong = files["other.tar.gz"].read_bytes()
    (upper / "other.tar.gz").write_bytes(wrong[:-2] + b"!\n")  # the right size, the wrong content
    (upper / "short.tar.gz").write_bytes(b"short\n")
    secret = tmp_path / "secret"
    secret.write_bytes(files["link.tar.gz"].read_bytes())  # a link to the right content, outside
    (upper / "link.tar.gz").symlink_to(secret)
    (upper / "dir.tar.gz").mkdir()
    (upper / "dir.tar.gz" / "x").write_text("x")
    os.mkfifo(upper / "fifo.tar.gz")
    (upper / "unlisted.tar.gz").write_text("nobody lists me\n")
    (upper / ".locks").mkdir()
    done = harvest(upper, distdir, repo)
    assert done.kept == ["good.tar.gz"]
    assert done.dropped["other.tar.gz"] == "its BLAKE2B is not the Manifest's"
    assert done.dropped["short.tar.gz"].startswith("6 bytes, the Manifest says")
    assert done.dropped["link.tar.gz"] == done.dropped["dir.tar.gz"] == done.dropped["fifo.tar.gz"] == \
        "not a regular file"
    assert done.dropped["unlisted.tar.gz"] == "no Manifest of the repository lists it"
    assert sorted(p.name for p in distdir.iterdir()) == [".autotua", "good.tar.gz", "kept-before"]
    assert (distdir / "good.tar.gz").read_bytes() == files["good.tar.gz"].read_bytes()
    assert list((distdir / ".autotua/harvest").iterdir()) == []  # no temporary file left
    assert file_digests(secret)[0] == files["link.tar.gz"].stat().st_size  # the link's target untouched


def test_no_repository_no_harvest(tmp_path, repo_and_files):
    _, files = repo_and_files
    upper, distdir = tmp_path / "upper", tmp_path / "distfiles"
    upper.mkdir()
    distdir.mkdir()
    shutil.copyfile(files["good.tar.gz"], upper / "good.tar.gz")
    done = harvest(upper, distdir, None)
    assert done.kept == [] and list(distdir.iterdir()) == []


# -- in the job container, with real portage -------------------------------------------------------
@pytest.fixture(scope="module")
def portage_root(tmp_path_factory) -> Path:
    from autotua.demo.portage import build_portage_rootfs, portage_wheel
    from autotua.demo.repository import PROFILE

    return build_portage_rootfs(tmp_path_factory.mktemp("stage3") / "root", portage_wheel(), PROFILE)


@pytest.fixture(scope="module")
def repository(tmp_path_factory, snapshot_key, snapshots):
    from autotua.demo.httpserver import MirrorServer
    from autotua.slave.snapshot import SnapshotStore

    with MirrorServer(snapshots[0].mirror) as served:
        store = SnapshotStore([served.url], tmp_path_factory.mktemp("cache"), snapshot_key.key_file,
                              fingerprint=snapshot_key.fingerprint)
        return store.get(snapshots[1].date)


@pytest.mark.slow
@pytest.mark.root
@needs_root
@pytest.mark.bad_input("container", "a jobuild that writes a distfile of wrong content into DISTDIR",
                       "not harvested; the verified one beside it is")
def test_portage_in_the_job_container(tmp_path, portage_root, repository, snapshots, host):
    """The slave's make.conf in the job (emerge --info says so), its PKGDIR cache filled by buildpkg,
    and a harvest of what the job left in its DISTDIR layer: the file it copied in right, kept; the
    one it wrote wrong, dropped."""
    from tests.support.container import sh, start, wait_nothing_left, workspace

    distdir, pkgdir = tmp_path / "distfiles", tmp_path / "pkgdir"
    distdir.mkdir()
    pkgdir.mkdir()
    ws = workspace(tmp_path)
    mirror = Path(snapshots[0].mirror) / "distfiles"
    for name in ("slowlib-1.0.tar.gz", "hello-1.0.tar.gz"):
        shutil.copyfile(mirror / name, ws.tree / name)  # what the job copies into its DISTDIR itself
    c = start(ws, portage_root, host, distdir=distdir, repository=str(repository.path), pkgdir=str(pkgdir),
              portage=makeconf.portage_spec(2))
    try:
        from autotua.slave.inputs import emerge_info

        info = emerge_info(c)
        rc, out = sh(c, "cp /var/tmp/autotua/tree/*.tar.gz /var/cache/distfiles/ && "
                        "SLOWLIB_SECONDS=1 emerge --oneshot app-misc/hello && "
                        "echo tampered >> /var/cache/distfiles/hello-1.0.tar.gz && "
                        "tail -n 5 /etc/portage/make.conf", timeout=900)
        assert rc == 0, out[-4000:]
        done = harvest(c.host_path("disk", "dist-upper"), distdir, repository.path)
    finally:
        c.teardown()
    assert 'PKGDIR="/var/cache/binpkgs"' in info and 'DISTDIR="/var/cache/distfiles"' in info, info
    assert out.rstrip().endswith('DISTDIR="/var/cache/distfiles"\nPKGDIR="/var/cache/binpkgs"')  # make.conf's end
    assert 'MAKEOPTS="-j2 -l2"' in out
    features = info.split('\nFEATURES="', 1)[1].split('"', 1)[0].split()
    assert {"userpriv", "ipc-sandbox", "network-sandbox", "pid-sandbox", "buildpkg", "test"} <= set(features)
    assert "--usepkg" in info.split('EMERGE_DEFAULT_OPTS="', 1)[1].split('"', 1)[0]
    assert "Completed testing app-misc/hello-1.0" in out
    assert (pkgdir / "dev-libs/slowlib").is_dir() and list((pkgdir / "dev-libs/slowlib").glob("slowlib-1.0-*"))
    assert done.kept == ["slowlib-1.0.tar.gz"]
    assert done.dropped["hello-1.0.tar.gz"].endswith("the Manifest says " + str((mirror / "hello-1.0.tar.gz")
                                                                                  .stat().st_size))
    assert sorted(p.name for p in distdir.iterdir() if not p.name.startswith(".")) == ["slowlib-1.0.tar.gz"]
    assert wait_nothing_left(tmp_path, [ws.run], [c.info["netns"]]) == {}


def test_the_keeper_writes_the_defaults_and_the_binhost_into_the_root(tmp_path):
    """As the keeper writes them into the job's root: the stage3's make.conf kept first, the block
    after it and in autotua.conf; the binhost's entry beside a stage3's own binrepos.conf; a make.conf
    directory gets the block as its last file; a make.conf that is a link is replaced, not followed."""
    from autotua.slave.config import from_dict
    from autotua.slave.container.keeper import write_portage_defaults

    url = "https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64"
    cfg = from_dict({"master": "http://m", "binhost": url, "cpus": 3}, "<test>")
    spec = makeconf.portage_spec(cfg.cpus, cfg.binhost)
    root = tmp_path / "root"
    (root / "etc/portage").mkdir(parents=True)
    (root / "etc/portage/make.conf").write_text('COMMON_FLAGS="-O2"\n')
    (root / "etc/portage/binrepos.conf").write_text("[gentoobinhost]\nsync-uri = https://example.org/old\n")
    owner = (os.getuid(), os.getgid())
    write_portage_defaults(str(root), spec, owner)
    conf = (root / "etc/portage/make.conf").read_text()
    assert conf.startswith('COMMON_FLAGS="-O2"\n') and conf.endswith(spec["make_conf"]) and 'MAKEOPTS="-j3 -l3"' in conf
    assert "getbinpkg binpkg-request-signature" in conf
    assert (root / "etc/portage/autotua.conf").read_text() == spec["make_conf"]
    assert (root / "etc/portage/binrepos.conf/autotua.conf").read_text() == \
        f"[autotua-binhost]\npriority = 1\nsync-uri = {url}\n"
    assert (root / "etc/portage/binrepos.conf/stage3.conf").read_text().startswith("[gentoobinhost]")
    # a stage3 whose make.conf is a directory; then one whose make.conf is a link out of the root
    other = tmp_path / "other"
    (other / "etc/portage/make.conf").mkdir(parents=True)
    (other / "etc/portage/make.conf/00-stage3").write_text("X=1\n")
    write_portage_defaults(str(other), makeconf.portage_spec(1), owner)
    assert (other / "etc/portage/make.conf/zz-autotua.conf").read_text() == makeconf.make_conf(1)
    assert not (other / "etc/portage/binrepos.conf").exists()  # no binhost, no entry
    linked = tmp_path / "linked"
    (linked / "etc/portage").mkdir(parents=True)
    outside = tmp_path / "outside.conf"
    outside.write_text("SECRET=1\n")
    (linked / "etc/portage/make.conf").symlink_to(outside)
    write_portage_defaults(str(linked), makeconf.portage_spec(1), owner)
    assert outside.read_text() == "SECRET=1\n"
    assert (linked / "etc/portage/make.conf").read_text() == makeconf.make_conf(1)
    assert not (linked / "etc/portage/make.conf").is_symlink()
