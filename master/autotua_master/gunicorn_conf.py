"""gunicorn's settings for the master (docs/master.md, contrib/systemd/autotua-master.service)::

    gunicorn -c python:autotua_master.gunicorn_conf --bind 127.0.0.1:8000 autotua_master.wsgi

Threaded workers (``gthread``): a long-poll (a claim with nothing to do, a result waiting for a
SIDEPEND: :mod:`autotua_master.jobs.wakeup`) holds one thread, no database connection and next to no
CPU while it waits; bench/longpoll.py measured this against an ASGI worker (docs/master.md, The
server model). Each worker keeps a quarter of its threads (at least two) for calls that must not
wait behind long-polls — heartbeats, logs, results; a claim that finds every other thread holding a
long-poll is answered at once, as before long-polls.

On SIGTERM (a graceful stop or restart) every long-poll of the worker is answered at once (``retry_after:
1``), so the stop waits for no long-poll: the slaves ask the next master a second later.

Every value here can be overridden on the command line (``--workers``, ``--threads``...) or through
``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import signal

wsgi_app = "autotua_master.wsgi:application"
worker_class = "gthread"
workers = 4
#: each long-polling slave holds a thread for up to AUTOTUA_LONGPOLL_SECONDS: give the workers together
#: about as many threads as there are slaves (1,000 slaves: --workers 4 --threads 320)
threads = 64
timeout = 120
graceful_timeout = 30
# idle kept-alive connections stay open a while: closing them after gunicorn's default 2 s races a
# client's next request on them (a reset POST is not retried)
keepalive = 30
backlog = 2048


def reserved(threads: int) -> int:
    """The threads a worker keeps from long-polls, for the calls that must not wait."""
    return max(2, threads // 4)


def post_worker_init(worker) -> None:
    from autotua_master.jobs.wakeup import registry

    registry.configure(limit=max(0, worker.cfg.threads - reserved(worker.cfg.threads)))
    graceful = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        registry.shutdown()  # every long-poll answers now; then gunicorn's own graceful stop
        if callable(graceful):
            graceful(signum, frame)

    signal.signal(signal.SIGTERM, stop)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it: system calls are not interrupted
