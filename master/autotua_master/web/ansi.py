"""A log's ANSI colours as HTML, for the excerpts the job page shows (the log page does the same in
log.js, in the browser).

Nothing of the log becomes markup: the text is cut at each escape sequence, every piece is escaped,
and the only markup is ``<span class="...">`` with classes built here from the SGR numbers parsed
(``ansi-31``, ``ansi-bold``): a log saying ``<script>`` shows ``<script>``. Other escape sequences are
dropped; a line shows what a terminal would after its last carriage return.
"""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

_ESC_RE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
_COLOURS = frozenset([*range(30, 38), *range(90, 98)])
_HEADER_RE = re.compile(r">>> Running (pkg_setup|src_unpack|src_compile|src_test)\Z")


def _sgr(state: dict, params: str) -> None:
    codes = [int(c) if c.isdigit() else 0 for c in params.split(";")] if params else [0]
    for c in codes:
        if c == 0:
            state["fg"], state["bold"] = None, False
        elif c == 1:
            state["bold"] = True
        elif c == 22:
            state["bold"] = False
        elif c in _COLOURS:
            state["fg"] = c
        elif c == 39:
            state["fg"] = None


def _line(text: str, state: dict) -> str:
    cr = text.rfind("\r", 0, len(text) - 1)
    if cr >= 0:
        text = text[cr + 1:]
    text = text.removesuffix("\r")
    out, last, plain = [], 0, []

    def put(piece: str) -> None:
        piece = piece.replace("\x1b", "")
        if not piece:
            return
        plain.append(piece)
        classes = ([f"ansi-{state['fg']}"] if state["fg"] else []) + (["ansi-bold"] if state["bold"] else [])
        out.append(f'<span class="{" ".join(classes)}">{escape(piece)}</span>' if classes else escape(piece))

    for m in _ESC_RE.finditer(text):
        put(text[last:m.start()])
        if m.group(2) == "m":
            _sgr(state, m.group(1))
        last = m.end()
    put(text[last:])
    header = _HEADER_RE.match("".join(plain))
    attrs = ' class="line"'
    if header:
        first = header.group(1) not in state["phases"]  # the first header of a phase is where it began
        state["phases"].add(header.group(1))
        attrs = f' class="line phase" id="phase-{header.group(1)}"' if first else ' class="line phase"'
    return f"<span{attrs}>{''.join(out)}\n</span>"


def to_html(text: str) -> SafeString:
    """Log text (lines) as HTML spans, one per line, colours as classes; everything escaped."""
    state = {"fg": None, "bold": False, "phases": set()}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return mark_safe("".join(_line(line, state) for line in lines))
