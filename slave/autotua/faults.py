"""A test hook: kill this process at a named point, so that the fault-matrix tests
(``tests/reliability/``) can stop the slave or the master at an exact step of its work.

Nothing sets ``AUTOTUA_FAULTS`` outside those tests; without it :func:`point` returns at once.

``AUTOTUA_FAULTS=<file>`` names a file of *armed* points, one per line: ``<pattern> [<n>]``.
:func:`point` ``(name)`` finds the first line whose pattern (``fnmatch``) matches ``name``; on the
``n``-th such call (default: the first) it takes the line out of the file, appends
``<name> <epoch> <pid>`` to ``<file>.fired`` and sends SIGKILL to its own process: no handler, no
``finally``, no flush runs, exactly as when the machine loses power under that process. The file
is read and rewritten under an ``flock``, so every process given the variable (gunicorn's workers,
a slave and its restarts) shares the count, and a point fires once: the process that replaces the
dead one does not fire it again.

Point names are ``<step>[:<detail>]``, e.g. ``stage3:unpack``, ``phase:bob/faulty-1.0:src_test``,
``fetch:stage3-amd64-openrc-20261117T170000Z.tar.xz``, ``master:log:committed``; each is documented
where it is called.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

ENV = "AUTOTUA_FAULTS"


def point(name: str) -> None:
    """SIGKILL this process here if ``name`` is armed (see the module's doc); else do nothing."""
    path = os.environ.get(ENV)
    if path and _take(path, name):
        with open(f"{path}.fired", "a") as f:
            f.write(f"{name} {time.time():.3f} {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _take(path: str, name: str) -> bool:
    """Count one call of ``name`` against the armed lines; True when it must fire now."""
    import fnmatch

    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+") as f:
            lines = f.read().splitlines()
            for i, line in enumerate(lines):
                words = line.split()
                if not words or not fnmatch.fnmatchcase(name, words[0]):
                    continue
                left = int(words[1]) if len(words) > 1 else 1
                if left > 1:
                    lines[i] = f"{words[0]} {left - 1}"
                else:
                    del lines[i]
                f.seek(0)
                f.truncate()
                f.write("".join(f"{x}\n" for x in lines))
                f.flush()
                return left <= 1
            return False
    finally:
        os.close(fd)
