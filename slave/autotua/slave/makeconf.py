"""The slave's portage defaults in the job: its ``make.conf`` block and, opt-in, a signed binhost.

The keeper writes the job's ``/etc/portage/make.conf`` as the stage3's own ``make.conf`` followed by
:func:`make_conf`'s block, *before* PORTCONF is unpacked (docs/slave.md, "Portage in the job"):

* the block extends the stage3's settings (``FEATURES="${FEATURES} ..."``, incremental as portage's
  FEATURES are) and sets what the slave decides: ``MAKEOPTS`` from the CPU share it gives the job,
  the FEATURES that work in the job container, ``DISTDIR``/``PKGDIR`` where it mounts them, and
  ``GENTOO_MIRRORS`` from the slave's ``[mirrors]`` ``gentoo`` entry, when it has one;
* a PORTCONF tarball extends it with ``etc/portage/package.*``, ``env/``... and overrides it by
  shipping ``etc/portage/make.conf``, which *replaces* the file as a Gentoo user's own make.conf
  would. DISTDIR and PKGDIR are portage's default locations, so a replaced make.conf still uses the
  slave's DISTDIR layer and binary package cache; the block stays at ``/etc/portage/autotua.conf``
  for a PORTCONF make.conf to ``source``.

With ``binhost`` set (a URL such as Gentoo's official
``https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64``), the job also gets
``/etc/portage/binrepos.conf/autotua.conf`` and ``FEATURES="getbinpkg binpkg-request-signature"``:
portage then installs dependencies from it only when their signature verifies (its trust helper,
``getuto``, sets up Gentoo's keys, as on any Gentoo machine).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

#: FEATURES portage runs with in the job container: its sandbox (where sys-apps/sandbox is
#: installed, as in every real stage3; portage says so and goes on without it elsewhere), building
#: as the portage user, and its own IPC, network and PID namespaces (the job's user namespace lets
#: it make them); ``buildpkg`` fills the slave's binary package cache
FEATURES = ("sandbox", "usersandbox", "userpriv", "ipc-sandbox", "network-sandbox", "pid-sandbox", "buildpkg")
BINHOST_FEATURES = ("getbinpkg", "binpkg-request-signature")
#: emerge's defaults: use binary packages, but only those built with the same USE flags and dependencies
EMERGE_OPTS = ("--usepkg", "--binpkg-respect-use=y", "--binpkg-changed-deps=y")
DISTDIR = "/var/cache/distfiles"
PKGDIR = "/var/cache/binpkgs"
AUTOTUA_CONF = "etc/portage/autotua.conf"
BINREPOS_CONF = "etc/portage/binrepos.conf/autotua.conf"


def jobs(cpus: float) -> int:
    """Parallel make jobs for a CPU share: the quota rounded up, or every CPU of the host without one."""
    return max(1, math.ceil(cpus)) if cpus else max(1, os.cpu_count() or 1)


def make_conf(cpus: float, binhost: str = "", gentoo_mirrors: Iterable[str] = ()) -> str:
    """The slave's block of the job's ``make.conf``; ``gentoo_mirrors``: the slave's ``[mirrors]``
    ``gentoo`` entry, portage's GENTOO_MIRRORS (where it fetches distfiles first)."""
    n = jobs(cpus)
    features = FEATURES + (BINHOST_FEATURES if binhost else ())
    mirrors = " ".join(m for m in gentoo_mirrors if m and '"' not in m and "$" not in m and "\\" not in m)
    return (
        "# The AutotuA slave's portage defaults (docs/slave.md, \"Portage in the job\"); a PORTCONF's\n"
        "# etc/portage/make.conf replaces this file (and may `source /etc/portage/autotua.conf`).\n"
        f'MAKEOPTS="-j{n} -l{n}"\n'
        f'FEATURES="${{FEATURES}} {" ".join(features)}"\n'
        f'EMERGE_DEFAULT_OPTS="${{EMERGE_DEFAULT_OPTS}} {" ".join(EMERGE_OPTS)}"\n'
        f'DISTDIR="{DISTDIR}"\n'
        f'PKGDIR="{PKGDIR}"\n'
        + (f'GENTOO_MIRRORS="{mirrors}"\n' if mirrors else "")
    )


def binrepos_conf(binhost: str) -> str:
    """portage's ``binrepos.conf`` entry for the opt-in binhost ("" without one)."""
    if not binhost:
        return ""
    return f"[autotua-binhost]\npriority = 1\nsync-uri = {binhost}\n"


def portage_spec(cpus: float, binhost: str = "", gentoo_mirrors: Iterable[str] = ()) -> dict:
    """What the keeper writes into the job's root (``{"make_conf", "binrepos_conf"}``)."""
    return {"make_conf": make_conf(cpus, binhost, gentoo_mirrors), "binrepos_conf": binrepos_conf(binhost)}


def job_make_conf(stage3_make_conf: str, block: str) -> str:
    """The job's ``/etc/portage/make.conf``: the stage3's, then the slave's block."""
    base = stage3_make_conf if not stage3_make_conf or stage3_make_conf.endswith("\n") else stage3_make_conf + "\n"
    return f"{base}\n{block}" if base else block
