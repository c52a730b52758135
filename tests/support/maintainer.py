"""A maintainer at work, as docs/maintainer.md tells it: ``brz branch`` the master's tree, write a
jobuild, ``autotua-jobuild sign`` it with their key, ``brz commit``, ``brz push`` to the master's branch
over HTTP (``bzr+http://<master>/tree/push``, with their API token in breezy's ``authentication.conf``).

Real programs in subprocesses: the venv's ``brz`` and ``autotua-jobuild``, gpg with the maintainer's
GnuPG home. ``HOME`` is a directory of the checkout's own, so nothing is written to root's home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _brz() -> str:
    here = Path(sys.executable).parent / "brz"
    found = str(here) if here.exists() else shutil.which("brz")
    if not found:
        raise FileNotFoundError("brz (breezy) is not installed in the venv or on PATH")
    return found


class MaintainerCheckout:
    def __init__(self, workdir: str | os.PathLike, user: str, fingerprint: str, gnupghome: str | os.PathLike):
        self.workdir = Path(workdir)
        self.user = user
        self.fingerprint = fingerprint
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / "jobtage"
        self.env = {**os.environ, "HOME": str(self.home), "GNUPGHOME": str(gnupghome),
                    "BRZ_EMAIL": f"{user} <{user}@jobtage.example>", "BRZ_LOG": os.devnull}

    def _run(self, *argv: str, cwd: str | os.PathLike | None = None, check: bool = True) -> str:
        proc = self.run(*argv, cwd=cwd)
        if check and proc.returncode:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def run(self, *argv: str, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """A program in the checkout, never waiting for a terminal (stdin is empty)."""
        return subprocess.run(argv, cwd=cwd or self.path, env=self.env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    def login(self, master_url: str, token: str | None, user: str | None = None) -> MaintainerCheckout:
        """Write breezy's ``authentication.conf`` for the master: the user name and API token
        (``token=None``: no credentials at all)."""
        from urllib.parse import urlsplit

        conf = self.home / ".config" / "breezy" / "authentication.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        if token is None:
            conf.unlink(missing_ok=True)
            return self
        url = urlsplit(master_url)
        conf.write_text(f"[autotua]\nscheme = {url.scheme}\nhost = {url.hostname}\nport = {url.port}\n"
                        f"user = {user or self.user}\npassword = {token}\n")
        conf.chmod(0o600)
        return self

    brz_path = property(lambda self: _brz())

    def brz(self, *args: str) -> str:
        return self._run(_brz(), *args)

    def brz_in(self, cwd: str | os.PathLike, *args: str) -> str:
        return self._run(_brz(), *args, cwd=cwd)

    def branch(self, url: str) -> MaintainerCheckout:
        """``brz branch <url> jobtage``: a checkout of the master's tree (over its /tree/, read-only)."""
        self._run(_brz(), "branch", url, str(self.path), cwd=self.workdir)
        return self

    def write(self, path: str, text: str) -> Path:
        full = self.path / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)
        return full

    def sign(self, *paths: str) -> str:
        """``autotua-jobuild sign -u <fingerprint> PATH...``"""
        return self._run(sys.executable, "-m", "autotua.cli.jobuild", "--no-cache", "sign", "-u", self.fingerprint,
                         *paths)

    def commit(self, message: str) -> str:
        self.brz("add", "--quiet")
        return self.brz("commit", "-m", message)

    def push(self, target: str | os.PathLike, *, check: bool = True) -> str:
        """``brz push <target>``: onto the master's branch (``<master>/tree/push`` over HTTP, or a path)."""
        if str(target).startswith("http"):
            target = push_url(str(target))
        return self._run(_brz(), "push", str(target), check=check)


def push_url(master_url: str) -> str:
    """Where maintainers push: breezy's smart protocol over the master's HTTP."""
    return "bzr+" + master_url.rstrip("/") + "/tree/push"
