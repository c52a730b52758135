"""Maintainers push to the master over HTTP: real ``brz push`` (and ``brz commit`` in a bound checkout)
to a live gunicorn master's ``/tree/push``, with the API token in breezy's ``authentication.conf``.

A push that lands is indexed at once and a job for it validates at the new revision. A refused push
prints ``autotua-jobuild check``'s report and leaves the branch as it was: an unsigned jobuild, a
signature by another key, a change under another maintainer's directory, an ``--overwrite``, a
wrong token, no token, a volunteer's token. Two maintainers pushing at once: one lands, the other is
told to pull, and after it did both changes are in. breezy verbs that would write files by path or
break locks are not served.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest
import requests

from autotua.tree import BzrTree
from tests.support.live import start
from tests.support.maintainer import MaintainerCheckout, push_url

pytestmark = pytest.mark.slow

NEW = 'DESCRIPTION="arrived with a push"\nsrc_test() { einfo "pushed"; }\n'


@pytest.fixture(scope="module")
def pushed_master(tmp_path_factory, sample, master_cache, keys):
    """A live master owning a copy of the sample branch, with maintainers alice and bob, staff carol
    (also a maintainer), and vera (a volunteer with an API token but no key)."""
    from tests.support.master import LiveMaster

    work = tmp_path_factory.mktemp("push")
    branch = work / "jobtage"
    shutil.copytree(sample.branch, branch, symlinks=True)
    m = LiveMaster(work / "master", branch, cache=master_cache)
    m.migrate()
    m.tokens = {u: m.add_maintainer(u, keys[u]) for u in ("alice", "bob")}
    m.tokens["carol"] = m.add_maintainer("carol", keys["carol"], staff=True)
    m.add_user("vera", "pw-vera")
    m.tokens["vera"] = m.manage("drf_create_token", "vera").split()[2]
    m.branch = branch
    m.gnupghome = sample.gnupghome
    start(m)
    yield m
    m.stop()


def tip(m) -> tuple[int, str]:
    t = BzrTree(m.branch)
    t.close()
    return t.revno, t.revision_id


def checkout(m, tmp_path, user: str, keys, *, token: str | None = "own") -> MaintainerCheckout:
    c = MaintainerCheckout(tmp_path / f"checkout-{user}", user, keys[user], m.gnupghome).branch(m.url + "/tree/")
    return c.login(m.url, m.tokens.get(user) if token == "own" else token)


def brz_push(c: MaintainerCheckout, m) -> subprocess.CompletedProcess:
    from tests.support.maintainer import _brz

    return c.run(_brz(), "push", push_url(m.url))


def test_a_signed_jobuild_pushed_over_http_lands_is_indexed_and_validates(pushed_master, tmp_path, keys):
    m = pushed_master
    before = tip(m)
    alice = checkout(m, tmp_path, "alice", keys)
    alice.write("alice/arrived/arrived-1.0.jobuild", NEW)
    alice.sign("alice/arrived")
    alice.commit("alice/arrived: new")
    r = brz_push(alice, m)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Pushed up to revision {before[0] + 1}." in r.stderr
    assert tip(m)[0] == before[0] + 1
    # indexed by the push itself: the tree browser lists it at the new revision
    page = requests.get(f"{m.url}/browse/r{before[0] + 1}/", timeout=60)
    assert page.status_code == 200 and "alice/arrived-1.0" in page.text
    job = m.person_session(m.tokens["alice"]).post(m.url + "/api/v1/jobs/", json={"root": "alice/arrived"},
                                                   timeout=60).json()
    assert (job["state"], job["revno"], job["errors"]) == ("queued", before[0] + 1, [])


REFUSED = {
    "unsigned": ("alice", "alice/refused/refused-1.0.jobuild", None,
                 "[missing-signature] alice/refused/refused-1.0.jobuild: no signature"),
    "another key": ("alice", "alice/refused/refused-1.0.jobuild", "bob", "[wrong-key]"),
    "another maintainer's directory": ("alice", "bob/slow/slow-1.0.jobuild", "alice",
                                       "[not-yours] alice may change only alice/; this changes bob/"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.bad_input("push", "a push of a jobuild: {case}", "Tip change rejected: autotua-jobuild check's report")
def test_a_refused_push_prints_the_check_report_and_leaves_the_branch(pushed_master, tmp_path, keys, case):
    m = pushed_master
    user, path, signer, expect = REFUSED[case]
    before = tip(m)
    c = checkout(m, tmp_path, user, keys)
    c.write(path, NEW)
    if signer:
        MaintainerCheckout(c.workdir, signer, keys[signer], m.gnupghome).sign(str(c.path / path))
    c.commit("a change the master refuses")
    r = brz_push(c, m)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Tip change rejected:" in out and expect in out
    assert "the branch is unchanged" in out
    # the same report `autotua-jobuild check` prints for that revision, with the master's fingerprints
    check = c.run(sys.executable, "-m", "autotua.cli.jobuild", "--no-cache", "check", "--tree", ".",
                  *[f"--trust={u}={keys[u]}" for u in ("alice", "bob", "carol")])
    assert check.returncode == 1
    report = check.stdout.splitlines()
    assert report[:-1] and all(line in out.splitlines() for line in report[:-1]), (report, out)
    assert report[-1].split(": ", 1)[1] in out  # "<n> jobuilds, <e> error(s), ...: INVALID"
    assert tip(m) == before


@pytest.mark.parametrize(("case", "token", "status"), [("no token", None, 401), ("wrong token", "0" * 40, 401),
                                                       ("a volunteer's token", "vera", 403)])
@pytest.mark.bad_input("push", "a push with {case}", "HTTP {status}; nothing read or written")
def test_a_push_without_a_maintainers_token_is_refused(pushed_master, tmp_path, keys, case, token, status):
    m = pushed_master
    before = tip(m)
    c = checkout(m, tmp_path, "alice", keys, token=m.tokens.get(token, token))
    if token == "vera":
        c.login(m.url, m.tokens["vera"], user="vera")
    c.write("alice/nope/nope-1.0.jobuild", NEW)
    c.sign("alice/nope")
    c.commit("should not land")
    r = brz_push(c, m)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Pushed up to" not in out, out
    assert str(status) in out or ("Unauthorized" if status == 401 else "Forbidden") in out, out
    assert tip(m) == before
    # the same answer to the protocol itself
    auth = None if token is None else ("vera" if token == "vera" else "alice", m.tokens.get(token, token))
    assert requests.post(m.url + "/tree/push/.bzr/smart", data=b"hello\n", auth=auth, timeout=30).status_code == status


@pytest.mark.bad_input("push", "brz push --overwrite of a revision that drops the master's tip",
                       "Tip change rejected: [not-descendant]")
def test_an_overwrite_that_would_drop_revisions_is_refused(pushed_master, tmp_path, keys):
    m = pushed_master
    c = checkout(m, tmp_path, "alice", keys)
    c.brz("uncommit", "--force")  # one revision behind the master
    c.write("alice/other/other-1.0.jobuild", NEW)
    c.sign("alice/other")
    c.commit("history the master does not have")
    before = tip(m)
    r = c.run(c.brz_path, "push", "--overwrite", push_url(m.url))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "[not-descendant]" in out, out
    assert tip(m) == before


def test_two_maintainers_pushing_at_once_lose_nothing(pushed_master, tmp_path, keys):
    m = pushed_master
    start_rev = tip(m)[0]
    alice, bob = checkout(m, tmp_path, "alice", keys), checkout(m, tmp_path, "bob", keys)
    for c in (alice, bob):
        c.write(f"{c.user}/race/race-1.0.jobuild", NEW)
        c.sign(f"{c.user}/race")
        c.commit(f"{c.user}/race")
    results: dict[str, subprocess.CompletedProcess] = {}
    go = threading.Barrier(2)

    def push(c):
        go.wait(30)
        results[c.user] = brz_push(c, m)

    threads = [threading.Thread(target=push, args=(c,)) for c in (alice, bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    codes = {u: r.returncode for u, r in results.items()}
    assert sorted(codes.values()) == [0, 3], {u: r.stderr for u, r in results.items()}
    loser = alice if codes["alice"] else bob
    assert "diverged" in results[loser.user].stderr, results[loser.user].stderr
    assert tip(m)[0] == start_rev + 1
    # told to pull: they merge the master's tip, commit, and push again
    loser.brz("merge", m.url + "/tree/")
    loser.brz("commit", "-m", "merge the master's tip")
    r = brz_push(loser, m)
    assert r.returncode == 0, r.stderr
    tree = BzrTree(m.branch)
    assert {"alice/race/race-1.0.jobuild", "bob/race/race-1.0.jobuild"} <= set(tree.paths)
    tree.close()


def test_a_commit_in_a_bound_checkout_lands_or_is_refused(pushed_master, tmp_path, keys):
    m = pushed_master
    bob = MaintainerCheckout(tmp_path / "bound", "bob", keys["bob"], m.gnupghome).login(m.url, m.tokens["bob"])
    bob.brz_in(bob.workdir, "checkout", push_url(m.url), str(bob.path))
    before = tip(m)
    bob.write("bob/bound/bound-1.0.jobuild", NEW)
    bob.sign("bob/bound")
    bob.commit("bob/bound: committed straight to the master")
    assert tip(m)[0] == before[0] + 1
    bob.write("bob/bound/bound-1.1.jobuild", NEW)  # not signed
    bob.brz("add", "--quiet")
    r = bob.run(bob.brz_path, "commit", "-m", "unsigned")
    assert r.returncode != 0 and "[missing-signature] bob/bound/bound-1.1.jobuild" in r.stderr, r.stderr
    assert tip(m)[0] == before[0] + 1


VERBS = '''
import sys
from breezy.transport import get_transport
from breezy import errors
import breezy.bzr
client = get_transport(sys.argv[1])._client
for verb, args, body in [(b"put", (b".bzr/branch/last-revision", b""), b"1 null:\\n"),
                         (b"append", (b".bzr/branch/last-revision", b""), b"x"),
                         (b"delete", (b".bzr/branch/last-revision",), None),
                         (b"mkdir", (b"evil", b""), None),
                         (b"rename", (b".bzr/branch", b".bzr/gone"), None),
                         (b"BzrDir.destroy_branch", (b"", b""), None),
                         (b"Branch.break_lock", (b"",), None),
                         (b"Repository.tarball", (b"", b"bz2"), None)]:
    try:
        client.call_with_body_bytes(verb, args, body) if body is not None else client.call(verb, *args)
        print(verb.decode(), "DONE")
    except errors.UnknownSmartMethod:
        print(verb.decode(), "refused")
'''


@pytest.mark.bad_input("push", "breezy verbs that write files by path, destroy, break locks or build archives",
                       "UnknownSmartMethod; the branch's files unchanged")
def test_verbs_that_write_files_by_path_are_not_served(pushed_master, tmp_path, keys):
    m = pushed_master
    before = tip(m)
    c = MaintainerCheckout(tmp_path / "raw", "alice", keys["alice"], m.gnupghome).login(m.url, m.tokens["alice"])
    r = subprocess.run([sys.executable, "-c", VERBS, push_url(m.url)], env=c.env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    answers = dict(line.split() for line in r.stdout.splitlines())
    assert answers == dict.fromkeys(["put", "append", "delete", "mkdir", "rename", "BzrDir.destroy_branch",
                                     "Branch.break_lock", "Repository.tarball"], "refused"), r.stdout + r.stderr
    assert tip(m) == before
    assert not (m.branch / "evil").exists() and (m.branch / ".bzr/branch").is_dir()


def test_a_stale_push_lock_is_broken_by_the_next_push(pushed_master, tmp_path, keys):
    from autotua_master.tree.push import break_stale_locks

    m = pushed_master
    from breezy.branch import Branch

    b = Branch.open(str(m.branch))
    b.lock_write()
    b.leave_lock_in_place()  # a client that died between its lock and its unlock
    b.unlock()
    held = m.branch / ".bzr/branch/lock/held/info"
    assert held.exists()
    assert break_stale_locks(m.branch, 600) == []  # young: a push in progress
    old = held.stat().st_mtime - 3600
    os.utime(held, (old, old))
    alice = checkout(m, tmp_path, "alice", keys)
    alice.write("alice/late/late-1.0.jobuild", NEW)
    alice.sign("alice/late")
    alice.commit("alice/late")
    r = brz_push(alice, m)
    assert r.returncode == 0, r.stderr
    assert "stale push lock" in m.log()
