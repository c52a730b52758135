"""Atoms (``[op]user/name[-ver]``), jobuild identities (``user/name-ver``) and DEPEND strings.

As in portage, a version in an atom needs an operator (``=alice/foo-1.0``, never ``alice/foo-1.0``),
an unversioned atom means "any version, the highest preferred", and ``|| ( a b )`` is an any-of group
whose leftmost satisfiable member wins. Plain ``( a b )`` groups (all of them) may appear inside it.

An atom may name the parameter values its jobuild is to run with, as Gentoo writes USE dependencies:
``alice/foo[mode=fast,atom==app-misc/hello-1.0]`` (values percent-encoded where they would hold
whitespace, ``,``, ``[``, ``]`` or ``%``; see :mod:`autotua.params`). They do not change which
jobuilds the atom matches; they say what the chosen one is run with.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from autotua import AutotuaError
from autotua.params import ParameterError, encode, parse_bracket
from autotua.version import VERSION_PATTERN, Version, VersionError

OPERATORS = (">=", "<=", "=", ">", "<")  # longest first, so ">=" is not read as ">"

USER_PATTERN = r"[a-z0-9][a-z0-9_.-]*"
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_+-]*"
RESERVED_USERS = frozenset({"overlays"})
RESERVED_NAMES = frozenset({"templates", "files"})

_USER_RE = re.compile(rf"\A{USER_PATTERN}\Z")
_NAME_RE = re.compile(rf"\A{NAME_PATTERN}\Z")
_NAME_VERSION_RE = re.compile(rf"\A(?P<name>{NAME_PATTERN}?)-(?P<version>{VERSION_PATTERN})\Z")


class AtomError(AutotuaError, ValueError):
    """A malformed atom, jobuild identity or DEPEND string; the message names it and the fault."""


def _check_user(user: str, whole: str) -> None:
    if not _USER_RE.match(user):
        raise AtomError(
            f"invalid atom {whole!r}: maintainer {user!r} must be lower-case letters, digits, '_', '.', '-'"
        )
    if user in RESERVED_USERS:
        raise AtomError(f"invalid atom {whole!r}: {user!r} is reserved, not a maintainer")


def _check_name(name: str, whole: str) -> None:
    if not name:
        raise AtomError(f"invalid atom {whole!r}: the jobuild name is empty")
    if not _NAME_RE.match(name):
        raise AtomError(f"invalid atom {whole!r}: name {name!r} may hold only letters, digits, '_', '+', '-'")
    if name in RESERVED_NAMES:
        raise AtomError(f"invalid atom {whole!r}: {name!r} is a reserved directory name")
    if _NAME_VERSION_RE.match(name):
        raise AtomError(f"invalid atom {whole!r}: name {name!r} must not end in '-<version>'")


def _split_user(text: str, whole: str) -> tuple[str, str]:
    if text.count("/") != 1:
        raise AtomError(f"invalid atom {whole!r}: expected <user>/<name>, with exactly one '/'")
    user, rest = text.split("/")
    _check_user(user, whole)
    return user, rest


@dataclass(frozen=True, order=True)
class JobuildId:
    """One jobuild of the tree: ``user/name-version`` (portage's cpv)."""

    user: str
    name: str
    version: Version

    @classmethod
    def parse(cls, text: str) -> JobuildId:
        user, rest = _split_user(text.strip(), text)
        m = _NAME_VERSION_RE.match(rest)
        if not m:
            raise AtomError(f"invalid jobuild {text!r}: expected <user>/<name>-<version>")
        _check_name(m["name"], text)
        return cls(user, m["name"], Version(m["version"]))

    @property
    def key(self) -> str:
        """``user/name``, the jobuild without its version (portage's cp)."""
        return f"{self.user}/{self.name}"

    @property
    def p(self) -> str:
        """``name-version``, as the jobuild's ``P``."""
        return f"{self.name}-{self.version}"

    @property
    def path(self) -> str:
        """Where the jobuild lives in the tree."""
        return f"{self.user}/{self.name}/{self.p}.jobuild"

    def __str__(self) -> str:
        return f"{self.user}/{self.p}"


@dataclass(frozen=True)
class Atom:
    """``[op]user/name[-ver]``: which jobuilds of one name a dependency accepts."""

    user: str
    name: str
    op: str | None = None
    version: Version | None = None
    params: tuple[tuple[str, str], ...] = ()  # (name, value) as written in [...]

    @classmethod
    def parse(cls, text: str) -> Atom:
        return _parse_atom(cls, text)

    @classmethod
    def _parse(cls, text: str) -> Atom:
        if not isinstance(text, str) or not text.strip():
            raise AtomError(f"invalid atom {text!r}: it is empty")
        whole = text
        text = text.strip()
        if any(c.isspace() for c in text):
            raise AtomError(f"invalid atom {whole!r}: an atom holds no whitespace")
        params: tuple[tuple[str, str], ...] = ()
        if "[" in text or "]" in text:
            head, _, inside = text.partition("[")
            if not inside.endswith("]") or "[" in inside or "]" in inside[:-1] or not inside[:-1]:
                raise AtomError(f"invalid atom {whole!r}: parameter values are written once, at the end: "
                                "user/name[name=value,...]")
            try:
                params = parse_bracket(inside[:-1], f"invalid atom {whole!r}")
            except ParameterError as e:
                raise AtomError(str(e)) from None
            found = cls._parse(head)
            return cls(found.user, found.name, found.op, found.version, params)
        op = next((o for o in OPERATORS if text.startswith(o)), None)
        rest = text[len(op) :] if op else text
        if rest[:1] in "<>=!~":
            raise AtomError(f"invalid atom {whole!r}: unknown operator; use one of {' '.join(OPERATORS)}")
        user, name_part = _split_user(rest, whole)
        m = _NAME_VERSION_RE.match(name_part)
        if op:
            if not m:
                tail = name_part.rsplit("-", 1)[-1] if "-" in name_part else ""
                if tail[:1].isdigit():
                    try:  # report the version's own fault (e.g. a leading zero)
                        Version(tail)
                    except VersionError as e:
                        raise AtomError(f"invalid atom {whole!r}: {e}") from None
                raise AtomError(f"invalid atom {whole!r}: operator {op!r} needs a version (<user>/<name>-<ver>)")
            _check_name(m["name"], whole)
            return cls(user, m["name"], op, Version(m["version"]))
        if m:
            raise AtomError(
                f"invalid atom {whole!r}: a version needs an operator, for example '={user}/{name_part}'"
            )
        _check_name(name_part, whole)
        return cls(user, name_part)

    @property
    def key(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def values(self) -> dict[str, str]:
        return dict(self.params)

    def matches(self, jid: JobuildId) -> bool:
        """Whether the jobuild ``jid`` satisfies this atom."""
        if (jid.user, jid.name) != (self.user, self.name):
            return False
        if self.op is None:
            return True
        v, mine = jid.version, self.version
        return {
            "=": v == mine,
            ">=": v >= mine,
            "<=": v <= mine,
            ">": v > mine,
            "<": v < mine,
        }[self.op]

    def best(self, candidates) -> JobuildId | None:
        """The highest version among ``candidates`` that matches, or None."""
        return max((c for c in candidates if self.matches(c)), key=lambda c: c.version, default=None)

    def __str__(self) -> str:
        base = self.key if self.op is None else f"{self.op}{self.key}-{self.version}"
        if self.params:
            base += "[" + ",".join(f"{k}={encode(v)}" for k, v in self.params) + "]"
        return base


@dataclass(frozen=True)
class AnyOf:
    """``|| ( ... )``: the leftmost member that can be satisfied is chosen."""

    members: tuple[Node, ...]

    def __str__(self) -> str:
        return "|| ( " + " ".join(str(m) for m in self.members) + " )"


@dataclass(frozen=True)
class AllOf:
    """``( ... )``: every member is needed (useful inside an any-of group)."""

    members: tuple[Node, ...]

    def __str__(self) -> str:
        return "( " + " ".join(str(m) for m in self.members) + " )"


Node = Atom | AnyOf | AllOf


@functools.lru_cache(maxsize=65536)
def _parse_atom(cls, text: str) -> Atom:
    # Atoms are immutable and trees repeat them endlessly: parse each text once.
    return cls._parse(text)


@functools.lru_cache(maxsize=65536)
def parse_depend(text: str, *, variable: str = "DEPEND") -> tuple[Node, ...]:
    """Parse a DEPEND/SIDEPEND string into atoms and groups (cached: the result is immutable).

    Tokens are separated by whitespace, as portage requires (``||(`` is an error).
    """
    tokens = text.split()
    pos = 0

    def fail(msg: str) -> AtomError:
        return AtomError(f"invalid {variable} {' '.join(tokens)!r}: {msg}")

    def group(depth: int) -> tuple[Node, ...]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ")":
                if depth == 0:
                    raise fail(f"')' at token {pos} closes nothing")
                if not nodes:
                    raise fail(f"empty group ending at token {pos}")
                return tuple(nodes)
            if tok == "||":
                if pos >= len(tokens) or tokens[pos] != "(":
                    raise fail(f"'||' at token {pos} must be followed by ' ( '")
                pos += 1
                nodes.append(AnyOf(group(depth + 1)))
            elif tok == "(":
                nodes.append(AllOf(group(depth + 1)))
            elif "(" in tok or ")" in tok or tok.startswith("||"):
                raise fail(f"{tok!r}: parentheses and '||' must stand alone, separated by spaces")
            else:
                try:
                    nodes.append(Atom.parse(tok))
                except AtomError as e:
                    raise AtomError(f"invalid {variable}: {e}") from None
        if depth:
            raise fail("a '(' is never closed")
        return tuple(nodes)

    return group(0)


def iter_atoms(nodes) -> list[Atom]:
    """Every atom in a parsed dependency tree, in order."""
    out: list[Atom] = []
    for n in nodes:
        if isinstance(n, Atom):
            out.append(n)
        else:
            out.extend(iter_atoms(n.members))
    return out
