"""The API's JSON parser: DRF's, with limits a body from anyone on the network must meet.

* nesting at most :data:`MAX_DEPTH` levels (Python's decoder would recurse until ``RecursionError``
  — a 500 — on ``[[[[...]]]]``);
* no NUL and no lone UTF-16 surrogate in any string or key: nothing we store may hold them
  (PostgreSQL's ``jsonb`` and ``text`` refuse both, so they would fail at the database instead).

Each is a ``400`` ``parse_error`` naming the fault, before any view sees the data. The walk over the
value is skipped when the body's bytes say it cannot find anything (fewer brackets than the depth
limit; no ``\\u`` escape, the only way JSON spells a NUL or a surrogate): a slave's call never needs it.
"""

from __future__ import annotations

import io
import re

from django.conf import settings
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


def _may_offend(body: bytes, encoding: str) -> bool:
    """Whether ``body`` could nest too deep or hold a refused character (else :func:`_check` finds nothing)."""
    if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return True  # in UTF-16 a backslash is not the byte b"\\"
    return body.count(b"[") + body.count(b"{") > MAX_DEPTH or b"\\u" in body


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep") from None
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        if _may_offend(body, encoding):
            _check(data)
        return data
