"""Django's PostgreSQL backend, whose per-request health check asks the socket before the server, and
whose connections prepare the statements that ask for it.

``CONN_HEALTH_CHECKS`` makes Django run ``SELECT 1`` on a kept connection before the first query of
every request: a round trip and a statement for each slave call, to learn what the socket already
says. A server that ends a connection (a restart, ``pg_terminate_backend``, an idle timeout) sends a
``FATAL`` message and closes it, so an idle connection with nothing to read is usable; one with
something to read (or closed) gets Django's own ``SELECT 1`` check. A peer that vanished without a
word is found by the query that follows, as it would be one statement later with ``SELECT 1``.

:meth:`DatabaseWrapper.execute_prepared` runs the hot statements of :mod:`autotua_master.rows`: bound
on the server and prepared, through one psycopg cursor kept per connection, without the layers of
Django's cursor wrapper (which cost more than the statement). Django turns psycopg's preparation off
(``prepare_threshold=None``), so that not even ``prepare=True`` prepares; its ORM cursors bind on the
client and never prepare whatever the threshold, so an integer threshold changes nothing for them.
"""

from __future__ import annotations

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

from autotua_master.sockets import readable


class DatabaseWrapper(base.DatabaseWrapper):
    _prepared_cursor: psycopg.Cursor | None = None

    def execute_prepared(self, sql: str, params) -> psycopg.Cursor:
        """Run ``sql`` (``%s`` placeholders) prepared, in the current transaction; the cursor holds its rows.
        Errors are Django's (an ``IntegrityError`` is ``django.db.IntegrityError``)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        self.validate_no_broken_transaction()
        cursor = self._prepared_cursor
        if cursor is None or cursor.closed or cursor.connection is not self.connection:
            cursor = self._prepared_cursor = psycopg.Cursor(self.connection)
        with self.wrap_database_errors:
            cursor.execute(sql, params, prepare=True)
        return cursor

    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        if conn.prepare_threshold is None:
            conn.prepare_threshold = 2**31  # only what asks for it: prepare=True
        return conn

    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed:
            return False
        if conn.info.transaction_status == pq.TransactionStatus.IDLE:
            try:
                waiting = readable(conn.fileno())
            except (OSError, ValueError):
                return False
            if not waiting:
                return True
        return super().is_usable()
