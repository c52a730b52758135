"""What a socket says without a read: data waiting, or its peer gone.

``poll(2)``, not ``select(2)``: a master holding many long-polls has descriptors above
``FD_SETSIZE`` (1024), which ``select`` cannot watch.
"""

from __future__ import annotations

import select


def readable(fd: int) -> bool:
    """Something to read now on ``fd`` (data, an end of file, or an error)."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLPRI)
    return bool(p.poll(0))


def peer_gone(sock) -> bool:
    """The other end of a connected socket closed or reset it: nobody will read an answer. Linux's
    ``POLLRDHUP`` says so without reading (the master runs on Linux).

    A client that sent more (a pipelined request) is still there; so is a socket already closed here
    (it is not ours to judge)."""
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return False
    if fd < 0:
        return False
    p = select.poll()
    p.register(fd, select.POLLRDHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))
