"""The API's JSON parser: DRF's, with limits a body from anyone on the network must meet.

* nesting at most :data:`MAX_DEPTH` levels (Python's decoder would recurse until ``RecursionError``
  — a 500 — on ``[[[[...]]]]``);
* no NUL and no lone UTF-16 surrogate in any string or key: nothing we store may hold them
  (PostgreSQL's ``jsonb`` and ``text`` refuse both, so they would fail at the database instead).

Each is a ``400`` ``parse_error`` naming the fault, before any view sees the data.
"""

from __future__ import annotations

import re

from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: the deepest a request body may nest (the deepest the protocol needs is 3: result -> phases -> phase)
MAX_DEPTH = 32

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _check(value, limit: int = MAX_DEPTH) -> None:
    """Raise ParseError when ``value`` nests deeper than ``limit`` or holds a string we refuse."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            m = _BAD_CHAR.search(item)
            if m:
                raise ParseError(f"JSON parse error - strings may not hold U+{ord(m[0]):04X}")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            raise ParseError(f"JSON parse error - nested more than {limit} levels deep")
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        else:
            stack.extend((v, depth + 1) for v in item)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep") from None
        _check(data)
        return data
