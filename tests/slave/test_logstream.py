"""The log stream: bytes go to a file, then to the master in chunks; resends from where the master says."""

import pytest

from autotua.slave.api import ApiError, LogGap
from autotua.slave.logstream import LogStream


class Receiver:
    """Appends chunks as the protocol says: a chunk starting past the end is a 416 with the offset."""

    def __init__(self, lose_first_answer=False):
        self.data = b""
        self.calls = []
        self.lose = lose_first_answer

    def __call__(self, offset, chunk):
        self.calls.append((offset, len(chunk)))
        if offset > len(self.data):
            raise LogGap("gap", 416, "offset_gap", {"offset": len(self.data)})
        assert self.data[offset:offset + len(chunk)] == chunk[: len(self.data) - offset]
        self.data = self.data[:offset] + chunk if offset + len(chunk) > len(self.data) else self.data
        if self.lose:
            self.lose = False
            raise LogGap("pretend the answer got lost and we resent too far", 416, "", {"offset": len(self.data)})
        return len(self.data)


def test_chunks_and_final_flush(tmp_path):
    r = Receiver()
    s = LogStream(tmp_path / "log", r, chunk=1000, interval=3600)
    for i in range(50):
        s.write(f"line {i}\n".encode() * 10)
        s.tick()
    assert all(n <= 1000 for _, n in r.calls)
    assert s.close() == len(r.data) == (tmp_path / "log").stat().st_size
    assert r.data == (tmp_path / "log").read_bytes()


def test_resend_from_where_the_master_says(tmp_path):
    r = Receiver(lose_first_answer=True)
    s = LogStream(tmp_path / "log", r, chunk=10)
    s.write(b"0123456789abcdefghij")
    s.sent = 15  # we wrongly believe more was stored
    s.close()
    assert r.data == b"0123456789abcdefghij"


def test_a_master_that_holds_more_than_we_wrote_is_an_error(tmp_path):
    s = LogStream(tmp_path / "log", lambda off, data: 10_000, chunk=10)
    s.write(b"abc")
    with pytest.raises(ApiError, match="holds 10000 bytes"):
        s.flush()


def test_without_a_master_it_is_just_a_file(tmp_path):
    s = LogStream(tmp_path / "log")
    s.note("timed out")
    assert s.close() == len(b"\n>>> autotua-slave: timed out\n")
