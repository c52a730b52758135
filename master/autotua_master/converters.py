"""URL converters: ``<id:...>`` is a database id or index, at most 18 digits.

Django's ``<int:...>`` matches any run of digits; a number past the database's 64-bit integers then
reaches a query and fails there (SQLite: ``OverflowError``, a 500). An id this converter does not
match is simply a URL that does not exist (404).
"""

from __future__ import annotations

from django.urls import register_converter

#: digits of the largest id a URL may name (below 2**63 - 1, the largest 64-bit integer)
ID_DIGITS = 18
ID_RE = rf"[0-9]{{1,{ID_DIGITS}}}"


class IdConverter:
    regex = ID_RE

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
