"""Finding processes through /proc (no child process of our own): what a test left running.

* :func:`descendants` — live processes below a PID (by parent links);
* :func:`touching` — live processes whose root, working directory or command line lies below a path
  (a chrooted jobuild, ``nsenter ... chroot <root>``, a ``tar -C <dir>``);
* :func:`in_session` — live processes of a session (what a daemon started, unless it left the session);
* :func:`alive` — a PID that exists and is not a zombie.
"""

from __future__ import annotations

import contextlib
import os


def _stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def in_session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a daemon started with ``start_new_session``: its PID)."""
    return [p for p in _pids() if (f := _stat(p)) and f[0] != "Z" and int(f[3]) == sid and p != os.getpid()]


def descendants(pid: int) -> list[int]:
    """Live (not zombie) processes below ``pid``."""
    children: dict[int, list[int]] = {}
    state: dict[int, str] = {}
    for p in _pids():
        fields = _stat(p)
        if fields is None:
            continue
        state[p] = fields[0]
        children.setdefault(int(fields[1]), []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            if state.get(c) != "Z":
                found.append(c)
    return found


def _below(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def touching(path: str | os.PathLike) -> dict[int, str]:
    """Live processes whose root or cwd is at or below ``path``, or whose command line names a path
    below it: PID -> its command line."""
    prefix = os.path.realpath(path)
    me = os.getpid()
    found = {}
    for pid in _pids():
        if pid == me or not alive(pid):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        links = []
        for link in ("root", "cwd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/{link}"))
        if any(_below(p, prefix) for p in links) or any(prefix in a for a in argv):
            found[pid] = " ".join(argv)
    return found
