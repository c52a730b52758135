"""Jobuild versions: dotted non-negative integers compared component by component as numbers.

The format is deliberately smaller than portage's (no letters, suffixes or revisions). The rules:

* ``1.10 > 1.9``: components are numbers, not strings.
* Trailing zeros are significant, as in portage: ``1.0 < 1.0.0`` and ``=x-1.0`` does not match
  ``x-1.0.0``. Two files ``x-1.0.jobuild`` and ``x-1.0.0.jobuild`` are two different versions.
* A component has no leading zero (``1.05`` is refused): portage gives such components a special
  string comparison, and we would rather refuse than surprise.
"""

from __future__ import annotations

import functools
import re

from autotua import AutotuaError

_COMPONENT = r"(?:0|[1-9][0-9]*)"
VERSION_PATTERN = rf"{_COMPONENT}(?:\.{_COMPONENT})*"
_VERSION_RE = re.compile(rf"\A{VERSION_PATTERN}\Z")


class VersionError(AutotuaError, ValueError):
    """A version string that is not dotted integers."""


@functools.total_ordering
class Version:
    """A parsed version; hashable, ordered, printed as written."""

    __slots__ = ("components", "text")

    def __init__(self, text: str):
        if not isinstance(text, str) or not _VERSION_RE.match(text):
            raise VersionError(f"invalid version {text!r}: {_why_invalid(text)}")
        self.text = text
        self.components = tuple(int(c) for c in text.split("."))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.components == other.components

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        # Tuple order is exactly the rule: numeric per component, a longer version with an equal
        # prefix is the greater one (1.0 < 1.0.0).
        return self.components < other.components

    def __hash__(self) -> int:
        return hash(self.components)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def _why_invalid(text: object) -> str:
    if not isinstance(text, str):
        return "not a string"
    if not text:
        return "it is empty"
    for part in text.split("."):
        if part == "":
            return "an empty component (two dots, or a dot at an end)"
        if not part.isascii() or not part.isdigit():
            return f"component {part!r} is not a number (versions are dotted integers like 1.2.3)"
        if len(part) > 1 and part.startswith("0"):
            return f"component {part!r} has a leading zero"
    return "not dotted integers"
