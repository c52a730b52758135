"""The API client's transport: retries with backoff until retry_for, and a stop that abandons them."""

import socket
import threading
import time

import pytest

from autotua.slave.api import Api, AuthError, Interrupted, Unreachable, content_digest


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_an_unreachable_master_is_retried_then_reported():
    api = Api(closed_port(), "t", retry_for=2.5)
    t = time.monotonic()
    with pytest.raises(Unreachable, match=r"no answer from the master .*gave up after retrying"):
        api.heartbeat("run")
    assert 0.7 < time.monotonic() - t < 5  # it waited (1 s, give or take its jitter) and tried again


def test_stopping_abandons_the_retries():
    stop = threading.Event()
    api = Api(closed_port(), "t", retry_for=60, stop=stop)
    threading.Timer(0.5, stop.set).start()
    t = time.monotonic()
    with pytest.raises(Interrupted):
        api.finish("run", {"status": "error"})
    assert time.monotonic() - t < 3


def test_no_token_no_call():
    with pytest.raises(AuthError, match="register the slave first"):
        Api("http://127.0.0.1:9/").claim({})


def test_content_digest_is_rfc_9530():
    assert content_digest(b"hello world") == "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:"
