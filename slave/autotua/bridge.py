"""The Python side of ``jobuild.sh``'s record protocol.

``jobuild.sh`` writes one ``KEY=value`` record per line on a dedicated descriptor (never mixed with
the log), with ``\\`` and newline escaped as ``\\\\`` and ``\\n``. Metadata records are the jobuild's
variables; the bridge's own records are ``AUTOTUA_*``:

==========================  =================================================
``AUTOTUA_PHASE_START``     ``<phase> <epoch time>``
``AUTOTUA_PHASE_END``       ``<phase> <exit status> <epoch time>``
``AUTOTUA_RESULT``          ``<key> <value>`` (from ``result``)
``AUTOTUA_ATTACH``          ``<file in the attachment directory> <label>``
``AUTOTUA_DIE``             ``<phase> <message>`` (from ``die``)
``AUTOTUA_ERROR``           ``<kind> <message>`` (depend mode)
``AUTOTUA_END``             ``<nonce> <status>`` (depend mode, end of a request)
==========================  =================================================
"""

from __future__ import annotations

import os
from importlib import resources

PHASES = ("pkg_setup", "src_unpack", "src_compile", "src_test")
METADATA_KEYS = ("DESCRIPTION", "SRC_URI", "PORTCONF_URI", "DEPEND", "SIDEPEND", "ARCH", "STAGE3", "PARAMETERS")


def jobuild_sh() -> str:
    """Path of the shipped ``jobuild.sh``."""
    path = resources.files("autotua").joinpath("jobuild.sh")
    return os.fspath(path)


def unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_record(line: str) -> tuple[str, str] | None:
    """``KEY=value`` -> (key, unescaped value); None for a line that is not a record."""
    key, sep, value = line.rstrip("\n").partition("=")
    if not sep or not key or not all(c.isalnum() or c == "_" for c in key):
        return None
    return key, unescape(value)
