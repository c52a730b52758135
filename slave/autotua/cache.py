"""A small store of JSON values keyed by content digests, in SQLite (a file, or memory).

Metadata and signature checks are pure functions of file contents, so their results are cached by a
digest of those contents and never go stale; a changed file is simply a new key. SQLite (the stdlib
module) makes the file safe to share between processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading


class DigestCache:
    """``get``/``put`` JSON-able values under (namespace, key); one connection per thread."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = str(path) if path else ":memory:"
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the one shared in-memory connection
        self._memory: sqlite3.Connection | None = None
        if self.path == ":memory:":
            self._memory = self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=self.path != ":memory:")
        conn.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS cache (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
            " PRIMARY KEY (ns, key)) WITHOUT ROWID"
        )
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._memory is not None:
            return self._memory
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def get(self, ns: str, key: str):
        with self._lock:
            row = self._conn.execute("SELECT value FROM cache WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, ns: str, keys) -> dict:
        keys = list(keys)
        out = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, value FROM cache WHERE ns=? AND key IN ({marks})", (ns, *chunk)
                )
                out.update((k, json.loads(v)) for k, v in rows)
        return out

    def put(self, ns: str, key: str, value) -> None:
        self.put_many(ns, {key: value})

    def put_many(self, ns: str, items: dict) -> None:
        if not items:
            return
        with self._lock, self._conn as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO cache (ns, key, value) VALUES (?, ?, ?)",
                [(ns, k, json.dumps(v, sort_keys=True)) for k, v in items.items()],
            )

    def close(self) -> None:
        conn = self._memory or getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
