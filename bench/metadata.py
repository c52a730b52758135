#!/usr/bin/env python3
"""Benchmark: metadata extraction and depgraph validation on a generated tree.

* a generated bzr tree of 2,000 jobuilds (10 maintainers, templates, DEPEND links);
* cold metadata extraction (empty cache, the sandboxed depend daemon) — target >= 500 jobuilds/s;
* validating a 200-node DEPEND graph (signed, with templates and SIDEPENDs) with a warm cache
  — target < 50 ms.

Run: .venv/bin/python bench/metadata.py [--jobuilds 2000] [--graph 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autotua.cache import DigestCache
from autotua.demo.sampletree import make_key, stop_agent
from autotua.depgraph import Resolver
from autotua.maintainer import export_key, sign_paths
from autotua.metadata import MetadataReader, Templates
from autotua.signature import Signer, Verifier
from autotua.tree import BzrTree

USERS = [f"dev{i}" for i in range(10)]
TEMPLATES = ("suite", "build", "report")


def jobuild_text(i: int, user: str, deps: list[str]) -> str:
    tmpl = TEMPLATES[i % len(TEMPLATES)]
    return (
        f"# generated jobuild {i}\n"
        f"inherit {user}/{tmpl}\n"
        f'DESCRIPTION="Generated jobuild number {i} (${{P}})"\n'
        f'DEPEND="{" ".join(deps)}"\n'
        f'SIDEPEND="{"" if i % 7 else f"{user}/g{i}x"}"\n'
        'ARCH="amd64 x86"\n'
        "src_test() {\n\teinfo \"testing ${P}\"\n\t" + f"{tmpl}_src_test\n" + "}\n"
    )


def generate(root: Path, n: int, graph: int, gnupghome: Path) -> tuple[dict[str, str], str]:
    """Write the tree; the first ``graph`` jobuilds (all by dev0) form one connected signed graph."""
    import breezy.bzr  # noqa: F401
    from breezy import controldir

    wt = controldir.ControlDir.create_standalone_workingtree(
        str(root), format=controldir.format_registry.make_controldir("2a"))
    fprs = {u: make_key(gnupghome, u) for u in USERS[:1]}
    for u in USERS:
        for t in TEMPLATES:
            p = root / u / "templates" / f"{t}.jtemplate"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{t.upper()}_VAR=1\nsrc_test() {{ einfo '{t}'; }}\nsrc_compile() {{ :; }}\n")
    for i in range(n):
        if i < graph:
            user = USERS[0]
            # each node depends on up to 3 earlier nodes: a DAG of `graph` nodes, root = the last one
            deps = [f">={user}/g{j}-1" for j in (i - 1, i // 2, i // 3) if 0 <= j < i]
            deps = sorted(set(deps))
        else:
            user = USERS[i % len(USERS)]
            deps = [f"{user}/g{i - len(USERS)}"] if i - len(USERS) >= graph else []
        p = root / user / f"g{i}" / f"g{i}-1.jobuild"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(jobuild_text(i, user, deps))
    # SIDEPEND targets for the graph part
    for i in range(0, graph, 7):
        p = root / USERS[0] / f"g{i}x" / f"g{i}x-1.jobuild"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f'DESCRIPTION="side {i}"\n')
    signer = Signer(fprs[USERS[0]], str(gnupghome))
    export_key(root, USERS[0], signer, fprs[USERS[0]])
    sign_paths([root / USERS[0]], signer, log=lambda _m: None)
    wt.smart_add([str(root)])
    wt.commit("generated", committer="bench <bench@example.org>")
    return fprs, f"{USERS[0]}/g{graph - 1}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobuilds", type=int, default=2000)
    ap.add_argument("--graph", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="autotua-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fprs, root_atom = generate(tmp / "tree", args.jobuilds, args.graph, tmp / "gnupg")
        print(f"generated and committed a tree of {args.jobuilds} jobuilds in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        tree = BzrTree(tmp / "tree")
        ids = tree.all_jobuilds()
        sources = tree.read_many(j.path for j in ids)
        templates = Templates(sources={n: tree.read_bytes(p) for n, p in tree.templates().items()})
        t_read = time.perf_counter() - t0
        print(f"opened the bzr revision and read {len(ids)} jobuilds in {t_read * 1000:.0f} ms")

        for threads in (1, os.cpu_count() or 1):
            with MetadataReader(DigestCache()) as reader:
                # start the daemons outside the timing (once per process in real use)
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(lambda _i: reader._daemon().extract(ids[0], sources[ids[0].path], templates),
                                  range(threads)))
                t0 = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    mds = list(pool.map(lambda j: reader.get(j, sources[j.path], templates), ids))
                dt = time.perf_counter() - t0
            assert all(m.description for m in mds)
            print(f"cold metadata, {threads} daemon(s): {len(ids) / dt:,.0f} jobuilds/s "
                  f"({dt * 1000:.0f} ms for {len(ids)}; target >= 500/s)")

        cache = DigestCache()
        with MetadataReader(cache) as reader:
            t0 = time.perf_counter()
            with Verifier(fprs, cache) as v:
                res = Resolver(tree, v, reader).resolve(root_atom, "amd64")
            cold = time.perf_counter() - t0
            assert res.valid, res.errors[:3]
            print(f"validating {root_atom}: {len(res.plan)} plan nodes, {len(res.sidepends)} SIDEPENDs; "
                  f"cold (gpg + sandbox) {cold * 1000:.0f} ms")
            warm_same, warm_new = [], []
            for _ in range(10):
                t0 = time.perf_counter()
                with Verifier(fprs, cache) as v:
                    Resolver(tree, v, reader).resolve(root_atom, "amd64")
                warm_same.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fresh = BzrTree(tmp / "tree")
                with Verifier(fprs, cache) as v:
                    Resolver(fresh, v, reader).resolve(root_atom, "amd64")
                warm_new.append(time.perf_counter() - t0)
            print(f"warm validation, tree already open: median {statistics.median(warm_same) * 1000:.1f} ms "
                  f"(target < 50 ms)")
            print(f"warm validation, opening the revision too: median {statistics.median(warm_new) * 1000:.1f} ms")
        stop_agent(tmp / "gnupg")


if __name__ == "__main__":
    main()
