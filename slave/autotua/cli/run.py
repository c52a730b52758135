"""``autotua-jobuild run ATOM``: run a job on this machine, in the job container, with no master.

The plan is resolved from the working tree (``--tree``, default ``.``) as ``graph`` resolves it, and
run by the slave's own code (:mod:`autotua.slave.local`) on a cached stage3: the log streams to the
terminal, results and attachments land in ``--out`` (default ``./autotua-run-<atom>-<time>/``). It
needs root, as the slave does. The stage3, its release key, the caches and the container's limits
come from the slave's configuration (``--config /etc/autotua/slave.toml`` reuses a slave's, and its
caches), or from its defaults and the options here. Exit status as ``watch``'s: 0 passed, 1 failed
(or an invalid plan), 2 usage or environment, 3 error (a fetch, a stage3, the container), 130
interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from autotua.cli.jobs import EXIT

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def _config(args, flavour: str | None = None):
    """The slave's configuration for a local run: ``--config``'s (or the defaults), the options over it,
    and its own work directory, ``<work_dir>/local`` (a slave's daemon on this machine never cleans it)."""
    from autotua.slave.config import from_dict, load

    overrides: dict = {}
    for key, value in (("stage3_mirror", args.stage3_url), ("release_key", args.release_key),
                       ("network", args.network), ("cache_dir", args.cache_dir)):
        if value:
            overrides[key] = os.path.abspath(value) if key in ("release_key", "cache_dir") else value
    path = args.config or os.environ.get("AUTOTUA_SLAVE_CONFIG")
    mirrors = args.mirrors or os.environ.get("AUTOTUA_MIRRORS") or (
        "/etc/autotua/mirrors" if not path and os.path.exists("/etc/autotua/mirrors") else "")
    if mirrors:
        overrides["mirrors_file"] = os.path.abspath(mirrors)
    if flavour:
        overrides["flavours"] = [flavour]
    if args.keep:
        overrides["keep_failed_roots"] = True
    if path:
        cfg = load(path, need_master=False, **overrides)
    else:
        cfg = from_dict(overrides, "autotua-jobuild run", need_master=False)
    return dataclasses.replace(cfg, work_dir=os.path.join(cfg.work_dir, "local"))


def _out_dir(args, atom: str) -> Path:
    if args.out:
        return Path(args.out)
    from autotua.slave.job import attachment_name

    return Path(f"autotua-run-{attachment_name(atom.lstrip('=<>~'))}-{time.strftime('%Y%m%dT%H%M%S')}")


def _logging() -> None:
    """The slave's own messages (fetching a stage3, a distfile; warnings) on stderr, as ``>>>`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(">>> %(message)s"))
    root = logging.getLogger("autotua")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("autotua.slave.job").setLevel(logging.WARNING)  # the terminal has each jobuild already


def cmd_run(args) -> int:
    from autotua.cli.jobuild import _cache, _params, _trust, print_resolution
    from autotua.depgraph import Resolver
    from autotua.metadata import MetadataReader
    from autotua.slave.local import LocalVerifier, Reporter, local_job, run
    from autotua.tree import open_tree

    if os.geteuid() != 0:
        print("autotua-jobuild run: needs root, as the slave does: it builds the job container (mounts, "
              "namespaces, cgroups); run it with sudo", file=sys.stderr)
        return EXIT_USAGE
    cfg = _config(args)  # its arch and any mistake in it, before anything is read
    tree = open_tree(args.tree, args.revision)
    with MetadataReader(_cache(args)) as reader, LocalVerifier(_trust(args, tree), reader.cache) as verifier:
        res = Resolver(tree, verifier, reader).resolve(args.atom, cfg.arch, parameters=_params(args.param) or None)
    print_resolution(res)
    if not res.valid:
        return EXIT["invalid"]
    if verifier.unsigned:
        print(f"!!! running {len(verifier.unsigned)} file(s) whose signature does not verify, as they are (fine "
              f"locally; a master refuses them): {', '.join(sorted(verifier.unsigned))}", file=sys.stderr)
    if res.sidepends:
        print("!!! SIDEPEND not checked locally (nothing here knows what passed elsewhere): "
              + ", ".join(sorted({s.atom for s in res.sidepends})), file=sys.stderr)
    flavour = args.stage3 or res.stage3 or "openrc"
    cfg = _config(args, flavour)
    out = _out_dir(args, args.atom)
    out.mkdir(parents=True, exist_ok=True)
    job = local_job(res, tree, cfg.arch, flavour)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sys.stdout.flush()  # what print() holds goes first: the reporter writes the bytes below it
    reporter = Reporter(out, job["plan"], sys.stdout.buffer, colour)
    _logging()
    reporter.say(f"running {res.root} in a job container on the {cfg.arch} {flavour} stage3 of {cfg.stage3_mirror}")

    stopping, at_once = threading.Event(), threading.Event()
    state: dict = {}

    def on_signal(signum, _frame) -> None:
        state["signal"] = signal.Signals(signum).name
        runner = state.get("runner")
        if runner is None or not runner.building:
            raise KeyboardInterrupt  # nothing is mounted yet: stop where we are
        if stopping.is_set():
            at_once.set()
        stopping.set()  # the running phase is killed, the container torn down

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        report, runner = run(cfg, reporter, job, tree, res.plan, stopping=stopping, at_once=at_once,
                             on_runner=lambda r: state.__setitem__("runner", r))
    except KeyboardInterrupt:
        report = runner = None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    from autotua.slave.job import Report

    if report is None or "signal" in state:
        report = Report("error", f"interrupted ({state.get('signal', 'SIGINT')})",
                        teardown_failed=bool(report and report.teardown_failed))
    path = reporter.write(job, report, {"run": runner.run_id if runner else None,
                                        "unsigned": sorted(verifier.unsigned),
                                        "sidepends_not_checked": sorted({s.atom for s in res.sidepends})})
    reporter.say(f"{res.root} {report.status}" + (f": {report.reason}" if report.reason else "")
                 + f"; results in {path}")
    if report.teardown_failed:
        reporter.say(f"teardown failed: {runner.ws.dir} is left for the next local run to clean")
    elif runner is not None and runner.ws.dir.exists():
        reporter.say(f"kept {runner.ws.dir} (--keep); the next local run removes it")
    if "signal" in state:
        return EXIT_INTERRUPTED
    return EXIT.get(report.status, EXIT["error"])


def add_parser(sub, trust_help: str) -> None:
    s = sub.add_parser("run", help="run a job here, in the job container, with no master (as root)")
    s.add_argument("atom")
    s.add_argument("--tree", default=".", help="a checkout or a bzr branch (default: .)")
    s.add_argument("--revision", "-r", help="with a bzr branch: revno or revision id (default: the working files)")
    s.add_argument("--stage3", metavar="FLAVOUR", help="the stage3 flavour (default: the root jobuild's STAGE3)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a value for the root jobuild's PARAMETERS (repeatable)")
    s.add_argument("--out", metavar="DIR", help="where results, logs and attachments go "
                                                "(default: ./autotua-run-<atom>-<time>/)")
    s.add_argument("--config", metavar="FILE", help="a slave's configuration to take the stage3 mirror, release "
                                                    "key, caches and limits from (e.g. /etc/autotua/slave.toml; "
                                                    "default: $AUTOTUA_SLAVE_CONFIG, else the slave's defaults)")
    s.add_argument("--stage3-url", metavar="URL", help="the stage3 mirror (default: the config's stage3_mirror, "
                                                       "https://distfiles.gentoo.org)")
    s.add_argument("--release-key", metavar="FILE", help="the key file stage3s are signed with (default: the "
                                                         "config's release_key, Gentoo's)")
    s.add_argument("--mirrors", metavar="FILE", help="mirror:// list, as `manifest` takes it (default: "
                                                     "$AUTOTUA_MIRRORS, /etc/autotua/mirrors)")
    s.add_argument("--cache-dir", metavar="DIR", help="stage3s, roots and distfiles (default: the config's "
                                                      "cache_dir, /var/cache/autotua-slave)")
    s.add_argument("--network", choices=["outbound", "none", "host"], help="the job's network (default: the "
                                                                           "config's network, outbound)")
    s.add_argument("--keep", action="store_true", help="keep a failed job's directory (keep_failed_roots)")
    s.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="keep the log's colours (auto: on a terminal)")
    s.add_argument("--trust", action="append", default=[], help=trust_help)
    s.set_defaults(func=cmd_run)
