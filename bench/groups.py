"""Groups: making an arch-testing group of ~500 jobs (the package list read, tatt's sampling, every cell
validated, the jobs stored) and rendering its page, its API resource and its report; and the reverse
dependency index of a Gentoo-sized repository.

A master under gunicorn (SQLite, or PostgreSQL with --postgres) with the signed sample tree, reading
a snapshot of the test repository plus ``dev-libs/wide-1.0`` (20 USE flags under REQUIRED_USE) and
its reverse dependencies, published, verified and unpacked as on a real site. The package list
names wide-1.0 on two arches; two flavours; 64 USE combinations and 64 reverse dependencies per
package and arch: 129 configurations x 4 columns = 516 jobs.

    .venv/bin/python bench/groups.py [--rounds 3] [--postgres] [--entries 30000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from autotua.archtest import reverse_dependencies, use_combinations  # noqa: E402
from autotua.demo.httpserver import MirrorServer  # noqa: E402
from autotua.demo.repository import build_repository, make_snapshot_key, publish_snapshot  # noqa: E402
from autotua.demo.sampletree import build_sample_tree, stop_agent  # noqa: E402
from autotua.ebuildrepo import EbuildRepository  # noqa: E402
from autotua_master.live import LiveMaster  # noqa: E402

FLAGS = [f"f{i:02d}" for i in range(20)]
RDEPS = 100
EBUILD = 'EAPI=8\nDESCRIPTION="{d}"\nHOMEPAGE="https://autotua.example.org/"\nLICENSE="GPL-2"\nSLOT="0"\n' \
         'KEYWORDS="{k}"\nIUSE="{i}"\n{extra}'


def wide_packages() -> dict[str, str]:
    out = {"dev-libs/wide/wide-1.0.ebuild": EBUILD.format(
        d="A package with many USE flags", k="~amd64 ~x86", i=" ".join(FLAGS),
        extra='REQUIRED_USE="^^ ( f00 f01 f02 ) ?? ( f03 f04 f05 ) || ( f06 f07 ) f08? ( f09 )"\n')}
    for n in range(RDEPS):
        dep = ">=dev-libs/wide-1.0" if n % 3 else "opt? ( dev-libs/wide )"
        out[f"app-misc/user{n}/user{n}-1.0.ebuild"] = EBUILD.format(
            d=f"A reverse dependency, number {n}", k="amd64 x86", i="opt nls", extra=f'RDEPEND="{dep}"\n')
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_master(tmp: Path, rounds: int, postgres: bool) -> None:
    key = make_snapshot_key(tmp / "snapshot-gpg")
    date = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    tree = build_repository(tmp / "repo", date, tmp / "mirror" / "distfiles", extra=wide_packages())
    publish_snapshot(tmp / "mirror", key, date, repository=tree)
    sample = build_sample_tree(tmp / "sample")
    cluster = None
    db = None
    if postgres:
        from tests.support.postgres import PostgresCluster

        cluster = PostgresCluster().start()
        db = cluster.createdb("groupbench")
    try:
        with MirrorServer(tmp / "mirror") as mirror:
            master = LiveMaster(tmp / "master", sample.branch, database_url=db, workers=2, threads=4,
                                SNAPSHOT_MIRROR=mirror.url, SNAPSHOT_KEY=key.key_file,
                                SNAPSHOT_KEY_FINGERPRINT=key.fingerprint, MAX_GROUP_JOBS=5000)
            master.migrate()
            tokens = {u: master.add_maintainer(u, f) for u, f in sample.fingerprints.items()}
            t_refresh, _ = timed(lambda: master.manage("refreshsnapshots"))
            master.start(timeout=120)
            try:
                s = master.person_session(tokens["alice"])
                body = {"packages": "=dev-libs/wide-1.0 amd64 x86\n", "flavours": ["openrc", "systemd"],
                        "combinations": 64, "rdeps": 64}
                made, gid, jobs = [], None, 0
                for i in range(rounds):
                    dt, r = timed(lambda i=i: s.post(master.url + "/api/v1/groups/archtest",
                                                     json={**body, "seed": i}, timeout=600))
                    if r.status_code != 201:
                        raise SystemExit(f"group: {r.status_code} {r.text[:2000]}")
                    g = r.json()
                    gid, jobs = g["id"], sum(len(c["jobs"]) for c in g["cells"])
                    made.append(dt)
                views = {}
                for name, url in (("web page", f"/groups/{gid}/"), ("API resource", f"/api/v1/groups/{gid}/"),
                                  ("report (text)", f"/api/v1/groups/{gid}/report.txt"),
                                  ("group list", "/api/v1/groups/")):
                    times = []
                    for _ in range(5):
                        dt, r = timed(lambda url=url: requests.get(master.url + url, timeout=120))
                        assert r.status_code == 200, (url, r.status_code)
                        times.append(dt)
                    views[name] = (statistics.median(times), len(r.content))
            finally:
                master.stop()
    finally:
        if cluster:
            cluster.stop()
        sample.close()
        stop_agent(key.gnupghome)
    db_name = "PostgreSQL" if postgres else "SQLite"
    print(f"== an arch-testing group of {jobs} jobs (gunicorn 2x4, {db_name})")
    print(f"   refreshsnapshots (dates, fetch, verify, unpack, index): {ms(t_refresh)}")
    print(f"   made (list read, sampled, validated, stored): first {ms(made[0])}, then median "
          f"{ms(statistics.median(made[1:] or made))} ({ms(statistics.median(made) / jobs)} a job)")
    for name, (dt, size) in views.items():
        print(f"   {name}: median {ms(dt)} ({size / 1024:,.0f} KiB)")


def write_md5_cache(root: Path, entries: int, rng: random.Random) -> str:
    """A Gentoo-sized md5-cache (entries across 170 categories), dependencies as dense as Gentoo's."""
    cache = root / "metadata" / "md5-cache"
    cats = [f"cat-{i}" for i in range(170)]
    pkgs = [f"{rng.choice(cats)}/pkg{i}" for i in range(entries // 2)]
    for n in range(entries):
        cp = pkgs[n % len(pkgs)]
        ver = f"{1 + n // len(pkgs)}.{n % 7}"
        deps = " ".join(
            (f">={rng.choice(pkgs)}-1.0" if rng.random() < 0.4 else rng.choice(pkgs))
            + (":=" if rng.random() < 0.2 else "") for _ in range(rng.randint(2, 12)))
        cond = f"ssl? ( {rng.choice(pkgs)}[abi_x86_32(-)?] ) || ( {rng.choice(pkgs)} {rng.choice(pkgs)} )"
        d = cache / cp.split("/")[0]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{cp.split('/')[1]}-{ver}").write_text(
            f"DEPEND={deps} {cond}\nRDEPEND={deps}\nBDEPEND=virtual/pkgconfig\nEAPI=8\nIUSE=ssl +nls doc test\n"
            f"KEYWORDS=amd64 ~x86\nSLOT=0\n_md5_=0\n")
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    (root / "profiles/arch.list").write_text("amd64\nx86\n")
    return pkgs[0]


def bench_index(tmp: Path, entries: int) -> None:
    rng = random.Random(13)
    t_write, target = timed(lambda: write_md5_cache(tmp / "gentoo", entries, rng))
    repo = EbuildRepository(tmp / "gentoo", index_dir=tmp / "index")
    t_build, index = timed(repo.dependency_texts)
    size = (tmp / "index" / "gentoo.deps.json").stat().st_size
    again = EbuildRepository(tmp / "gentoo", index_dir=tmp / "index")
    t_load, _ = timed(again.dependency_texts)
    cpv = again.cpvs(target)[0]
    t_rdeps, drawn = timed(lambda: reverse_dependencies(again, cpv, "amd64", 10, seed=1))
    t_use, combos = timed(lambda: use_combinations(again, cpv, 12, seed=1))
    print(f"== reverse dependencies in a Gentoo-sized md5-cache ({entries:,} entries, written in "
          f"{ms(t_write)})")
    print(f"   read once per snapshot date: {ms(t_build)} ({len(index):,} entries with dependencies, "
          f"{size / 2**20:.1f} MiB on disk)")
    print(f"   read back by another process: {ms(t_load)}")
    print(f"   {len(drawn)} reverse dependencies of {cpv} drawn (of {len(again.reverse_dependencies(cpv))}): "
          f"{ms(t_rdeps)}; "
          f"its {len(combos)} USE combinations: {ms(t_use)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="the master on PostgreSQL (default: SQLite)")
    ap.add_argument("--entries", type=int, default=30000, help="md5-cache entries of the index bench (0: none)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="autotua-groupbench-") as tmp:
        bench_master(Path(tmp), args.rounds, args.postgres)
        if args.entries:
            bench_index(Path(tmp) / "index-bench", args.entries)
    print("(figures from this machine; see docs/arch-testing.md for the ones recorded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
