#!/usr/bin/env python3
"""Benchmarks of the Gentoo repository and real portage (run as root; they print figures, assert nothing).

1. a repository snapshot fetched over HTTP, checked (MD5, the signature by the snapshot key, every
   tarball entry) and unpacked into the cache: the tiny test repository, and a Gentoo-sized one
   (``--files`` ebuild-like files; Gentoo's has about 170,000 entries, 45 MiB as .tar.xz).
2. ``emerge --oneshot app-misc/hello`` in a plain chroot of the test stage3 that carries portage
   (dev-libs/slowlib, whose compile takes SLOWLIB_SECONDS, then hello: fetch, build, src_test, install,
   binary package each), then slowlib again in a fresh root from that binary package (``--usepkg``),
   and the ratio (the binary package cache's point: the later job's target is 5x).
3. two jobs in the job container as the slave builds it (its make.conf, the snapshot read-only, the
   verified distfiles below the job's DISTDIR layer, the binary package cache of the jobs' signers as
   PKGDIR), each emerging dev-libs/slowlib then app-misc/hello from source as gentoo/arch-test does
   (``--usepkg-exclude`` the package under test): the first builds slowlib, the second installs it
   from the binary package the first left; both times and their ratio, for slowlib and for the job.
   ``--job-slowlib-seconds`` (default 20) is the compile that dominates.

Usage: bench/repository.py [--only N ...] [--files 40000] [--slowlib-seconds 3] [--job-slowlib-seconds 20]
                           [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "slave"))

from autotua.demo.httpserver import MirrorServer  # noqa: E402
from autotua.demo.portage import build_portage_rootfs, portage_wheel, run_in_chroot  # noqa: E402
from autotua.demo.repository import (  # noqa: E402
    PROFILE,
    build_repository,
    make_snapshot_key,
    publish_snapshot,
    sign_snapshot,
    write_snapshot_tarball,
)
from autotua.demo.sampletree import stop_agent  # noqa: E402
from autotua.slave.fsutil import remove_tree  # noqa: E402
from autotua.slave.snapshot import SnapshotStore  # noqa: E402

DATE = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))


def say(msg: str) -> None:
    print(msg, flush=True)


def timed_get(mirror_url: str, cache: Path, key, date: str) -> float:
    remove_tree(cache)
    store = SnapshotStore([mirror_url], cache, key.key_file, fingerprint=key.fingerprint)
    t = time.perf_counter()
    repo = store.get(date)
    elapsed = time.perf_counter() - t
    assert (repo.path / "profiles/repo_name").exists()
    return elapsed


def bench_snapshot(tmp: Path, key, files: int, rounds: int) -> None:
    say("1. a repository snapshot: fetch over HTTP, MD5, signature, entry checks, unpack")
    mirror = tmp / "mirror"
    release = publish_snapshot(mirror, key, DATE)
    size = release.tarball.stat().st_size
    with MirrorServer(mirror) as m:
        times = [timed_get(m.url, tmp / "cache", key, DATE) for _ in range(rounds)]
        say(f"   the tiny test repository ({size / 1024:.1f} KiB .tar.xz): median "
            f"{statistics.median(times) * 1000:.0f} ms of {rounds} (min {min(times) * 1000:.0f} ms)")
        if files:
            big = build_repository(tmp / "big", DATE, tmp / "distfiles")
            for i in range(files):
                d = big / f"cat-{i % 160:03d}" / f"pkg-{i // 4:05d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"pkg-{i // 4:05d}-{i % 4}.ebuild").write_text(
                    f'EAPI=8\nDESCRIPTION="synthetic {i}"\nSLOT="0"\nKEYWORDS="amd64"\n' + "# padding\n" * 20)
            other = time.strftime("%Y%m%d", time.gmtime(time.time() - 2 * 86400))
            tarball = mirror / "snapshots" / f"gentoo-{other}.tar.xz"
            write_snapshot_tarball(tarball, big, f"gentoo-{other}")
            sign_snapshot(tarball, key, other)
            times = [timed_get(m.url, tmp / "cache", key, other) for _ in range(rounds)]
            say(f"   a Gentoo-sized one ({files:,} files, {tarball.stat().st_size / 2**20:.1f} MiB .tar.xz): median "
                f"{statistics.median(times):.2f} s of {rounds} (min {min(times):.2f} s)")
    remove_tree(tmp / "cache")


def bench_emerge(tmp: Path, key, seconds: int) -> None:
    say(f"2. emerge in a chroot of the portage stage3 (SLOWLIB_SECONDS={seconds})")
    mirror = tmp / "mirror2"
    publish_snapshot(mirror, key, DATE)
    t = time.perf_counter()
    base = build_portage_rootfs(tmp / "stage3", portage_wheel(), PROFILE)
    say(f"   building the portage stage3 root: {time.perf_counter() - t:.1f} s")
    with MirrorServer(mirror) as m:
        repo = SnapshotStore([m.url], tmp / "cache2", key.key_file, fingerprint=key.fingerprint).get(DATE)

        def fresh(name: str) -> Path:
            root = tmp / name
            subprocess.run(["cp", "-a", str(base), str(root)], check=True)
            conf = root / "etc/portage/make.conf"
            conf.write_text(conf.read_text() + f'GENTOO_MIRRORS="{m.url}"\nSLOWLIB_SECONDS={seconds}\n')
            return root

        def emerge(root: Path, *args: str) -> float:
            t = time.perf_counter()
            done = run_in_chroot(root, repo.path, "emerge", "--oneshot", "--quiet-build", *args)
            if done.returncode != 0:
                raise RuntimeError((done.stdout + done.stderr)[-3000:])
            return time.perf_counter() - t

        first = fresh("root-a")
        whole = emerge(first, "app-misc/hello")
        say(f"   emerge --oneshot app-misc/hello (slowlib, then hello; fetch, build, test, install, binpkg): "
            f"{whole:.1f} s")
        source = emerge(fresh("root-b"), "dev-libs/slowlib")
        reuse = fresh("root-c")
        shutil.copytree(first / "var/cache/binpkgs", reuse / "var/cache/binpkgs", dirs_exist_ok=True)
        binary = emerge(reuse, "--usepkg", "dev-libs/slowlib")
        say(f"   dev-libs/slowlib from source: {source:.1f} s; from its binary package: {binary:.1f} s; "
            f"{source / binary:.1f}x")
        say("   => the later job's target for a second job of the same package set: >= 5x")
        for name in ("root-a", "root-b", "root-c"):
            shutil.rmtree(tmp / name)


def bench_jobs(tmp: Path, key, seconds: int) -> None:
    from autotua.slave import binpkgs
    from autotua.slave.config import from_dict
    from autotua.slave.container import Container
    from autotua.slave.inputs import run_in_job
    from autotua.slave.job import Workspace
    from autotua.slave.makeconf import portage_spec
    from autotua.slave.preflight import Host

    say(f"3. two jobs in the job container, the second with the first's binary packages (SLOWLIB_SECONDS={seconds})")
    mirror = tmp / "mirror3"
    publish_snapshot(mirror, key, DATE)
    base = build_portage_rootfs(tmp / "stage3-jobs", portage_wheel(), PROFILE)
    conf = base / "etc/portage/make.conf"
    conf.write_text(conf.read_text() + f"SLOWLIB_SECONDS={seconds}\n")
    cfg = from_dict({"master": "http://127.0.0.1:9/", "work_dir": str(tmp / "work"), "cache_dir": str(tmp / "cache3"),
                     "network": "none", "disk_limit": "2G", "memory_limit": "2G", "cpus": 2}, "<bench>")
    host = Host.of(cfg)
    with MirrorServer(mirror) as m:
        repo = SnapshotStore([m.url], cfg.cache_dir, key.key_file, fingerprint=key.fingerprint).get(DATE)
    distdir = cfg.distdir
    shutil.copytree(mirror / "distfiles", distdir)  # verified earlier: the first job's harvest
    pkgdir = binpkgs.BinpkgCache(cfg.cache_dir).get(binpkgs.key(
        arch="amd64", flavour="openrc", stage3="bench", profile=PROFILE, repository=DATE, signers=["A" * 40]))
    figures = []
    for n in (1, 2):
        ws = Workspace(cfg.jobs_dir, f"bench-job-{n}")
        ws.create()
        c = Container(ws.dir, ws.spec(base, [], distdir, host, repository=str(repo.path),
                                      portage=portage_spec(cfg.cpus), pkgdir=str(pkgdir)))
        try:
            c.start()
            times = []
            for script in ("emerge --oneshot --quiet-build=y dev-libs/slowlib",
                           "emerge --oneshot --quiet-build=y --usepkg-exclude=app-misc/hello app-misc/hello"):
                t = time.perf_counter()
                code, out = run_in_job(c, script, timeout=1800)
                times.append(time.perf_counter() - t)
                if code != 0:
                    raise RuntimeError(out[-3000:])
                how = "binary" if "Emerging binary (1 of 1) dev-libs/slowlib" in out else "source"
                if "slowlib" in script.split()[-1]:
                    slowlib_how = how
            figures.append((times, slowlib_how))
        finally:
            c.teardown()
            remove_tree(ws.dir)
    (s1, h1), (s2, h2) = figures[0][0], figures[1][0]
    say(f"   first job:  slowlib {s1:.1f} s ({figures[0][1]}), then hello {h1:.1f} s; {s1 + h1:.1f} s")
    say(f"   second job: slowlib {s2:.1f} s ({figures[1][1]}), then hello {h2:.1f} s; {s2 + h2:.1f} s")
    say(f"   slowlib: {s1 / s2:.1f}x faster from the binary package cache; the job: {(s1 + h1) / (s2 + h2):.1f}x "
        "(target: >= 5x where the dependency's compile dominates)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", type=int, action="append", help="run only benchmark N (1-3)")
    ap.add_argument("--files", type=int, default=40000, help="files of the Gentoo-sized snapshot (0: none)")
    ap.add_argument("--slowlib-seconds", type=int, default=3)
    ap.add_argument("--job-slowlib-seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/repository.py: run as root (unpacking as root, a chroot)", file=sys.stderr)
        return 1
    only = set(args.only or (1, 2, 3))
    tmp = Path(tempfile.mkdtemp(prefix="autotua-bench-repo-", dir="/var/tmp"))
    key = make_snapshot_key(tmp / "gpg")
    try:
        if 1 in only:
            bench_snapshot(tmp, key, args.files, args.rounds)
        if 2 in only:
            bench_emerge(tmp, key, args.slowlib_seconds)
        if 3 in only:
            bench_jobs(tmp, key, args.job_slowlib_seconds)
    finally:
        stop_agent(key.gnupghome)
        remove_tree(tmp)  # refuses if anything is still mounted below it
    return 0


if __name__ == "__main__":
    sys.exit(main())
