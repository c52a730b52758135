"""Job parameters: what a jobuild declares it takes (``PARAMETERS``), and the values a job gives it.

A jobuild declares its parameters in its metadata, one ``name:kind[=default]`` word each::

    PARAMETERS="atom:atom use:use-flags= unmask:atoms= mode:/fast|slow/=fast"

Kinds: ``atom`` (a Gentoo package atom), ``atoms`` (several), ``use-flags`` (``flag`` or ``-flag``
words), ``word`` (letters, digits, ``_.+-``), or a pattern between slashes (a POSIX extended regular
expression the whole value must match, matched by bash in the metadata sandbox: a hostile pattern
costs a clear error, never the master's time). No ``=``: the job must give a value; ``=`` alone: the
default is empty. A default, like a value written in an atom, is percent-encoded where it would hold
whitespace, ``,``, ``[``, ``]`` or ``%``.

Values are data, never code: each is checked against its kind here (syntax) and, for ``atom``,
``atoms`` and ``use-flags``, against the pinned Gentoo repository (:func:`check_in_repository`); a
value with NUL, a lone surrogate, or over :data:`MAX_VALUE` characters is refused; the phases see it
as the environment variable ``PARAM_<NAME>`` (:func:`environment`), which bash never evaluates.

A value is part of the job's identity: the canonical values (defaults filled in, use-flags sorted)
travel with each plan entry, and :func:`identity` folds them into the digest a SIDEPEND is keyed by.
In a dependency atom they are written as Gentoo writes USE dependencies: ``alice/foo[mode=fast,x=1]``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from autotua import AutotuaError

NAME_PATTERN = r"[a-z][a-z0-9_]{0,31}"
_NAME_RE = re.compile(rf"\A{NAME_PATTERN}\Z")
KINDS = ("atom", "atoms", "use-flags", "word")
MAX_VALUE = 4096  # characters
MAX_PARAMETERS = 32
MAX_LIST = 256  # atoms or USE flags in one value
#: PMS 3.1.4: a USE flag name
_USE_FLAG_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9+_@-]*\Z")
_WORD_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}\Z")
#: what a value written inside an atom or a declaration must not hold raw
_ENCODE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",[]%")


class ParameterError(AutotuaError, ValueError):
    """A bad declaration or value; the message names the parameter and the fault."""


#: ``match(pattern, value) -> bool``: a whole-value match of a POSIX ERE (the metadata sandbox's)
Matcher = Callable[[str, str], bool]


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # one of KINDS, or "pattern"
    pattern: str = ""
    default: str | None = None  # None: the job must give a value

    @property
    def variable(self) -> str:
        """The environment variable the phases read it from."""
        return "PARAM_" + self.name.upper()

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def kind_text(self) -> str:
        return f"/{self.pattern}/" if self.kind == "pattern" else self.kind

    def __str__(self) -> str:
        default = "" if self.default is None else "=" + encode(self.default)
        return f"{self.name}:{self.kind_text}{default}"


# -- writing values inside atoms and declarations ---------------------------------------------------
def encode(value: str) -> str:
    """``value`` as it is written inside an atom's brackets or a declaration's default."""
    return quote(value, safe=_ENCODE_SAFE)


def decode(text: str, where: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ParameterError(f"{where}: {text[:60]!r} is not valid percent-encoded UTF-8") from None


# -- declarations -----------------------------------------------------------------------------------
def _split_kind(rest: str, where: str) -> tuple[str, str, str | None]:
    """``kind[=default]`` -> (kind, pattern, default). A pattern runs to the last ``/`` that ends the
    word or comes before ``=``."""
    if rest.startswith("/"):
        ends = [i for i in range(1, len(rest)) if rest[i] == "/" and (i + 1 == len(rest) or rest[i + 1] == "=")]
        if not ends:
            raise ParameterError(f"{where}: a pattern is written /pattern/ (then =default, if any)")
        end = ends[-1]
        pattern, tail = rest[1:end], rest[end + 1:]
        if not pattern:
            raise ParameterError(f"{where}: the pattern is empty")
        return "pattern", pattern, (tail[1:] if tail else None)
    kind, eq, default = rest.partition("=")
    if kind not in KINDS:
        raise ParameterError(f"{where}: unknown kind {kind!r}; one of {', '.join(KINDS)} or /pattern/")
    return kind, "", default if eq else None


def parse_declaration(text: str, where: str = "PARAMETERS") -> tuple[Parameter, ...]:
    """``PARAMETERS`` -> its parameters, in order; ParameterError for a malformed one. Defaults are
    checked against their kinds here (patterns, which need the sandbox, by the metadata reader)."""
    out: list[Parameter] = []
    for word in text.split():
        name, colon, rest = word.partition(":")
        here = f"{where} {word[:80]!r}"
        if not colon:
            raise ParameterError(f"{here}: a parameter is declared name:kind[=default]")
        if not _NAME_RE.match(name):
            raise ParameterError(f"{here}: the name {name[:40]!r} must be lower-case letters, digits and '_', "
                                 "starting with a letter, at most 32")
        if any(p.name == name for p in out):
            raise ParameterError(f"{here}: {name} is declared twice")
        kind, pattern, default = _split_kind(rest, here)
        if default is not None:
            default = decode(default, here)
        param = Parameter(name, kind, pattern, default)
        if default is not None and kind != "pattern":
            try:
                check_syntax(param, default)
            except ParameterError as e:
                raise ParameterError(f"{here}: its default: {e}") from None
        out.append(param)
    if len(out) > MAX_PARAMETERS:
        raise ParameterError(f"{where}: {len(out)} parameters; a jobuild may take {MAX_PARAMETERS} at most")
    return tuple(out)


def declaration_text(params: tuple[Parameter, ...]) -> str:
    return " ".join(str(p) for p in params)


# -- values -----------------------------------------------------------------------------------------
def _plain_text(param: Parameter, value) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{param.name}: a value is a string, not {type(value).__name__}")
    if "\0" in value:
        raise ParameterError(f"{param.name}: the value holds a NUL character (at {value.index(chr(0))}); "
                             "a value is text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParameterError(f"{param.name}: the value is not valid Unicode (a lone surrogate?)") from None
    if len(value) > MAX_VALUE:
        raise ParameterError(f"{param.name}: the value is {len(value)} characters; at most {MAX_VALUE}")
    return value


def _words(param: Parameter, value: str, what: str) -> list[str]:
    if any(c.isspace() and c != " " for c in value) or any(not c.isprintable() for c in value if c != " "):
        raise ParameterError(f"{param.name}: {what} are separated by spaces; the value holds other whitespace or "
                             "control characters")
    words = value.split()
    if len(words) > MAX_LIST:
        raise ParameterError(f"{param.name}: {len(words)} {what}; at most {MAX_LIST}")
    return words


def check_atom(text: str, where: str):
    """A Gentoo package atom a job may name: ``cat/pkg``, ``=cat/pkg-1.0``, ``>=cat/pkg-1:2``...;
    no blocker, USE dependency, slot operator, repository or wildcard. Returns portage's Atom."""
    from portage.dep import Atom
    from portage.exception import InvalidAtom

    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise ParameterError(f"{where}: {text[:80]!r} is not a package atom")
    try:
        atom = Atom(text, allow_wildcard=False, allow_repo=False)
    except InvalidAtom:
        raise ParameterError(f"{where}: {text[:80]!r} is not a package atom (like =app-misc/hello-1.0 or "
                             "dev-libs/foo)") from None
    if atom.blocker or atom.use or atom.slot_operator or "*" in text:
        raise ParameterError(f"{where}: {text[:80]!r}: a blocker, a USE dependency, a slot operator or a "
                             "wildcard is not a package to test")
    return atom


