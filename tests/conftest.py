"""Shared fixtures: real gpg keys in a temporary GNUPGHOME, the signed sample tree in a real bzr
branch, a metadata reader with its sandboxed daemon, a helper to write small signed trees; and what
the master's, the slave's and the end-to-end tests all use: a release key and the tiny stage3 in
Gentoo's autobuilds layout, a snapshot key and the tiny ebuild repository in Gentoo's snapshots
layout, a throw-away PostgreSQL cluster, and live gunicorn masters."""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from autotua.demo.repository import make_snapshot_key, publish_snapshot
from autotua.demo.sampletree import build_sample_tree, make_key, stop_agent
from autotua.demo.stage3 import ReleaseKey, publish_stage3
from autotua.metadata import MetadataReader
from autotua.signature import Signer
from tests.support.master import LiveMaster
from tests.support.postgres import PostgresCluster

USERS = ("alice", "bob", "carol", "mallory")


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir(tmp_path_factory):
    """``$TMPDIR`` for the whole run (this process and every program it starts): a directory of its
    own, so what the suite leaves there is the suite's alone. At the end nothing may be left in it of
    the metadata sandboxes (``autotua-sandbox-*``: the sandbox removes its work directories however
    its daemon ends); then it is removed."""
    from autotua.linux import mounts_under

    tmp_path_factory.getbasetemp()  # pytest's own directories stay where they were (gpg's socket paths are short)
    path = tempfile.mkdtemp(prefix="autotua-tests-")
    os.chmod(path, 0o1777)  # as /tmp: the tests that run programs as nobody make theirs here too
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = path, path
    yield Path(path)
    from autotua import sandbox
    from autotua_master.tree import validation

    validation.close_shared()  # the in-process masters' readers (pytest-django's live servers)
    sandbox._remove_all()  # daemons still open in this process: what its exit would remove
    sandbox.clean_stale(path)  # those of programs killed on purpose (a master SIGKILLed): the next sandbox's work
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]
    left = sorted(p.name for p in Path(path).glob(sandbox.PREFIX + "*"))
    if not mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)
    assert not left, f"metadata sandbox work directories left behind: {left}"


