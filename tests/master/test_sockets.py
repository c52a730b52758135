"""autotua_master.sockets: what a socket says without a read, for descriptors above select()'s 1024
too (a master holding a thousand long-polls has them)."""

from __future__ import annotations

import os
import resource
import socket

import pytest

from autotua_master.sockets import peer_gone, readable


@pytest.fixture(params=["low", "high"])
def pair(request):
    a, b = socket.socketpair()
    if request.param == "high":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= 2000:
            pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
        high = socket.socket(fileno=os.dup2(a.fileno(), 2000))
        a.close()
        a = high
    yield a, b
    a.close()
    b.close()


def test_readable_and_peer_gone(pair):
    a, b = pair
    assert (readable(a.fileno()), peer_gone(a)) == (False, False)  # a quiet connection
    b.send(b"x")
    assert (readable(a.fileno()), peer_gone(a)) == (True, False)   # more from a client that is there
    b.close()
    assert peer_gone(a)                                            # its peer closed it


def test_a_socket_closed_here_is_not_judged():
    a, b = socket.socketpair()
    a.close()
    assert not peer_gone(a)
    b.close()
