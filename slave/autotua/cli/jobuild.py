"""``autotua-jobuild``: the maintainer's tool. Exit status 0 valid, 1 invalid, 2 usage or environment.

    autotua-jobuild new USER/NAME-VER [--tree DIR] [--inherit USER/TEMPLATE]
    autotua-jobuild manifest DIR [--distdir DIR] [--mirrors FILE]
    autotua-jobuild sign [--local-user KEY] [--export-key USER] PATH...
    autotua-jobuild check [--tree DIR] [--revision REV] [--trust ...]
    autotua-jobuild metadata FILE [--json]
    autotua-jobuild graph --tree PATH [--revision REV] [--arch A] [--param NAME=VALUE...] ATOM [--json]
    autotua-jobuild archtest --master URL [--token T] [--bug N] [--arch A...] [--flavour F...] FILE|-
    autotua-jobuild report --master URL GROUP [--json]
    autotua-jobuild run ATOM [--tree DIR] [--stage3 F] [--out DIR] [--config slave.toml]   (root; no master:
                                     the job container on this machine, see autotua/cli/run.py)

and, on the master (its REST API, with your API token: autotua/cli/master.py says where it is read):

    autotua-jobuild submit ATOM [--revision R] [--arch A] [--stage3 F] [--notify] [--watch]
    autotua-jobuild watch JOB        (exit status: the job's outcome, see autotua/cli/jobs.py)
    autotua-jobuild results JOB [--json] [--download DIR]
    autotua-jobuild rerun JOB [--notify] [--watch]

See docs/maintainer.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from autotua import AutotuaError, __version__
from autotua.atom import JobuildId
from autotua.cache import DigestCache
from autotua.depgraph import Problem, Resolution, Resolver
from autotua.metadata import MetadataError, MetadataReader
from autotua.signature import Signer, Verifier
from autotua.srcuri import Mirrors
from autotua.tree import DirTree, open_tree

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _cache(args) -> DigestCache:
    if args.no_cache:
        return DigestCache()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return DigestCache(os.path.join(base, "autotua", "cache.sqlite"))


def _trust(args, tree) -> dict[str, str]:
    from autotua.maintainer import load_trust, tree_fingerprints

    if args.trust:
        return load_trust(args.trust)
    print("!!! no --trust given: trusting the keys the tree itself holds (fine for your own checkout; "
          "a master trusts only recorded fingerprints)", file=sys.stderr)
    return tree_fingerprints(tree)


def _mirrors(args) -> Mirrors:
    path = args.mirrors or os.environ.get("AUTOTUA_MIRRORS")
    if not path and os.path.exists("/etc/autotua/mirrors"):
        path = "/etc/autotua/mirrors"
    return Mirrors.load(path)


def _print_problems(errors: list[Problem], warnings: list[Problem]) -> None:
    from autotua.maintainer import problem_lines

    for line in problem_lines(errors, warnings):
        print(line)


def _relative(path) -> str:
    """``path`` as the maintainer typed it: relative to where they are, when it is below it."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else str(path)


def cmd_new(args) -> int:
    from autotua.maintainer import new_jobuild

    path = new_jobuild(args.tree, args.cpv, args.inherit)
    print(f">>> wrote {path}; fill in DESCRIPTION, then `autotua-jobuild manifest` and `sign`")
    return EXIT_OK


def cmd_manifest(args) -> int:
    from autotua.maintainer import write_manifest

    distdir = args.distdir or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                           "autotua", "distfiles")
    os.makedirs(distdir, exist_ok=True)
    with MetadataReader(_cache(args)) as reader:
        path = write_manifest(args.dir, distdir=distdir, mirrors=_mirrors(args), reader=reader)
    path = _relative(path)
    print(f">>> wrote {path} (unsigned: run `autotua-jobuild sign {path}`)")
    return EXIT_OK


def cmd_sign(args) -> int:
    from autotua.maintainer import export_key, sign_paths

    signer = Signer(args.local_user)
    if args.export_key:
        tree_dir, user = args.export_key
        fpr = args.local_user
        if not fpr:
            raise AutotuaError("--export-key needs --local-user (the key's fingerprint)")
        print(f">>> wrote {export_key(tree_dir, user, signer, fpr)}")
    n = sign_paths(args.paths, signer)
    print(f">>> {n} file(s) signed")
    return EXIT_OK


def cmd_check(args) -> int:
    from autotua.maintainer import check_tree

    tree = open_tree(args.tree, args.revision)
    report = check_tree(tree, _trust(args, tree), cache=_cache(args))
    print("\n".join(report.lines(tree.describe())))
    return EXIT_OK if not report.errors else EXIT_INVALID


