"""A throw-away PostgreSQL cluster: ``initdb`` and ``pg_ctl`` in a temporary directory, reached only
through a Unix socket of its own (no TCP), removed on :meth:`PostgresCluster.stop`.

``initdb`` refuses to run as root, so as root the cluster is made and run as the ``postgres`` user
(Debian's package creates it). Durability is switched off: a test cluster need not survive a crash.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresMissing(RuntimeError):
    pass


def bindir() -> Path:
    """Where initdb/pg_ctl live: $PATH, ``pg_config --bindir``, or Debian's/Gentoo's versioned dirs."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and Path(out, "pg_ctl").exists():
            return Path(out)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") + glob.glob("/usr/lib*/postgresql-*/bin/pg_ctl")

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"postgresql-?/?(\d+(?:\.\d+)?)", path)
        return tuple(int(x) for x in m[1].split(".")) if m else (0,)

    if candidates:
        return Path(max(candidates, key=version)).parent
    raise PostgresMissing("PostgreSQL's server programs (initdb, pg_ctl) are not installed: run bin/host-deps test")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, *, max_connections: int = 300, settings: dict[str, str] | None = None):
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="autotua-pg-"))
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.port = _free_port()
        self.max_connections = max_connections
        self.settings = settings or {}  # more server settings (-c name=value)
        self.as_user: str | None = "postgres" if os.geteuid() == 0 else None
        self.started = False

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> PostgresCluster:
        self.sockdir.mkdir()
        os.chmod(self.root, 0o755)
        if self.as_user:
            pw = pwd.getpwnam(self.as_user)
            for p in (self.root, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")
        opts = (f"-k {self.sockdir} -p {self.port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                f"-c full_page_writes=off -c max_connections={self.max_connections} -c shared_buffers=128MB"
                + "".join(f" -c {k}={v}" for k, v in self.settings.items()))
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.root / "log"), "-o", opts,
                  "start")
        self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.sockdir}&port={self.port}"

    def connect(self, dbname: str = "postgres", **kw):
        import psycopg

        return psycopg.connect(host=str(self.sockdir), port=self.port, user="postgres", dbname=dbname, **kw)

    def createdb(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        with self.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
