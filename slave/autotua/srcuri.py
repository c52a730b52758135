"""SRC_URI / PORTCONF_URI entries (``url`` or ``url -> name``) and ``mirror://`` names.

``mirror://<name>/<path>`` resolves through a mirror list, Gentoo's ``thirdpartymirrors`` idea: a
file of lines ``<name> <base-url> [<base-url>...]``. So the sample tree can name
``mirror://autotua-samples/...`` and each site (a test, the demo, a slave) says where that is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from autotua import AutotuaError

SCHEMES = ("http", "https", "ftp", "mirror")
_NAME_RE = re.compile(r"\A[A-Za-z0-9_+][A-Za-z0-9_.+,%~@=-]*\Z")
_MIRROR_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


class SrcUriError(AutotuaError, ValueError):
    """A malformed SRC_URI/PORTCONF_URI, or a mirror:// name nobody configured."""


@dataclass(frozen=True)
class Distfile:
    """One file to fetch: where from (as written) and the name it is stored under."""

    url: str
    name: str


def _check_name(name: str, where: str) -> None:
    if name in (".", "..") or not _NAME_RE.match(name):
        raise SrcUriError(f"{where}: {name!r} is not a usable file name (no '/', no leading '.' or '-')")


def parse_src_uri(text: str, variable: str = "SRC_URI") -> list[Distfile]:
    """Parse ``url [-> name] ...`` into distfiles, in order; the same name twice is an error."""
    tokens = text.split()
    out: list[Distfile] = []
    i = 0
    while i < len(tokens):
        url = tokens[i]
        where = f"{variable} entry {url!r}"
        if url == "->":
            raise SrcUriError(f"{variable}: '->' must follow a URL")
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.netloc:
            raise SrcUriError(f"{where}: not a URL with one of the schemes {', '.join(SCHEMES)}")
        if i + 1 < len(tokens) and tokens[i + 1] == "->":
            if i + 2 >= len(tokens):
                raise SrcUriError(f"{where}: '->' needs a file name after it")
            name = tokens[i + 2]
            i += 3
        else:
            name = unquote(parts.path.rsplit("/", 1)[-1])
            i += 1
            if not name:
                raise SrcUriError(f"{where}: the URL names no file; add '-> <name>'")
        _check_name(name, where)
        if any(d.name == name for d in out):
            raise SrcUriError(f"{variable}: the file name {name!r} is used twice")
        out.append(Distfile(url, name))
    return out


class Mirrors:
    """``mirror://`` names -> base URLs, tried in order."""

    def __init__(self, mapping: Mapping[str, Iterable[str]] | None = None):
        self.mapping: dict[str, list[str]] = {}
        for name, urls in (mapping or {}).items():
            if not _MIRROR_RE.match(name):
                raise SrcUriError(f"mirror name {name!r} is not a word")
            self.mapping[name] = [u.rstrip("/") for u in urls]

    @classmethod
    def parse(cls, text: str, source: str = "mirrors") -> Mirrors:
        mapping: dict[str, list[str]] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) < 2:
                raise SrcUriError(f"{source}, line {lineno}: expected '<name> <url> [<url>...]'")
            mapping.setdefault(words[0], []).extend(words[1:])
        return cls(mapping)

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> Mirrors:
        if not path:
            return cls()
        with open(path) as f:
            return cls.parse(f.read(), str(path))

    def resolve(self, url: str) -> list[str]:
        """The URLs to try for ``url``; a mirror:// URL becomes one per configured base."""
        parts = urlsplit(url)
        if parts.scheme != "mirror":
            return [url]
        bases = self.mapping.get(parts.netloc)
        if not bases:
            raise SrcUriError(f"{url}: no mirror named {parts.netloc!r} is configured")
        path = parts.path.lstrip("/")
        return [f"{base}/{path}" for base in bases]

    def to_json(self) -> dict[str, list[str]]:
        return dict(self.mapping)
