"""``make demo``: the sample jobtage tree, signed with fresh keys into a real bzr branch, and the
validated plans of a few jobs with their SIDEPENDs."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from autotua.cli.jobuild import print_resolution
from autotua.demo.sampletree import REPO_ROOT, build_sample_tree
from autotua.depgraph import Resolver
from autotua.maintainer import check_tree
from autotua.metadata import MetadataReader
from autotua.signature import Verifier
from autotua.tree import BzrTree

JOBS = ("bob/integration", "alice/hello-suite", "=alice/hello-suite-1.0", "bob/needs-failing")


def say(msg: str) -> None:
    print(f"\n\x1b[1;32m>>>\x1b[0m \x1b[1m{msg}\x1b[0m" if sys.stdout.isatty() else f"\n>>> {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="autotua-demo", description=__doc__)
    ap.add_argument("--workdir", default=str(REPO_ROOT / "var" / "demo"),
                    help="where the demo keeps its keys, branch and files (default: var/demo in the checkout)")
    ap.add_argument("--arch", default="amd64")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    say("Making fresh keys for the maintainers and signing the sample tree into a bzr branch")
    with MetadataReader() as reader:
        sample = build_sample_tree(work, reader=reader)
        try:
            for user, fpr in sample.fingerprints.items():
                print(f"    {user:<6} {fpr}")
            tree = BzrTree(sample.branch)
            print(f"    branch {sample.branch} at revision {tree.revno}")

            say("Checking every signature, Manifest and jobuild of the tree (autotua-jobuild check)")
            report = check_tree(tree, sample.fingerprints, reader=reader)
            print(f"    {report.jobuilds} jobuilds, {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
            for p in report.warnings:
                print(f"    * WARNING [{p.kind}] {p.message}")
            for p in report.errors:
                print(f"    * ERROR [{p.kind}] {p.message}")

            with Verifier(sample.fingerprints) as verifier:
                resolver = Resolver(tree, verifier, reader)
                for atom in JOBS:
                    say(f"Validating a job for {atom} on {args.arch}")
                    print_resolution(resolver.resolve(atom, args.arch))
        finally:
            sample.close()
    say("Done. Next: `make test`; the jobuild format is in docs/jobuild-format.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
