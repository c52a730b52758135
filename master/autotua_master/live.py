"""A live AutotuA master in a subprocess: gunicorn on 127.0.0.1, a data dir, a branch, a database.

Made for the demo, end-to-end tests (the slave's too) and benchmarks::

    master = LiveMaster(tmp_path / "master", tree=sample.branch)      # SQLite in the data dir
    master.migrate()
    alice = master.add_maintainer("alice", sample.fingerprints["alice"])   # -> API token
    token = master.add_slave("box1", arch="amd64", flavours=["openrc"])   # -> slave token
    master.start()
    requests.post(master.url + "/api/v1/claim", headers={"Authorization": f"Slave {token}"}, json=...)
    master.stop()

``database_url`` (e.g. from :class:`tests.support.postgres.PostgresCluster`) switches to PostgreSQL;
``settings`` sets any ``AUTOTUA_*`` variable (``LEASE_SECONDS=2``...). ``app``, ``settings_module`` and
``worker_class`` serve something else under the same gunicorn settings (the benchmarks' ceiling).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]  # the checkout, when running from one


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_control_socket() -> list[str]:
    """gunicorn >= 25 opens a control socket at ~/.gunicorn/gunicorn.ctl, one path for every server
    the user runs: several live masters would take it from each other. They need none."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


class LiveMaster:
    def __init__(self, data_dir: str | os.PathLike, tree: str | os.PathLike, *, database_url: str | None = None,
                 workers: int = 2, threads: int = 4, cache: str | os.PathLike | None = None, port: int | None = None,
                 app: str = "autotua_master.wsgi", settings_module: str = "autotua_master.settings",
                 graceful_timeout: int = 5, worker_class: str = "gthread", ready_path: str = "/api/v1/jobs/",
                 **settings):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tree = Path(tree)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.threads = threads
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.worker_class = worker_class
        self.ready_path = ready_path
        self.proc: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "AUTOTUA_DATA_DIR": str(self.data_dir),
            "AUTOTUA_TREE": str(self.tree),
            "AUTOTUA_SECRET_KEY": "test-only-secret",
            "AUTOTUA_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONPATH": os.pathsep.join([str(REPO / "master"), str(REPO / "slave"), str(REPO),
                                           os.environ.get("PYTHONPATH", "")]),
        }
        if database_url:
            self.env["AUTOTUA_DATABASE_URL"] = database_url
        if cache:
            self.env["AUTOTUA_CACHE"] = str(cache)
        for key, value in settings.items():
            self.env[f"AUTOTUA_{key.upper()}"] = str(value)

    # -- management ---------------------------------------------------------------------------------
    def manage(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run([sys.executable, "-m", "autotua_master.manage", *args], env=self.env,
                              capture_output=True, text=True, input=input)
        if proc.returncode:
            raise RuntimeError(f"autotua-master {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def migrate(self) -> LiveMaster:
        self.manage("migrate", "--verbosity", "0")
        return self

    def add_maintainer(self, name: str, fingerprint: str, *, staff: bool = False,
                       password: str | None = None, email: str = "") -> str:
        """Create a maintainer (with a web UI ``password`` and an ``email`` if given); returns their API
        token (``Authorization: Token <token>``)."""
        out = self.manage("createmaintainer", name, "--fingerprint", fingerprint, "--token",
                          *(["--staff"] if staff else []), *(["--password-stdin"] if password else []),
                          *(["--email", email] if email else []), input=f"{password}\n" if password else None)
        return out.strip().splitlines()[-1].split()[-1]

    def add_user(self, name: str, password: str, *, staff: bool = False) -> None:
        """A person who logs in to the web UI but signs nothing (a volunteer; ``staff``: an admin)."""
        self.manage("createuser", name, "--password-stdin", *(["--staff"] if staff else []), input=f"{password}\n")

    def add_slave(self, name: str, *, arch: str = "amd64", flavours: tuple[str, ...] = ("openrc",),
                  owner: str | None = None) -> str:
        """Create an active slave (run by user ``owner``); returns its token (``Authorization: Slave <token>``)."""
        args = ["createslave", name, "--arch", arch, "--quiet-token", *(["--owner", owner] if owner else [])]
        for f in flavours:
            args += ["--flavour", f]
        return self.manage(*args).strip()

    # -- the server ---------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LiveMaster:
        """gunicorn as contrib/'s service runs it (autotua_master.gunicorn_conf), with this master's
        port, workers and threads; a short graceful stop (long-polls answer at once anyway)."""
        log = open(self.data_dir / "gunicorn.log", "ab")  # noqa: SIM115 (handed to the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:autotua_master.gunicorn_conf", self.app,
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads", str(self.threads),
             "--worker-class", self.worker_class, "--graceful-timeout", str(self.graceful_timeout),
             *_no_control_socket()],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the master did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.data_dir / "gunicorn.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL gunicorn and its workers at once, as a crash would; ``start()`` brings the master
        back on the same port, with the same data dir and database."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the arbiter and its workers
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> LiveMaster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- calling it ---------------------------------------------------------------------------------
    def slave_session(self, token: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Slave {token}"
        return s

    def person_session(self, token: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Token {token}"
        return s
