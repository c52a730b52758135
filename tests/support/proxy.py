"""A small TCP proxy to put between a slave and its master, that can cut, stall or lose what passes.

    with FaultyProxy("127.0.0.1", master.port) as proxy:    # proxy.url: give it to the slave
        proxy.refuse()          # every connection is reset, new ones too (a partition)
        proxy.stall()           # connections stay open, nothing moves either way (a black hole)
        proxy.lose_answers(3)   # the next 3 answers of the master are dropped, the connection reset:
                                # the master did the work, the slave never hears of it
        proxy.lose_every(3, "/api/")  # from now on every 3rd answer to a request under /api/ is lost
        proxy.lose_first("/api/")     # the first answer to each request (method and path) under /api/
                                      # is lost: every kind of call is repeated once
        proxy.forward()         # back to normal; stalled bytes move on

A connection is one thread that moves bytes both ways with ``select``; each mode change takes
effect within 50 ms. To count answers it reads just enough HTTP: a chunk from the client that
starts with a request line starts a request (the slave's client never pipelines). Resets are
real TCP resets (``SO_LINGER`` 0), as a NAT box or a dying router sends them.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading

FORWARD, REFUSE, STALL = "forward", "refuse", "stall"
_REQUEST_LINE = re.compile(rb"\A([A-Z]{3,7}) (/\S*) HTTP/1\.[01]\r\n")


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultyProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = FORWARD
        self.to_lose = 0
        self.every: tuple[int, str] | None = None
        self.first: str | None = None
        self.seen: set[str] = set()
        self.answers = 0
        self.lost: list[str] = []  # "METHOD /path" of each answer lost
        self.lock = threading.Lock()
        self.stats = {"connections": 0, "reset": 0, "answers": 0, "answers_lost": 0}
        self._stop = threading.Event()
        self._conns: set[tuple[socket.socket, socket.socket]] = set()
        self._thread = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)

    # -- modes ---------------------------------------------------------------------------------------
    def forward(self) -> None:
        with self.lock:
            self.mode, self.to_lose, self.every, self.first = FORWARD, 0, None, None

    def refuse(self) -> None:
        with self.lock:
            self.mode = REFUSE
            conns = list(self._conns)
        for pair in conns:
            self._cut(pair)

    def stall(self) -> None:
        with self.lock:
            self.mode = STALL

    def lose_answers(self, n: int) -> None:
        with self.lock:
            self.mode, self.to_lose = FORWARD, n

    def lose_every(self, k: int, prefix: str = "/") -> None:
        with self.lock:
            self.mode, self.every, self.answers = FORWARD, (k, prefix), 0

    def lose_first(self, prefix: str = "/") -> None:
        with self.lock:
            self.mode, self.first, self.seen = FORWARD, prefix, set()

    def _lose(self, request: str) -> bool:
        """Whether the answer that starts now (to ``METHOD /path``) is lost (holding the lock)."""
        self.stats["answers"] += 1
        path = request.split(" ", 1)[-1]
        lose = False
        if self.to_lose > 0:
            self.to_lose -= 1
            lose = True
        elif self.every and path.startswith(self.every[1]):
            self.answers += 1
            lose = self.answers % self.every[0] == 0
        elif self.first is not None and path.startswith(self.first) and request not in self.seen:
            self.seen.add(request)
            lose = True
        if lose:
            self.stats["answers_lost"] += 1
            self.lost.append(request)
        return lose

    # -- the works -----------------------------------------------------------------------------------
    def _cut(self, pair) -> None:
        with self.lock:
            if pair not in self._conns:
                return
            self._conns.discard(pair)
            self.stats["reset"] += 1
        for s in pair:
            _reset(s)

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.05)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            with self.lock:
                self.stats["connections"] += 1
                refused = self.mode == REFUSE
            if refused:
                self.stats["reset"] += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            pair = (client, server)
            with self.lock:
                self._conns.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair) -> None:
        client, server = pair
        path, answering = "", True
        try:
            while not self._stop.is_set():
                with self.lock:
                    if pair not in self._conns:
                        return
                    mode = self.mode
                if mode == STALL:
                    self._stop.wait(0.05)
                    continue
                try:
                    ready, _, _ = select.select([client, server], [], [], 0.05)
                except (OSError, ValueError):
                    return
                for sock in ready:
                    other = server if sock is client else client
                    try:
                        data = sock.recv(1 << 16)
                    except OSError:
                        data = b""
                    if not data:
                        self._cut(pair)
                        return
                    if sock is client and (m := _REQUEST_LINE.match(data)):
                        path, answering = (m[1] + b" " + m[2]).decode(errors="replace"), False
                    elif sock is server and not answering:
                        answering = True
                        with self.lock:
                            lose = self._lose(path)
                        if lose:
                            self._cut(pair)
                            return
                    try:
                        other.sendall(data)
                    except OSError:
                        self._cut(pair)
                        return
        finally:
            self._cut(pair)

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            self.listener.close()
        with self.lock:
            conns = list(self._conns)
        for pair in conns:
            self._cut(pair)

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
