"""The maintainer's side of the master's REST API, for ``autotua-jobuild submit|watch|results|rerun``.

Where the master is and the maintainer's API token come from, first found wins:

1. ``--master URL`` and ``--token TOKEN`` on the command line;
2. the environment: ``AUTOTUA_MASTER`` and ``AUTOTUA_TOKEN``;
3. the config file ``$XDG_CONFIG_HOME/autotua/jobuild.conf`` (``~/.config/autotua/jobuild.conf``;
   ``--config FILE`` or ``$AUTOTUA_CONFIG`` names another)::

       [master]
       url = https://autotua.example.org
       token = 0123456789abcdef0123456789abcdef01234567

The token is the one ``autotua-master createmaintainer NAME --fingerprint FPR --token`` printed (an
admin gives it to you); keep the file private (``chmod 600``): the tool warns when others can read it.
"""

from __future__ import annotations

import configparser
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from autotua import AutotuaError, __version__


class MasterError(AutotuaError):
    """The master refused or could not be reached; the message says why."""

    def __init__(self, message: str, status: int | None = None, code: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code


def config_path() -> Path:
    if os.environ.get("AUTOTUA_CONFIG"):
        return Path(os.environ["AUTOTUA_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "autotua" / "jobuild.conf"


@dataclass
class Settings:
    url: str
    token: str | None


def load_settings(url: str | None = None, token: str | None = None, config: str | None = None) -> Settings:
    """The master's URL and the token: options, then the environment, then the config file."""
    url = url or os.environ.get("AUTOTUA_MASTER")
    token = token or os.environ.get("AUTOTUA_TOKEN")
    path = Path(config) if config else config_path()
    if (not url or not token) and path.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error as e:
            raise AutotuaError(f"{path}: {e}") from None
        url = url or parser.get("master", "url", fallback=None)
        token = token or parser.get("master", "token", fallback=None)
        if parser.get("master", "token", fallback=None) and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
            print(f"!!! {path} holds your API token and others can read it: chmod 600 {path}", file=sys.stderr)
    if config and not path.is_file():
        raise AutotuaError(f"{path}: no such config file")
    if not url:
        raise AutotuaError(f"which master? give --master URL, or set AUTOTUA_MASTER, or write url = ... under "
                           f"[master] in {path}")
    return Settings(url.rstrip("/"), token or None)


class MasterClient:
    """Calls the master's ``/api/v1/`` as a person (``Authorization: Token ...``)."""

    def __init__(self, settings: Settings, timeout: float = 60):
        self.url = settings.url
        self.api = self.url + "/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"autotua-jobuild/{__version__}"
        if settings.token:
            self.session.headers["Authorization"] = f"Token {settings.token}"
        self.has_token = bool(settings.token)

    def _call(self, method: str, path: str, *, ok=(200,), **kw) -> requests.Response:
        try:
            r = self.session.request(method, self.api + path, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise MasterError(f"cannot reach the master at {self.url}: {e}") from None
        if r.status_code not in ok:
            try:
                body = r.json()
                detail, code = body.get("detail") or r.reason, body.get("code", "")
            except ValueError:
                detail, code = r.text.strip()[:300] or r.reason, ""
            if r.status_code == 401 and not self.has_token:
                detail += f" (no API token: give --token, set AUTOTUA_TOKEN, or write token = ... in {config_path()})"
            raise MasterError(f"{method} {path}: {r.status_code} {detail}", r.status_code, code)
        return r

    def job_url(self, job_id: int) -> str:
        """The job's page in the web UI."""
        return f"{self.url}/jobs/{job_id}/"

    # -- jobs ---------------------------------------------------------------------------------------
    def create_job(self, root: str, *, revision: str = "", arch: str = "", stage3: str = "",
                   notify: bool = False) -> dict:
        body = {"root": root, "revision": revision, "arch": arch, "stage3": stage3, "notify": notify}
        return self._call("POST", "/jobs/", json=body, ok=(201,)).json()

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/jobs/{job_id}/").json()

    def rerun(self, job_id: int, *, notify: bool | None = None) -> dict:
        return self._call("POST", f"/jobs/{job_id}/rerun", json={"notify": notify}, ok=(201,)).json()

    def log(self, job_id: int, run: str, index: int, offset: int) -> tuple[bytes, int]:
        """The bytes of a jobuild's log from ``offset`` on, and the log's size (0, 0 before it begins)."""
        r = self._call("GET", f"/jobs/{job_id}/runs/{run}/jobuilds/{index}/log", ok=(200, 206, 404, 416),
                       headers={"Range": f"bytes={offset}-"} if offset else {})
        if r.status_code == 404:  # not begun yet
            return b"", 0
        if r.status_code == 416:  # nothing new
            return b"", int(r.json().get("size", offset))
        if r.status_code == 206:
            return r.content, int(r.headers["Content-Range"].rpartition("/")[2])
        return r.content[offset:], len(r.content)

    def attachment(self, job_id: int, run: str, index: int, name: str) -> bytes:
        return self._call("GET", f"/jobs/{job_id}/runs/{run}/jobuilds/{index}/attachments/{name}").content
