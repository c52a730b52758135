"""Slaves for the demo and the tests: a configuration, its directories and a token, and the process.

``SlaveSetup(base, master_url, token, ...)`` writes ``<base>/slave.toml`` (work and cache
directories below ``base``, the stage3 mirror and release key of :mod:`autotua.demo.stage3`, the
sample distfiles' ``mirror://`` name) and the token file; ``start()`` runs ``autotua-slave run`` as
a child process and ``stop()`` sends it SIGTERM, as an init system would. Two setups with different
``base`` directories are two independent slaves; they may share ``cache_dir``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_SLAVE_DIR = Path(__file__).resolve().parents[2]  # .../slave (holds the autotua package)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_config(path: str | os.PathLike, values: dict) -> Path:
    """A slave.toml from a dict (``mirrors`` becomes the ``[mirrors]`` table)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in values.items() if k != "mirrors"]
    if values.get("mirrors"):
        lines.append("\n[mirrors]")
        lines += [f"{json.dumps(name)} = {toml_value(urls)}" for name, urls in values["mirrors"].items()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class SlaveSetup:
    base: Path
    master: str
    token: str
    stage3_mirror: str
    release_key: str
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    name: str = "demo-slave"
    arch: str = "amd64"
    flavours: list[str] = field(default_factory=lambda: ["openrc"])
    cache_dir: str | None = None
    extra: dict = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)  # more variables for its processes
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.base = Path(self.base)
        self.base.mkdir(parents=True, exist_ok=True)
        token_file = self.base / "slave.token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        self.config = write_config(self.base / "slave.toml", {
            "master": self.master, "token_file": str(token_file), "name": self.name, "arch": self.arch,
            "flavours": self.flavours, "work_dir": str(self.base / "work"),
            "cache_dir": self.cache_dir or str(self.base / "cache"),
            "stage3_mirror": self.stage3_mirror, "release_key": str(self.release_key),
            "repository": "", "min_free_disk": "100M", "max_poll_interval": 2, "retry_for": 30,
            # a demo's jobs are small: a small disk each (reserved while the job runs), and limits a
            # shared machine can give
            "disk_limit": "1G", "memory_limit": "2G", "pids_limit": 1024,
            "mirrors": self.mirrors, **self.extra})

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "autotua.slave.cli", "-c", str(self.config), *args]

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.environ}
        env["PYTHONPATH"] = str(REPO_SLAVE_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """``autotua-slave <args>`` to completion (e.g. ``run("run", "--once")``, ``run("clean")``)."""
        return subprocess.run(self.command(*args), env=self.env(), capture_output=True, text=True, **kw)

    def start(self, *args: str, log: str | os.PathLike | None = None) -> subprocess.Popen:
        """``autotua-slave run`` in the background; its log goes to ``log`` (default <base>/slave.log)."""
        out = open(log or self.base / "slave.log", "ab")  # noqa: SIM115  (the child keeps it)
        # a session of its own, as under an init system: a Ctrl-C meant for the caller is not its signal
        self.proc = subprocess.Popen(self.command("run", *args), env=self.env(), stdout=out, stderr=out,
                                     start_new_session=True)
        out.close()
        return self.proc

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, as an init system stops it; SIGINT if it takes too long."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            return self.proc.wait(timeout)