def _use_flags(param: Parameter, value: str) -> str:
    state: dict[str, bool] = {}
    for word in _words(param, value, "USE flags"):
        flag, on = (word[1:], False) if word.startswith("-") else (word, True)
        if not _USE_FLAG_RE.match(flag):
            raise ParameterError(f"{param.name}: {word[:80]!r} is not a USE flag (letters, digits, '+_@-', "
                                 "a leading '-' to turn it off)")
        if state.get(flag, on) != on:
            raise ParameterError(f"{param.name}: USE flag {flag} is both on and off")
        state[flag] = on
    return " ".join(("" if on else "-") + f for f, on in sorted(state.items()))


def check_syntax(param: Parameter, value) -> str:
    """``value`` in canonical form, or ParameterError. Patterns are matched by :func:`bind`."""
    value = _plain_text(param, value)
    if param.kind == "word":
        if not _WORD_RE.match(value):
            raise ParameterError(f"{param.name}: {value[:80]!r} is not a word (letters, digits and '_.+-', "
                                 "at most 64, not starting with '.', '+' or '-')")
        return value
    if param.kind == "atom":
        check_atom(value, param.name)
        return value
    if param.kind == "atoms":
        atoms = _words(param, value, "atoms")
        for a in atoms:
            check_atom(a, param.name)
        return " ".join(dict.fromkeys(atoms))
    if param.kind == "use-flags":
        return _use_flags(param, value)
    return value  # a pattern: any text, matched in the sandbox