def cmd_metadata(args) -> int:
    path = Path(args.file).resolve()
    if path.suffix != ".jobuild":
        raise AutotuaError(f"{args.file}: not a .jobuild file")
    jid = JobuildId.parse(f"{path.parent.parent.name}/{path.stem}")
    tree = DirTree(path.parent.parent.parent)
    from autotua.maintainer import unsigned_templates

    with MetadataReader(_cache(args)) as reader:
        try:
            md = reader.get(jid, path.read_bytes(), unsigned_templates(tree))
        except MetadataError as e:
            if args.json:
                print(json.dumps({"jobuild": str(jid), "error": {"kind": e.kind, "message": str(e)}}, indent=2))
            else:
                print(f" * ERROR [{e.kind}] {e}")
            return EXIT_INVALID
    if args.json:
        print(json.dumps({"jobuild": str(jid), "metadata": md.to_json()}, indent=2))
    else:
        for key, value in md.to_json().items():
            value = " ".join(value) if isinstance(value, list | tuple) else value
            print(f"{key.upper()}={value}")
    return EXIT_OK


def print_resolution(res: Resolution) -> None:
    where = f"revision {res.revno}" if res.revno is not None else res.revision
    print(f">>> {res.root} at {where}" + (f" for {res.arch}" if res.arch else "") +
          (f", stage3 {res.stage3}" if res.stage3 else ""))
    if res.plan:
        print("Plan (DEPEND, run in order in one container):")
        for i, e in enumerate(res.plan, 1):
            print(f"  {i:2}. {e.jobuild:<36} {e.digest[:12]}  {e.description}")
            for name, value in e.parameters.items():
                print(f"        {name} = {value!r}")
    if res.sidepends:
        print("SIDEPEND (must have passed somewhere):")
        for s in res.sidepends:
            print(f"      {s.atom:<24} -> {s.jobuild} {s.identity[:12]}  (for {s.required_by})")
    _print_problems(res.errors, res.warnings)
    print(">>> valid" if res.valid else f">>> INVALID: {len(res.errors)} error(s)")


def cmd_graph(args) -> int:
    tree = open_tree(args.tree, args.revision)
    trusted = _trust(args, tree)
    with MetadataReader(_cache(args)) as reader, Verifier(trusted, reader.cache) as verifier:
        res = Resolver(tree, verifier, reader).resolve(args.atom, args.arch, parameters=_params(args.param) or None)
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
    else:
        print_resolution(res)
    return EXIT_OK if res.valid else EXIT_INVALID


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq:
            raise AutotuaError(f"--param {pair!r}: write NAME=VALUE")
        out[name] = value
    return out


# -- the master: arch testing ---------------------------------------------------------------------
def _master(args):
    """A requests session for the master's API with the maintainer's token (--token or AUTOTUA_TOKEN)."""
    import requests

    token = args.token or os.environ.get("AUTOTUA_TOKEN", "")
    if not token:
        raise AutotuaError("no API token: --token, or AUTOTUA_TOKEN (your token is on the master's admin page, or "
                           "`autotua-master createmaintainer --token`)")
    s = requests.Session()
    s.headers["Authorization"] = f"Token {token}"
    return s, args.master.rstrip("/") + "/api/v1/"


def _answer(r) -> dict:
    try:
        body = r.json()
    except ValueError:
        raise AutotuaError(f"the master answered {r.status_code}: {r.text[:300]}") from None
    if r.status_code >= 400:
        for e in body.get("errors") or []:
            where = " ".join(x for x in (e.get("row", ""), e.get("arch", "")) if x)
            print(f" * ERROR {where + ': ' if where else ''}{e.get('message')}", file=sys.stderr)
        raise AutotuaError(body.get("detail") or f"the master answered {r.status_code}")
    return body


def cmd_archtest(args) -> int:
    import time

    session, api = _master(args)
    text = sys.stdin.read() if args.packages == "-" else Path(args.packages).read_text()
    body = {"packages": text, "bug": args.bug, "stable": not args.keyword, "arches": args.arch,
            "flavours": args.flavour or ["openrc"], "combinations": args.combinations, "rdeps": args.rdeps,
            "seed": args.seed, "filter": args.filter or "", "second_opinion": not args.no_second_opinion,
            "snapshot": args.snapshot or ""}
    try:
        group = _answer(session.post(api + "groups/archtest", json=body, timeout=300))
    except AutotuaError as e:
        print(f" * {e}", file=sys.stderr)
        return EXIT_INVALID
    jobs = sum(len(c["jobs"]) for c in group["cells"])
    print(f">>> group #{group['id']}: {group['title']}: {len(group['rows'])} configurations, {jobs} jobs, "
          f"seed {group['seed']}, snapshot {group['snapshot']}")
    print(f"    {args.master.rstrip('/')}/groups/{group['id']}/")
    if not args.wait:
        return EXIT_OK
    while group["state"] in ("queued", "running"):
        time.sleep(args.poll)
        group = _answer(session.get(api + f"groups/{group['id']}/", timeout=60))
    print(session.get(api + f"groups/{group['id']}/report.txt", timeout=60).text, end="")
    return EXIT_OK if group["state"] == "passed" else EXIT_INVALID


