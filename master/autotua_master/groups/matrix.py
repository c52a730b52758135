"""A matrix's combinations, and the filter that drops some (after Jenkins' combination filter).

A filter is an expression over the axes of one combination: ``arch``, ``flavour``, each parameter
by its name and, for arch testing, ``package``, ``kind`` (``use`` or ``rdep``) and ``use``. A
combination is kept when it is true::

    !(arch == "x86" && flavour == "systemd")
    kind == "rdep" || "broken-test" in use
    mode != 'slow' or arch in "amd64 arm64"

``==`` and ``!=`` compare text; ``X in Y`` is true when X is one of the whitespace-separated words of
Y; ``&&``/``and``, ``||``/``or``, ``!``/``not`` and parentheses as usual. A name that is no axis of
the combination is an error, as is anything else: a filter is parsed here, never evaluated by Python.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_FILTER = 2000
MAX_DEPTH = 50
_TOKEN = re.compile(r"""\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\))|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
                    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*))""")


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    op: str  # "or", "and", "not", "==", "!=", "in", "name", "str"
    args: tuple = ()


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"filter: cannot read {text[pos:pos + 20]!r} (at character {pos + 1})")
        pos = m.end()
        if m["op"]:
            out.append(("op", m["op"]))
        elif m["str"]:
            out.append(("str", re.sub(r"\\(.)", r"\1", m["str"][1:-1])))
        else:
            word = m["name"]
            out.append(("op", word) if word in ("and", "or", "not", "in") else ("name", word))
    return out


def parse_filter(text: str) -> Node | None:
    """The filter's tree, or None for an empty filter (keep everything). FilterError says what is wrong."""
    if not isinstance(text, str):
        raise FilterError("filter: an expression is text")
    if len(text) > MAX_FILTER:
        raise FilterError(f"filter: {len(text)} characters; at most {MAX_FILTER}")
    if "\0" in text:
        raise FilterError("filter: holds a NUL character")
    toks = _tokens(text)
    if not toks:
        return None
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    def take(*ops: str) -> bool:
        nonlocal pos
        t = peek()
        if t and t[0] == "op" and t[1] in ops:
            pos += 1
            return True
        return False

    def expr(depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter: nested deeper than {MAX_DEPTH}")
        node = conj(depth)
        while take("||", "or"):
            node = Node("or", (node, conj(depth)))
        return node

    def conj(depth: int) -> Node:
        node = neg(depth)
        while take("&&", "and"):
            node = Node("and", (node, neg(depth)))
        return node

    def neg(depth: int) -> Node:
        if take("!", "not"):
            return Node("not", (neg(depth + 1),))
        return cmp(depth)

    def cmp(depth: int) -> Node:
        left = term(depth)
        for op in ("==", "!=", "in"):
            if take(op):
                return Node(op, (left, term(depth)))
        return left

    def term(depth: int) -> Node:
        nonlocal pos
        t = peek()
        if t is None:
            raise FilterError("filter: the expression ends too soon")
        if take("("):
            node = expr(depth + 1)
            if not take(")"):
                raise FilterError("filter: a '(' is never closed")
            return node
        if t[0] in ("name", "str"):
            pos += 1
            return Node(t[0], (t[1],))
        raise FilterError(f"filter: {t[1]!r} where a name, a string or '(' was expected")

    tree = expr(0)
    if pos != len(toks):
        raise FilterError(f"filter: {toks[pos][1]!r} after the end of the expression")
    _check_types(tree)
    return tree


def _check_types(node: Node, want_bool: bool = True) -> None:
    if node.op in ("or", "and", "not"):
        for a in node.args:
            _check_types(a, True)
    elif node.op in ("==", "!=", "in"):
        for a in node.args:
            if a.op not in ("name", "str"):
                raise FilterError(f"filter: {node.op} compares names and strings, not expressions")
    elif want_bool:
        raise FilterError(f"filter: {node.args[0]!r} alone is not a condition (compare it: == != in)")


def names_in(node: Node | None) -> set[str]:
    if node is None:
        return set()
    if node.op == "name":
        return {node.args[0]}
    return set().union(*(names_in(a) for a in node.args)) if node.op != "str" else set()


def evaluate(node: Node | None, axes: Mapping[str, str]) -> bool:
    """Whether the combination ``axes`` is kept."""
    if node is None:
        return True

    def value(n: Node) -> str:
        if n.op == "str":
            return n.args[0]
        if n.args[0] not in axes:
            raise FilterError(f"filter: {n.args[0]!r} is not an axis ({', '.join(sorted(axes))})")
        return axes[n.args[0]]

    op = node.op
    if op == "or":
        return evaluate(node.args[0], axes) or evaluate(node.args[1], axes)
    if op == "and":
        return evaluate(node.args[0], axes) and evaluate(node.args[1], axes)
    if op == "not":
        return not evaluate(node.args[0], axes)
    left, right = value(node.args[0]), value(node.args[1])
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    return left in right.split()


def check_names(node: Node | None, axes: set[str]) -> None:
    """FilterError when the filter names something that is no axis."""
    unknown = sorted(names_in(node) - axes)
    if unknown:
        raise FilterError(f"filter: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an axis "
                          f"(the axes: {', '.join(sorted(axes))})")


def product(values: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the parameters' values, in order (the last parameter varies fastest)."""
    names = list(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(values[n] for n in names))]
