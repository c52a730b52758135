"""``autotua-slave``: run, register, status, clean, fetch-stage3, fetch-snapshot (docs/slave.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from autotua import AutotuaError, __version__
from autotua.slave.config import DEFAULT_PATH, load


def _cfg(args):
    return load(args.config)


def cmd_run(args) -> int:
    from autotua.slave.daemon import Daemon, setup_logging

    cfg = _cfg(args)
    setup_logging(cfg, args.verbose)
    daemon = Daemon(cfg)
    daemon.install_signals()
    return daemon.run(once=args.once)


def cmd_register(args) -> int:
    from autotua.slave.api import Api
    from autotua.slave.claim import free_disk, host_info

    cfg = _cfg(args)
    if os.path.exists(cfg.token_file) and not args.force:
        print(f"autotua-slave: {cfg.token_file} already holds a token (use --force to register again)",
              file=sys.stderr)
        return 1
    answer = Api(cfg.master, retry_for=cfg.retry_for).register({
        "name": args.name or cfg.name, "arch": cfg.arch, "flavours": list(cfg.flavours), "host": host_info(),
        "free_disk": free_disk(cfg), "version": __version__})
    token = answer.get("token")
    if not token:
        print(f"autotua-slave: the master did not send a token: {answer}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(cfg.token_file)), mode=0o700, exist_ok=True)
    fd = os.open(cfg.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    print(f"registered as {answer.get('name')} (id {answer.get('id')}), state {answer.get('state')}; "
          f"token saved in {cfg.token_file}")
    if answer.get("state") == "pending":
        print("the master's staff must approve this slave before it gets jobs")
    return 0


def cmd_status(args) -> int:
    from autotua.linux import mounts_under
    from autotua.slave.api import Api
    from autotua.slave.claim import free_disk
    from autotua.slave.locks import holder
    from autotua.slave.rootfs import RootCache
    from autotua.slave.snapshot import SnapshotStore

    cfg = _cfg(args)
    running = holder(f"{cfg.work_dir}/slave.lock")
    status = {
        "config": cfg.source, "master": cfg.master, "name": cfg.name, "arch": cfg.arch, "flavours": cfg.flavours,
        "running": f"pid {running}" if running else "no",
        "work_dir": cfg.work_dir, "cache_dir": cfg.cache_dir, "free_disk_mib": free_disk(cfg) >> 20,
        "jobs": sorted(p.name for p in cfg.jobs_dir.iterdir()) if cfg.jobs_dir.is_dir() else [],
        "mounts_under_work_dir": mounts_under(cfg.work_dir) if os.path.isdir(cfg.work_dir) else [],
        "stage3_roots": [p.name for p in RootCache(cfg.cache_dir).roots()] if os.path.isdir(cfg.cache_dir) else [],
        "repository": cfg.repository or "none",
        "snapshots": SnapshotStore.for_config(cfg).cached() if os.path.isdir(cfg.cache_dir) else [],
    }
    try:
        status["on_the_master"] = Api(cfg.master, cfg.token(), retry_for=5).me()
    except AutotuaError as e:
        status["on_the_master"] = f"unknown: {e}"
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for k, v in status.items():
            print(f"{k:22} {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return 0


def cmd_clean(args) -> int:
    from autotua.slave.cleanup import clean
    from autotua.slave.daemon import Daemon, setup_logging
    from autotua.slave.rootfs import RootCache
    from autotua.slave.snapshot import SnapshotStore
    from autotua.slave.stage3 import Stage3Store

    cfg = _cfg(args)
    setup_logging(cfg, args.verbose)
    lock = Daemon(cfg).lock()
    try:
        report = clean(cfg)
        if args.prune:
            store = Stage3Store(cfg.stage3_mirror, cfg.cache_dir, cfg.release_key)
            roots = RootCache(cfg.cache_dir)
            newest = {roots.path_for(c[0]) for f in cfg.flavours if (c := store.cached(cfg.arch, f))}
            report += [f"{p}: removed (an older stage3)" for p in roots.prune(keep=newest)]
            snapshots = SnapshotStore.for_config(cfg)
            report += [f"gentoo-{d}: removed (beyond the newest {cfg.keep_snapshots} snapshots)"
                       for d in snapshots.prune()]
    finally:
        lock.release()
    for line in report or ["nothing to clean"]:
        print(line)
    return 1 if any("NOT removed" in line for line in report) else 0


def cmd_fetch_stage3(args) -> int:
    from autotua.slave.daemon import setup_logging
    from autotua.slave.rootfs import RootCache
    from autotua.slave.stage3 import Stage3Store

    cfg = _cfg(args)
    setup_logging(cfg, args.verbose)
    store = Stage3Store(cfg.stage3_mirror, cfg.cache_dir, cfg.release_key)
    for flavour in args.flavour or cfg.flavours:
        tarball = store.fetch(cfg.arch, flavour)
        root = RootCache(cfg.cache_dir).get(tarball)
        print(f"{cfg.arch} {flavour}: {tarball.name} verified, unpacked in {root}")
    return 0


def cmd_fetch_snapshot(args) -> int:
    from autotua.slave.daemon import setup_logging
    from autotua.slave.snapshot import LATEST, SnapshotStore

    cfg = _cfg(args)
    setup_logging(cfg, args.verbose)
    repo = SnapshotStore.for_config(cfg).get(args.date or LATEST)
    print(f"gentoo-{repo.snapshot}.tar.xz verified (the snapshot key), unpacked in {repo.path} "
          f"(timestamp.chk: {repo.timestamp or 'none'})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autotua-slave", description="Run AutotuA jobs from a master in chroots.")
    p.add_argument("-c", "--config", help=f"configuration file (default $AUTOTUA_SLAVE_CONFIG or {DEFAULT_PATH})")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"autotua-slave {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="take jobs from the master and run them (the daemon)")
    r.add_argument("--once", action="store_true", help="run one job, then exit")
    r.set_defaults(func=cmd_run)
    g = sub.add_parser("register", help="register with the master (a pending slave until staff approve it)")
    g.add_argument("--name", help="the slave's name (default: the configured name, or the host name)")
    g.add_argument("--force", action="store_true", help="register again, replacing the saved token")
    g.set_defaults(func=cmd_register)
    s = sub.add_parser("status", help="what the slave is doing, what it has cached, what the master thinks")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    c = sub.add_parser("clean", help="undo what a crashed run left (refuses while a slave runs)")
    c.add_argument("--prune", action="store_true", help="also delete unpacked stage3s other than the newest")
    c.set_defaults(func=cmd_clean)
    f = sub.add_parser("fetch-stage3", help="fetch, verify and unpack the stage3s now")
    f.add_argument("--flavour", action="append", help="only this flavour (repeatable)")
    f.set_defaults(func=cmd_fetch_stage3)
    n = sub.add_parser("fetch-snapshot", help="fetch, verify and unpack a Gentoo repository snapshot now")
    n.add_argument("date", nargs="?", help="YYYYMMDD (default: gentoo-latest, dated by its signature)")
    n.set_defaults(func=cmd_fetch_snapshot)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0 and args.command in ("run", "clean", "fetch-stage3", "fetch-snapshot"):
        print("autotua-slave: must run as root (it mounts, chroots and unpacks stage3s with their owners)",
              file=sys.stderr)
        return 1
    try:
        return args.func(args)
    except AutotuaError as e:
        print(f"autotua-slave: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