def cmd_report(args) -> int:
    import requests

    session, api = requests.Session(), args.master.rstrip("/") + "/api/v1/"  # reports are public
    path = f"groups/{args.group}/report" + ("" if args.json else ".txt")
    r = session.get(api + path, timeout=60)
    if r.status_code != 200:
        raise AutotuaError(f"group {args.group}: the master answered {r.status_code}: {r.text[:200]}")
    print(json.dumps(r.json(), indent=2) if args.json else r.text.rstrip("\n"))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autotua-jobuild", description="Write, sign and check jobuilds.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--no-cache", action="store_true", help="do not use ~/.cache/autotua")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("new", help="write a skeleton jobuild")
    s.add_argument("cpv", metavar="USER/NAME-VER")
    s.add_argument("--tree", default=".", help="the jobtage checkout (default: .)")
    s.add_argument("--inherit", metavar="USER/TEMPLATE")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser("manifest", help="fetch SRC_URI/PORTCONF_URI files and write DIR/Manifest")
    s.add_argument("dir", help="a jobuild directory, <tree>/<user>/<name>")
    s.add_argument("--distdir", help="where fetched files go (default: ~/.cache/autotua/distfiles)")
    s.add_argument("--mirrors", help="mirror:// list, lines '<name> <url>...' (default: $AUTOTUA_MIRRORS)")
    s.set_defaults(func=cmd_manifest)

    s = sub.add_parser("sign", help="sign jobuilds and templates, clearsign Manifests")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--local-user", "-u", help="the key to sign with (default: gpg's default key)")
    s.add_argument("--export-key", nargs=2, metavar=("TREE", "USER"),
                   help="also write TREE/USER/USER.asc with the --local-user public key")
    s.set_defaults(func=cmd_sign)

    trust_help = "trusted keys: USER=FPR, or a file of 'USER FPR' lines (repeatable; default: the tree's keys)"
    s = sub.add_parser("check", help="check every signature, Manifest and metadata of a tree")
    s.add_argument("--tree", default=".", help="a checkout or a bzr branch (default: .)")
    s.add_argument("--revision", "-r", help="with a bzr branch: revno or revision id (default: tip)")
    s.add_argument("--trust", action="append", default=[], help=trust_help)
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("metadata", help="print a jobuild's metadata, read in the sandbox")
    s.add_argument("file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_metadata)

    s = sub.add_parser("graph", help="resolve an atom: the plan, SIDEPENDs, warnings and errors")
    s.add_argument("atom")
    s.add_argument("--tree", required=True, help="a checkout or a bzr branch")
    s.add_argument("--revision", "-r", help="with a bzr branch: revno or revision id (default: tip)")
    s.add_argument("--arch", help="the machine's arch, checked against ARCH")
    s.add_argument("--trust", action="append", default=[], help=trust_help)
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a value for the root jobuild's PARAMETERS (repeatable)")
    s.add_argument("--json", action="store_true", help="machine-readable output (docs/maintainer.md)")
    s.set_defaults(func=cmd_graph)

    master = argparse.ArgumentParser(add_help=False)
    master.add_argument("--master", required=True, help="the master's URL (https://autotua.example.org)")
    master.add_argument("--token", help="your API token (default: $AUTOTUA_TOKEN)")

    s = sub.add_parser("archtest", parents=[master],
                       help="arch-test a bug's package list on the master (docs/arch-testing.md)")
    s.add_argument("packages", metavar="FILE", help="the package list, as in the bug (NATTkA's format); - for stdin")
    s.add_argument("--bug", type=int, help="the Gentoo bug number")
    s.add_argument("--keyword", action="store_true", help="a keywording request (default: a stabilisation)")
    s.add_argument("--arch", action="append", default=[], help="an arch you test (repeatable; NATTkA's CC)")
    s.add_argument("--flavour", action="append", default=[], help="a stage3 flavour (repeatable; default openrc)")
    s.add_argument("--combinations", type=int, default=12, help="USE combinations per package (default 12)")
    s.add_argument("--rdeps", type=int, default=10, help="reverse dependencies per package and arch (default 10)")
    s.add_argument("--seed", type=int, help="what draws them (default: a new one, recorded on the group)")
    s.add_argument("--filter", help='drop combinations: !(arch == "x86" && kind == "rdep")')
    s.add_argument("--snapshot", help="the Gentoo snapshot (YYYYMMDD; default: the newest)")
    s.add_argument("--no-second-opinion", action="store_true", help="do not run a failure again on another slave")
    s.add_argument("--wait", action="store_true", help="wait until the group ends and print its report")
    s.add_argument("--poll", type=float, default=10, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_archtest)

    s = sub.add_parser("report", parents=[master], help="print a group's report (to paste into the bug)")
    s.add_argument("group", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_report)

    from autotua.cli import jobs, run

    run.add_parser(sub, trust_help)
    jobs.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AutotuaError, OSError, ValueError) as e:
        print(f"autotua-jobuild {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
