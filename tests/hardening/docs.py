"""The sections of docs/security.md that tests write: each between ``<!-- hardening:NAME -->`` and
``<!-- /hardening:NAME -->``, never edited by hand.

A test renders its section from what it found and calls :func:`write_section`. Figures that depend on
the machine (``fail_if_changed=False``) are simply rewritten; a section that only code changes can
change (the catalogue, the matrix) also fails the test when it was out of date, so a stale document
cannot pass: run the test, and commit the file it rewrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


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
    begin = f"<!-- hardening:{name} -->\n"
    head, rest = text.split(begin, 1)
    DOC.write_text(head + begin + body + rest[len(old):])
    if fail_if_changed:
        pytest.fail(f"{DOC}: the section {name!r} was out of date; it has been rewritten: review and commit it",
                    pytrace=False)
