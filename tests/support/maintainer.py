"""A maintainer at work, as docs/maintainer.md tells it: ``brz branch`` the master's tree, write a
jobuild, ``autotua-jobuild sign`` it with their key, ``brz commit``, ``brz push`` to the master's branch.

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

    def _run(self, *argv: str, cwd: str | os.PathLike | None = None) -> str:
        proc = subprocess.run(argv, cwd=cwd or self.path, env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def brz(self, *args: str) -> str:
        return self._run(_brz(), *args)

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

    def push(self, target: str | os.PathLike) -> str:
        """``brz push <target>``: onto the master's branch."""
        return self.brz("push", str(target))
