"""``make demo``: the whole system on this machine, from nothing.

Fresh keys sign the sample tree into a real bzr branch the master owns; a tiny stage3 in Gentoo's
autobuilds layout (cached after the first run) and the sample distfiles are served from a local HTTP
mirror; the master runs under gunicorn on 127.0.0.1 with SQLite; two slaves with different stage3
flavours take the sample jobs. What happens is printed as it happens; then a slave whose stage3
carries real portage runs gentoo/arch-test twice (the first job emerges app-misc/hello and its
dependency, fetched into the job's DISTDIR; the second installs the dependency from the slave's
binary package cache); then a bug's package list becomes an arch-testing group (the tiny ebuild
repository published as a signed Gentoo snapshot), which runs, and its report is printed; then the
web UI's address and a login; Ctrl-C stops every process and leaves no mount behind.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.repository import make_snapshot_key, publish_snapshot
from autotua.demo.sampletree import REPO_ROOT, build_sample_tree, stop_agent
from autotua.demo.stage3 import ReleaseKey, publish_stage3
from autotua.demo.watch import JobWatcher
from autotua.linux import mounts_under

GENTOO_RELEASE_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"
FLAVOURS = {"demo-openrc": "openrc", "demo-systemd": "systemd"}
VOLUNTEER = "vera"  # a volunteer: she runs the two slaves and sees their tokens in the web UI
ROLES = {"admin": "staff: everything, and the admin", VOLUNTEER: "volunteer: owns the demo's slaves"}

# (maintainer, root atom, stage3 flavour or None for the jobuild's own, what it shows)
JOBS = [
    ("alice", "alice/hello-suite", None, "a test suite from SRC_URI, through a template, with a report attached; "
                                         "alice is emailed at its end"),
    ("bob", "bob/integration", "systemd", "its SIDEPEND <alice/hello-suite-2 runs first, on the other slave"),
    ("bob", "bob/fail-on-purpose", None, "fails in src_test, on purpose"),
    ("bob", "bob/needs-failing", None, "fails without running: its SIDEPEND fails"),
    ("bob", "bob/slow", None, "takes a minute: the demo cancels it while it runs"),
]
CANCEL = "bob/slow"
#: the package the demo emerges for real (its dependency dev-libs/slowlib is the slow compile)
EMERGE_ATOM = "=app-misc/hello-1.0"
NOTIFY = "alice/hello-suite"
#: the arch-testing group the demo ends with: two packages of the test repository (autotua.demo.repository)
ARCHTEST_LIST = "=app-misc/hello-1.0 amd64\n=dev-libs/libgreet-1.0 ^\n"
ARCHTEST_BUG = 900001
#: the demo's group runs the stand-in: gentoo/arch-test's own template, with portage's output faked
#: from the job's USE flags, on the sample jobs' slaves (tiny stage3s without portage, two flavours).
#: The emerge act before it runs gentoo/arch-test itself; a group of it needs only slaves with
#: repository = "snapshot" and a stage3 that carries portage (autotua.demo.portage), as that act's.
ARCHTEST_JOBUILD = "gentoo/arch-test-standin"
#: a third slave, started for the arch testing: the second opinion on an openrc failure needs another
#: openrc slave (it would have taken some of the sample jobs above, whose story names their slaves)
SECOND_OPINION_SLAVE = ("demo-openrc-2", "openrc")


def say(msg: str) -> None:
    bold = sys.stdout.isatty()
    print(f"\n\x1b[1;32m>>>\x1b[0m \x1b[1m{msg}\x1b[0m" if bold else f"\n>>> {msg}", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stage3_mirror(cache: Path) -> tuple[Path, Path]:
    """The tiny stage3s (openrc and systemd) in the autobuilds layout, built once and kept in
    ``cache``; returns (mirror directory, release key file)."""
    mirror, key_home = cache / "gentoo-mirror", cache / "release-gpg"
    latest = [mirror / f"releases/amd64/autobuilds/latest-stage3-amd64-{f}.txt" for f in set(FLAVOURS.values())]
    if all(p.exists() for p in latest) and (key_home / "release.asc").exists():
        print(f"    using the stage3s built before, in {mirror}")
        return mirror, key_home / "release.asc"
    shutil.rmtree(mirror, ignore_errors=True)
    shutil.rmtree(key_home, ignore_errors=True)
    key = ReleaseKey.make(key_home)
    try:
        for flavour in sorted(set(FLAVOURS.values())):
            release = publish_stage3(mirror, key, arch="amd64", flavour=flavour)
            print(f"    built {release.path} ({release.tarball.stat().st_size // 1024} KiB), signed by "
                  f"{key.fingerprint}")
    finally:
        stop_agent(key.gnupghome)  # signing started one; nothing of the demo outlives it
    return mirror, key.key_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="autotua-demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=str(REPO_ROOT / "var" / "demo"),
                    help="the demo's files, made anew each run (default: var/demo in the checkout)")
    ap.add_argument("--cache", default=str(REPO_ROOT / "var" / "demo-cache"),
                    help="kept between runs: the stage3s and the slaves' caches (default: var/demo-cache)")
    ap.add_argument("--port", type=int, default=None, help="the master's port (default: a free one)")
    ap.add_argument("--gentoo-mirror", metavar="URL",
                    help="take real stage3s from this Gentoo mirror (e.g. https://distfiles.gentoo.org) instead of "
                         f"the local tiny one, verified with {GENTOO_RELEASE_KEY} or --release-key")
    ap.add_argument("--release-key", help="the release key file for --gentoo-mirror")
    ap.add_argument("--no-slaves", action="store_true",
                    help="start no slaves (what happens anyway without root: slaves need root for the job containers)")
    ap.add_argument("--exit-when-done", action="store_true", help="stop once every job has ended (for tests)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops it even when started from a shell that ignores SIGINT (a background job, `nohup`):
    # the demo says it runs until Ctrl-C, and a process that inherited SIG_IGN would never see one
    signal.signal(signal.SIGINT, _interrupt)
    work, cache = Path(args.workdir), Path(args.cache)
    if work.exists():
        left = mounts_under(work)
        if left:
            print(f"!!! {work} still has mounts under it ({', '.join(left)}): not removing it", file=sys.stderr)
            return 1
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0 and not args.no_slaves
    stack: list = []  # what to stop, in reverse order
    try:
        return run(args, work, cache, root, stack)
    except KeyboardInterrupt:
        say("Ctrl-C: stopping the slaves, the mirror and the master")
        return 0
    finally:
        for thing in reversed(stack):
            thing.stop()
        left = mounts_under(work)
        print(f"    {'mounts left behind: ' + ', '.join(left) if left else 'no mount left behind'}; all stopped",
              flush=True)


def run(args, work: Path, cache: Path, root: bool, stack: list) -> int:
    from autotua_master.live import LiveMaster

    say("Making fresh keys for the maintainers and signing the sample tree into a bzr branch")
    sample = build_sample_tree(work)
    stack.append(_Stopper(sample.close))
    for user, fpr in sample.fingerprints.items():
        print(f"    {user:<6} {fpr}")
    print(f"    the master's branch: {sample.branch}")

    say("The mirror: a tiny stage3 in Gentoo's autobuilds layout, and the sample distfiles")
    served = work / "mirror"
    served.mkdir()
    (served / "distfiles").symlink_to(sample.distdir)
    if args.gentoo_mirror:
        release_key = args.release_key or GENTOO_RELEASE_KEY
        print(f"    stage3s from {args.gentoo_mirror}, verified with {release_key}")
    else:
        stage3_dir, release_key = stage3_mirror(cache)
        (served / "releases").symlink_to(stage3_dir / "releases")
    key = make_snapshot_key(work / "snapshot-gpg")
    stack.append(_Stopper(lambda: stop_agent(key.gnupghome)))
    date = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    release = publish_snapshot(work / "repository-mirror", key, date)
    (served / "snapshots").symlink_to(release.snapshots)
    print(f"    the test repository (egencache's md5-cache) as Gentoo's snapshot of {date}, signed by "
          f"{key.fingerprint}")
    mirror = MirrorServer(served).start()
    stack.append(mirror)
    stage3_url = args.gentoo_mirror or mirror.url
    print(f"    serving {served} at {mirror.url}")

    say("Starting the master: gunicorn on 127.0.0.1, SQLite")
    master = LiveMaster(work / "master", sample.branch, port=args.port, LEASE_SECONDS=60, HEARTBEAT_SECONDS=5,
                        RETRY_AFTER=2, WAIT_RETRY_AFTER=2,
                        MIRRORS=json.dumps({"autotua-samples": [mirror.url + "/distfiles/"]}),
                        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
                        EMAIL_FROM="autotua@demo.example",
                        SNAPSHOT_MIRROR=mirror.url, SNAPSHOT_KEY=key.key_file, SNAPSHOT_KEY_FINGERPRINT=key.fingerprint,
                        ARCHTEST_JOBUILD=ARCHTEST_JOBUILD)
    master.env["AUTOTUA_SITE_URL"] = master.url
    master.migrate()
    print("    " + master.manage("refreshsnapshots").strip().replace("\n", "\n    "))
    passwords = {user: secrets.token_urlsafe(9) for user in (*sample.fingerprints, VOLUNTEER, "admin")}
    tokens = {user: master.add_maintainer(user, fpr, password=passwords[user], email=f"{user}@jobtage.example")
              for user, fpr in sample.fingerprints.items()}
    master.add_user(VOLUNTEER, passwords[VOLUNTEER])
    master.add_user("admin", passwords["admin"], staff=True)
    master.start(timeout=120)
    stack.append(master)
    print(f"    {master.url} (data in {master.data_dir})")

    slaves = []
    if root:
        from autotua.demo.slaves import SlaveSetup

        say("Starting two slaves: " + ", ".join(f"{n} ({f} stage3)" for n, f in FLAVOURS.items()))
        for name, flavour in FLAVOURS.items():
            token = master.add_slave(name, arch="amd64", flavours=(flavour,), owner=VOLUNTEER)
            s = SlaveSetup(work / name, master.url, token, stage3_url, str(release_key), name=name,
                           flavours=[flavour], cache_dir=str(cache / "slave-cache"),
                           extra={"max_poll_interval": 1})
            s.start()
            stack.append(s)
            slaves.append(s)
            print(f"    {name}: config {s.config}, log {s.base / 'slave.log'}")
    elif args.no_slaves:
        say("No slaves (--no-slaves): the master, its jobs and their validation only")
    else:
        say("Not root: no slaves. They need root (the job containers): run `sudo make demo` to see jobs "
            "run; the master, its jobs and their validation are here without it")

    say("Creating the sample jobs (validated at once; the master queues SIDEPEND jobs by itself)")
    people = {user: master.person_session(token) for user, token in tokens.items()}
    created = {}
    for user, atom, flavour, what in JOBS:
        body = {"root": atom, **({"stage3": flavour} if flavour else {}), "notify": atom == NOTIFY}
        r = people[user].post(master.url + "/api/v1/jobs/", json=body, timeout=120)
        r.raise_for_status()
        job = r.json()
        created[atom] = job["id"]
        print(f"    #{job['id']:<3} {atom:<22} by {user:<6} {job['state']:<8} {what}")

    say("What happens, as it happens")
    watcher = JobWatcher(master.url, people["alice"])
    cancelled = not root
    started = time.monotonic()
    while True:
        watcher.poll()
        slow = watcher.jobs.get(created[CANCEL])
        if not cancelled and slow and slow["state"] == "running" and _running_for(watcher, slow["id"]) > 3:
            watcher.say(f"#{slow['id']} {CANCEL}: bob cancels it")
            people["bob"].post(master.url + f"/api/v1/jobs/{slow['id']}/cancel",
                               json={"reason": "the demo shows a cancel"}, timeout=60).raise_for_status()
            cancelled = True
        if cancelled and (watcher.all_final() or not root):
            break
        if any(s.proc.poll() is not None for s in slaves):
            print("!!! a slave stopped; its log: " + ", ".join(str(s.base / "slave.log") for s in slaves))
            break
        if time.monotonic() - started > 900:
            print("!!! still not done after 15 minutes; look at the slaves' logs")
            break
        time.sleep(0.5)

    say("Where things ended")
    print("\n".join(watcher.summary()))

    emerge(master, people["alice"], root, work, cache, release, key, stack, slaves)
    archtest(master, people["alice"], root, slaves, work, cache, stage3_url, release_key, stack)
    say("The web UI and the admin are up")
    print(f"    web UI  {master.url}/")
    print(f"    admin   {master.url}/admin/")
    print(f"    API     {master.url}/api/v1/  (schema: {master.url}/api/v1/schema/)")
    for user, pw in passwords.items():
        print(f"    login   {user:<6} {pw}  ({ROLES.get(user, 'maintainer: signs jobuilds, creates jobs')})")
    print(f"    token   alice  {tokens['alice']}  (her API token: autotua-jobuild submit/watch, brz push)")
    print(f"    mail    the console backend writes alice's mail about #{created[NOTIFY]} to "
          f"{master.data_dir / 'gunicorn.log'}")
    env = write_maintainer_env(work / "alice", master.url, tokens["alice"], sample, "alice",
                               slave_config=slaves[0].config if slaves else None)
    say("Your turn: push a jobuild as alice and watch it run (README.md, \"Your first jobuild\")")
    print(f"    . {env}        # in another shell: alice's keys, token and master")
    print("    brz branch $AUTOTUA_MASTER/tree/ jobtage && cd jobtage")
    print(f"    brz push {push_url(master.url)}")
    if args.exit_when_done:
        return 0
    say("Running until Ctrl-C")
    while True:
        time.sleep(2)
        try:
            watcher.poll()  # what happens to the jobs you make meanwhile
        except requests.RequestException as e:
            print(f"!!! the master did not answer: {e}")


def push_url(master_url: str) -> str:
    """Where maintainers push (the master's /tree/push, breezy's smart protocol)."""
    return "bzr+" + master_url.rstrip("/") + "/tree/push"


def write_maintainer_env(home: Path, master_url: str, token: str, sample, user: str,
                         slave_config: Path | None = None) -> Path:
    """A maintainer's setup for the demo's master, as docs/maintainer.md tells one to write it: breezy's
    authentication.conf (the API token, for brz push), autotua-jobuild's config (for submit/watch), and
    a file to source that points at them, the demo's GnuPG home and the venv's programs."""
    from urllib.parse import urlsplit

    url = urlsplit(master_url)
    config = home / "config"
    (config / "breezy").mkdir(parents=True, exist_ok=True)
    (config / "autotua").mkdir(parents=True, exist_ok=True)
    for path, text in ((config / "breezy" / "authentication.conf",
                        f"[autotua-demo]\nscheme = {url.scheme}\nhost = {url.hostname}\nport = {url.port}\n"
                        f"user = {user}\npassword = {token}\n"),
                       (config / "autotua" / "jobuild.conf", f"[master]\nurl = {master_url}\ntoken = {token}\n")):
        path.write_text(text)
        path.chmod(0o600)
    env = home / "env"
    venv_bin = Path(sys.executable).parent
    env.write_text(f"# source me: {user}'s keys, token and master, for the demo (README.md, \"Your first jobuild\")\n"
                   f"export XDG_CONFIG_HOME={config}\n"
                   f"export GNUPGHOME={sample.gnupghome}\n"
                   f"export AUTOTUA_MASTER={master_url}\n"
                   f"export AUTOTUA_PUSH={push_url(master_url)}\n"
                   f"export KEY={sample.fingerprints[user]}\n"
                   f"export BRZ_EMAIL='{user} <{user}@jobtage.example>'\n"
                   f"export PATH={venv_bin}:$PATH\n"
                   # `autotua-jobuild run` (root) takes the stage3 mirror, key and caches from a demo slave's
                   + (f"export AUTOTUA_SLAVE_CONFIG={slave_config}\n" if slave_config else ""))
    return env


def portage_stage3_mirror(cache: Path) -> tuple[Path, Path]:
    """A test stage3 that carries real portage (autotua.demo.portage), in the autobuilds layout, built
    once and kept in ``cache``; returns (mirror directory, release key file)."""
    from autotua.demo.portage import build_portage_rootfs, portage_wheel
    from autotua.demo.repository import PROFILE

    mirror, key_home = cache / "portage-mirror", cache / "portage-release-gpg"
    if (mirror / "releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt").exists() and \
            (key_home / "release.asc").exists():
        print(f"    using the portage stage3 built before, in {mirror}")
        return mirror, key_home / "release.asc"
    shutil.rmtree(mirror, ignore_errors=True)
    shutil.rmtree(key_home, ignore_errors=True)
    key = ReleaseKey.make(key_home)
    try:
        with tempfile.TemporaryDirectory(prefix="autotua-demo-portage-", dir=cache) as tmp:
            root = build_portage_rootfs(Path(tmp) / "root", portage_wheel(), PROFILE)
            release = publish_stage3(mirror, key, arch="amd64", flavour="openrc", rootfs=root, compression="gz")
        print(f"    built {release.path} ({release.tarball.stat().st_size // 2**20} MiB: portage "
              f"and the host's Python), signed by {key.fingerprint}")
    finally:
        stop_agent(key.gnupghome)
    return mirror, key.key_file


def emerge(master, alice, root: bool, work: Path, cache: Path, snapshot, snapshot_key, stack: list,
           others: list) -> None:
    """gentoo/arch-test for real, twice: the second job gets the first's binary package. The sample
    jobs' slaves (``others``: tiny stage3s without portage) pause meanwhile, so that the slave with
    portage takes both jobs."""
    say(f"Emerging in the job: {EMERGE_ATOM} with FEATURES=test, twice, on a slave whose stage3 carries "
        "portage (the repository: the pinned snapshot, read-only)")
    if not root:
        print("    (no slaves: nothing runs)")
        return
    from autotua.demo.slaves import SlaveSetup

    stage3_dir, release_key = portage_stage3_mirror(cache)
    served = work / "emerge-mirror"
    served.mkdir()
    (served / "releases").symlink_to(stage3_dir / "releases")
    (served / "distfiles").symlink_to(snapshot.mirror / "distfiles")  # the repository's SRC_URI files
    mirror = MirrorServer(served).start()
    stack.append(mirror)
    name = "demo-portage"
    token = master.add_slave(name, arch="amd64", flavours=("openrc",), owner=VOLUNTEER)
    s = SlaveSetup(work / name, master.url, token, mirror.url, str(release_key), name=name,
                   cache_dir=str(work / name / "cache"), mirrors={"gentoo": [mirror.url]},
                   extra={"max_poll_interval": 1, "repository": "snapshot", "snapshot_key": str(snapshot_key.key_file),
                          "snapshot_key_fingerprint": snapshot_key.fingerprint,
                          "network": "host"})  # its GENTOO_MIRRORS is on 127.0.0.1
    for other in others:
        other.stop()
    print(f"    {', '.join(o.name for o in others)} pause: their tiny stage3s have no portage")
    s.start()
    stack.append(s)
    print(f"    {name}: GENTOO_MIRRORS={mirror.url}, network = \"host\" (the mirror is on 127.0.0.1); "
          f"log {s.base / 'slave.log'}")
    try:
        _emerge_twice(master, alice, s)
    finally:
        s.stop()
        stack.remove(s)
        for other in others:
            other.start()


def _emerge_twice(master, alice, s) -> None:
    name = s.name
    for n in (1, 2):
        r = alice.post(master.url + "/api/v1/jobs/", timeout=120, json={
            "root": "gentoo/arch-test", "parameters": {"atom": EMERGE_ATOM, "use": "-broken-test english -french"}})
        if r.status_code != 201:
            print(f"!!! the job was refused: {r.text[:2000]}")
            return
        job = r.json()
        started = time.monotonic()
        while job["state"] not in ("passed", "failed", "error", "cancelled") and time.monotonic() - started < 900:
            if s.proc.poll() is not None:
                print(f"!!! {name} stopped; its log: {s.base / 'slave.log'}")
                return
            time.sleep(1)
            job = alice.get(master.url + f"/api/v1/jobs/{job['id']}/", timeout=60).json()
        took = time.monotonic() - started
        run = max(job["runs"], key=lambda x: x["attempt"]) if job["runs"] else {}
        got = (run.get("results") or [{}])[0].get("results") or {}
        print(f"    #{job['id']} job {n}: {job['state']} in {took:.0f} s; built from source: "
              f"{got.get('archtest.built') or '-'}; from binary packages: {got.get('archtest.binary') or '-'}")
        info = ((run.get("inputs") or {}).get("emerge_info") or "").splitlines()
        first = next((x for x in info if x.startswith("Portage ")), "")
        if first:
            print(f"        emerge --info from inside the job: {first}")
        print(f"        {master.url}/jobs/{job['id']}/")
        if job["state"] != "passed":
            print(f"!!! {job.get('reason') or 'see the job page'}")
            return


def archtest(master, alice, root: bool, slaves: list, work: Path, cache: Path, stage3_url: str, release_key,
             stack: list) -> None:
    """The demo's last act: a bug's package list to an arch-testing group, run, and its report."""
    say(f"Arch testing: bug {ARCHTEST_BUG}'s package list to a group of {ARCHTEST_JOBUILD} jobs (tatt's sampling "
        "from the pinned snapshot; the stand-in for emerge: these slaves' tiny stage3s have no portage)")
    for line in ARCHTEST_LIST.splitlines():
        print(f"    {line}")
    if root and slaves:
        from autotua.demo.slaves import SlaveSetup

        name, flavour = SECOND_OPINION_SLAVE
        token = master.add_slave(name, arch="amd64", flavours=(flavour,), owner=VOLUNTEER)
        s = SlaveSetup(work / name, master.url, token, stage3_url, str(release_key), name=name, flavours=[flavour],
                       cache_dir=str(cache / "slave-cache"), extra={"max_poll_interval": 1})
        s.start()
        stack.append(s)
        slaves.append(s)
        print(f"    {name} started too ({flavour}): a failure on one openrc slave is asked again on the other")
    r = alice.post(master.url + "/api/v1/groups/archtest", timeout=300, json={
        "packages": ARCHTEST_LIST, "bug": ARCHTEST_BUG, "flavours": list(dict.fromkeys(FLAVOURS.values())),
        "combinations": 2, "rdeps": 10, "seed": 1})
    if r.status_code != 201:
        print(f"!!! the group was refused: {r.text[:2000]}")
        return
    group = r.json()
    jobs = sum(len(c["jobs"]) for c in group["cells"])
    print(f"    group #{group['id']}: {len(group['rows'])} configurations x {len(group['columns'])} flavours = "
          f"{jobs} jobs (seed {group['seed']}, snapshot {group['snapshot']}): {master.url}/groups/{group['id']}/")
    said, started = None, time.monotonic()
    while root and slaves and group["state"] in ("queued", "running") and time.monotonic() - started < 900:
        counts = ", ".join(f"{n} {v}" for v, n in group["counts"].items())
        if counts != said:
            print(f"{time.strftime('%H:%M:%S')}  group #{group['id']} {group['state']}: {counts}", flush=True)
            said = counts
        if any(s.proc.poll() is not None for s in slaves):
            print("!!! a slave stopped; its log: " + ", ".join(str(s.base / "slave.log") for s in slaves))
            break
        time.sleep(1)
        group = alice.get(master.url + f"/api/v1/groups/{group['id']}/", timeout=60).json()
    say("The group's report, to paste into the bug" + ("" if root and slaves else " (no slaves: nothing ran)"))
    print(alice.get(master.url + f"/api/v1/groups/{group['id']}/report.txt", timeout=60).text, end="")


def _running_for(watcher: JobWatcher, job_id: int) -> float:
    """Seconds since the job's latest run was claimed (0 if unknown)."""
    runs = watcher.details.get(job_id, {}).get("runs") or []
    if not runs:
        return 0.0
    claimed = max(run["claimed"] for run in runs)
    from datetime import datetime

    return time.time() - datetime.fromisoformat(claimed.replace("Z", "+00:00")).timestamp()


class _Stopper:
    """Something to stop at the end that has another name for it."""

    def __init__(self, stop):
        self.stop = stop


if __name__ == "__main__":
    sys.exit(main())
