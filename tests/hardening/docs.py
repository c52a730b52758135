"""The sections of docs/security.md that tests write: each between ``<!-- hardening:NAME -->`` and
``<!-- /hardening:NAME -->``, never edited by hand.

A test renders its section from what it found and calls :func:`write_section`. The file is written only
when asked (``make docs``, which sets ``AUTOTUA_WRITE_DOCS=1``): a test run never rewrites a tracked file.
Otherwise a section that only code changes can change (the catalogue, the matrix) fails the test when
it is out of date, so a stale document cannot pass (run ``make docs`` and commit); figures that depend
on the machine (``fail_if_changed=False``) are left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def writing() -> bool:
    """Whether this run may rewrite the generated parts of the documents (``make docs``)."""
    return os.environ.get("AUTOTUA_WRITE_DOCS", "") not in ("", "0", "no", "false")


def section(name: str, text: str | None = None) -> str:
    """The current text of section ``name`` (``text``: of that document text instead of the file)."""
    text = DOC.read_text() if text is None else text
    begin, end = f"<!-- hardening:{name} -->\n", f"<!-- /hardening:{name} -->"
    if begin not in text or end not in text:
        raise AssertionError(f"{DOC} has no section {begin.strip()} ... {end}")
    return text.split(begin, 1)[1].split(end, 1)[0]


def write_section(name: str, body: str, *, fail_if_changed: bool = True) -> None:
    text = DOC.read_text()
    old = section(name, text)
    if old == body:
        return
    if writing():
        begin = f"<!-- hardening:{name} -->\n"
        head, rest = text.split(begin, 1)
        DOC.write_text(head + begin + body + rest[len(old):])
    elif fail_if_changed:
        pytest.fail(f"{DOC}: the section {name!r} is out of date: run `make docs`, review and commit it",
                    pytrace=False)