@pytest.fixture(scope="session")
def gnupghome(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    yield home
    stop_agent(home)


@pytest.fixture(scope="session")
def keys(gnupghome) -> dict[str, str]:
    """user -> fingerprint, for alice, bob, carol and mallory (mallory is never trusted by tests)."""
    return {u: make_key(gnupghome, u) for u in USERS}


@pytest.fixture(scope="session")
def trusted(keys) -> dict[str, str]:
    return {u: f for u, f in keys.items() if u != "mallory"}


@pytest.fixture(scope="session")
def reader():
    with MetadataReader() as r:
        yield r


@pytest.fixture(scope="session")
def sample(tmp_path_factory, reader, gnupghome, keys):
    """The sample jobtage tree, signed with the session's alice and bob keys, as bzr revision 1."""
    work = tmp_path_factory.mktemp("sample")
    shutil.copytree(gnupghome, work / "gnupg", ignore=shutil.ignore_patterns("S.*"))
    s = build_sample_tree(work, reader=reader, users={u: keys[u] for u in ("alice", "bob")})
    yield s
    s.close()


class TreeWriter:
    """Writes a small tree into a directory and signs what it writes, as the maintainer would."""

    def __init__(self, root: Path, gnupghome: Path, keys: dict[str, str]):
        self.root = root
        self.gnupghome = gnupghome
        self.keys = keys

    def signer(self, user: str) -> Signer:
        return Signer(self.keys[user], str(self.gnupghome))

    def key(self, user: str, as_user: str | None = None) -> None:
        """Write <user>/<user>.asc holding ``as_user``'s public key (default: the user's own)."""
        path = self.root / user / f"{user}.asc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.signer(as_user or user).export_public(self.keys[as_user or user]))

    def write(self, path: str, text: str | bytes, *, sign_as: str | None = "owner") -> Path:
        """Write a file; jobuilds and templates are signed by their owner unless ``sign_as`` says
        otherwise (None: unsigned); a Manifest is clearsigned."""
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        user = path.split("/", 1)[0]
        if not (self.root / user / f"{user}.asc").exists() and user in self.keys:
            self.key(user)
        signer_user = user if sign_as == "owner" else sign_as
        if signer_user and full.name == "Manifest":
            data = self.signer(signer_user).clearsign(data)
        full.write_bytes(data)
        if signer_user and full.suffix in (".jobuild", ".jtemplate"):
            (self.root / (path + ".asc")).write_bytes(self.signer(signer_user).detached(data))
        return full

    def jobuild(self, cpv: str, body: str = "", *, description: str | None = None, sign_as="owner") -> Path:
        user, rest = cpv.split("/", 1)
        name = rest.rsplit("-", 1)[0]
        desc = description if description is not None else f"test jobuild {cpv}"
        return self.write(f"{user}/{name}/{rest}.jobuild", f'DESCRIPTION="{desc}"\n{body}', sign_as=sign_as)


@pytest.fixture
def tree_writer(tmp_path, gnupghome, keys) -> TreeWriter:
    root = tmp_path / "tree"
    root.mkdir()
    return TreeWriter(root, gnupghome, keys)


@pytest.fixture
def is_root() -> bool:
    return os.geteuid() == 0


# -- the stage3 (the slave's tests and the end-to-end tests) ---------------------------------------
@pytest.fixture(scope="session")
def release_key(tmp_path_factory):
    key = ReleaseKey.make(tmp_path_factory.mktemp("release-gpg"))
    yield key
    stop_agent(key.gnupghome)


@pytest.fixture(scope="session")
def stage3(tmp_path_factory, release_key):
    """The tiny stage3 (amd64, openrc), published once per session."""
    return publish_stage3(tmp_path_factory.mktemp("gentoo-mirror"), release_key, arch="amd64", flavour="openrc")


# -- the ebuild repository (autotua.demo.repository) ------------------------------------------------
def days_ago(n: int) -> str:
    """A snapshot date ``n`` days before today (UTC): signatures are made at the snapshot's own time."""
    return (datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=n)).strftime("%Y%m%d")


@pytest.fixture(scope="session")
def snapshot_key(tmp_path_factory):
    key = make_snapshot_key(tmp_path_factory.mktemp("snapshot-gpg"))
    yield key
    stop_agent(key.gnupghome)


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory, snapshot_key):
    """The tiny repository published as the snapshots of three days ago and of yesterday (also
    ``gentoo-latest``), and its distfiles, in one mirror directory; a list, oldest first."""
    mirror = tmp_path_factory.mktemp("snapshot-mirror")
    return [publish_snapshot(mirror, snapshot_key, days_ago(n), latest=n == 1) for n in (3, 1)]


# -- masters (the master's tests and the end-to-end tests) -----------------------------------------
@pytest.fixture(scope="session")
def master_cache(tmp_path_factory) -> Path:
    """One metadata/signature cache for the session, as a real master keeps one across restarts."""
    return tmp_path_factory.mktemp("master-cache") / "cache.sqlite"


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster for the session (tests.support.postgres); ``createdb(name)`` -> URL.
    It counts statements (pg_stat_statements, BEGIN and COMMIT too) for the tests that say how many a
    call makes."""
    cluster = PostgresCluster(settings={"shared_preload_libraries": "pg_stat_statements",
                                        "pg_stat_statements.track_utility": "on"}).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def live_master(tmp_path, master_cache):
    """A factory: ``live_master(tree, database_url=None, data_dir=None, **AUTOTUA_settings)`` -> a
    LiveMaster, migrated, not yet started; stopped at the end of the test. Masters given the same
    ``data_dir`` share it (logs, attachments), as several hosts of one site do."""
    started: list[LiveMaster] = []

    def make(tree, *, database_url: str | None = None, data_dir: str | os.PathLike | None = None,
             workers: int = 2, threads: int = 4, migrate: bool = True, **settings):
        m = LiveMaster(data_dir or tmp_path / f"master-{len(started)}", tree, database_url=database_url,
                       workers=workers, threads=threads, cache=master_cache, **settings)
        if migrate:
            m.migrate()
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()
