"""``autotua-slave``: takes jobs from the master and runs their jobuilds in a fresh job container.

One module per step of the pipeline (see docs/slave.md)::

    config     the TOML file                      api        the master's REST API, retried
    claim      claim + background heartbeat       sync       tree branch, signatures, digests
    stage3     Gentoo's autobuilds, verified      distfiles  SRC_URI/PORTCONF_URI, verified
    tarball    checking and unpacking tarballs    rootfs     stage3 cache, overlayfs roots
    trust      whose jobs run here                preflight  what the host must have
    container  the job container (a package)      phases     jobuild.sh, streamed, timed
    job        one job, start to finish           cleanup    teardown and crash recovery
    daemon     the loop, signals, the lock        cli        the ``autotua-slave`` command

The slave runs as root on a volunteer's machine, so every step fails closed: nothing is sourced
before its signature verifies, nothing fetched is used before its digests do, and no file is
deleted below a path that still has something mounted under it.
"""

from autotua import AutotuaError


class SlaveError(AutotuaError):
    """An infrastructure fault of one job (the job finishes as ``error`` with this message)."""

    def __init__(self, message: str, step: str = ""):
        super().__init__(f"{step}: {message}" if step else message)
        self.step = step


class Cancelled(Exception):
    """The master asked us to stop the job (heartbeat or result answer), or the run is over."""

    def __init__(self, reason: str, run_over: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.run_over = run_over


class Stopped(Exception):
    """The slave itself is stopping (SIGTERM or SIGINT)."""

    def __init__(self, reason: str, at_once: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.at_once = at_once