def bind(params: tuple[Parameter, ...], values: Mapping[str, object] | None, *,
         match: Matcher | None = None, partial: bool = False) -> tuple[dict[str, str], list[str]]:
    """The canonical values of ``params`` given ``values`` (defaults filled in), and one error per
    bad, unknown or missing value. ``match`` checks pattern values (None: they are not checked);
    ``partial``: a value missing for a parameter without a default is no error (checking a tree,
    where no job gives values)."""
    values = dict(values or {})
    errors: list[str] = []
    out: dict[str, str] = {}
    declared = {p.name for p in params}
    for name in values:
        if name not in declared:
            shown = name[:40] if isinstance(name, str) else repr(name)
            takes = ", ".join(sorted(declared)) or "none"
            errors.append(f"{shown!r} is not a parameter of this jobuild (it takes: {takes})")
    for p in params:
        if p.name not in values:
            if p.required:
                if not partial:
                    errors.append(f"{p.name}: a value is required ({p.kind_text})")
                continue
            given = p.default
        else:
            given = values[p.name]
        try:
            value = check_syntax(p, given)
            if p.kind == "pattern" and match is not None and not match(p.pattern, value):
                raise ParameterError(f"{p.name}: {value[:80]!r} does not match /{p.pattern}/")
        except ParameterError as e:
            errors.append(str(e))
            continue
        out[p.name] = value
    return out, errors


# -- identity, atoms, phases ------------------------------------------------------------------------
def canonical(values: Mapping[str, str]) -> str:
    """``name=value,...`` sorted by name, values encoded: the text form of a set of values."""
    return ",".join(f"{k}={encode(v)}" for k, v in sorted(values.items()))


def identity(digest: str, values: Mapping[str, str]) -> str:
    """What a SIDEPEND is keyed by: the content digest alone for a jobuild run without values, else
    SHA-256 over the digest and the canonical values (the same jobuild with other values is other work)."""
    if not values:
        return digest
    return hashlib.sha256(f"{digest}\0{canonical(values)}".encode()).hexdigest()


def label(jobuild: str, values: Mapping[str, str]) -> str:
    """``user/name-ver[a=x,b=y]``, as people read a job with values."""
    return f"{jobuild}[{canonical(values)}]" if values else jobuild


def parse_bracket(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """The inside of an atom's ``[...]``: ``name=value`` pairs separated by commas."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        name, eq, value = part.partition("=")
        if not eq or not _NAME_RE.match(name):
            raise ParameterError(f"{where}: {part[:60]!r} is not name=value (a parameter name is lower-case "
                                 "letters, digits and '_')")
        if any(n == name for n, _ in pairs):
            raise ParameterError(f"{where}: parameter {name} is given twice")
        pairs.append((name, decode(value, where)))
    return tuple(pairs)


def environment(values: Mapping[str, str]) -> dict[str, str]:
    """The variables the phases see: ``PARAM_<NAME>`` for each value (data: bash never evaluates
    what the environment holds). Raises ParameterError for what the protocol never carries."""
    env = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ParameterError(f"{str(name)[:40]!r} is not a parameter name")
        if not isinstance(value, str) or "\0" in value or len(value) > MAX_VALUE:
            raise ParameterError(f"{name}: not a value a phase can be given (NUL, too long, not text)")
        env["PARAM_" + name.upper()] = value
    return env


# -- the pinned Gentoo repository -------------------------------------------------------------------
def check_in_repository(params: tuple[Parameter, ...], values: Mapping[str, str], repo) -> list[str]:
    """Errors for values the repository (an :class:`autotua.ebuildrepo.EbuildRepository`) refutes: an
    atom no ebuild matches; a USE flag not in the IUSE of the package the first ``atom`` parameter
    names (its best match)."""
    from autotua.ebuildrepo import RepositoryError

    try:
        return _check_in_repository(params, values, repo)
    except RepositoryError as e:
        names = ", ".join(p.name for p in params if p.kind in ("atom", "atoms", "use-flags") and values.get(p.name))
        return [f"{names}: cannot be checked: {e}"] if names else []


def _check_in_repository(params, values, repo) -> list[str]:
    errors: list[str] = []
    best = None
    for p in params:
        if p.name not in values or p.kind not in ("atom", "atoms"):
            continue
        for text in values[p.name].split():
            matched = repo.match(text)
            if not matched:
                errors.append(f"{p.name}: {text} matches no ebuild in {repo.describe()}")
            elif p.kind == "atom" and best is None:
                best = repo.best(matched)
    if best is None:
        return errors
    iuse = repo.iuse(best)
    for p in params:
        if p.kind != "use-flags" or not values.get(p.name):
            continue
        for word in values[p.name].split():
            flag = word.lstrip("-")
            if flag not in iuse:
                errors.append(f"{p.name}: USE flag {flag} is not in the IUSE of {best} "
                              f"({' '.join(sorted(iuse)) or 'it has none'})")
    return errors
