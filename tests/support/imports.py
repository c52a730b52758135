"""The import graph of the master's package: every ``import`` statement, at module level or inside a
function (an import hidden in a function is still a dependency), resolved to the package's modules.

    .venv/bin/python -m tests.support.imports      # prints the graph between the apps, then any circle
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "autotua_master"
ROOT = Path(__file__).resolve().parents[2] / "master" / PACKAGE


def modules() -> dict[str, Path]:
    """Module name -> file, for every module of the package (packages by their ``__init__``)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    mods = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # "from x import y": the module x.y when y is one, else x
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
            for t in targets:
                while t and t not in mods:  # "import a.b.c": its nearest module of the package
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith(PACKAGE):
                    edges[name].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def app_of(module: str) -> str:
    """``autotua_master.jobs.models.job`` -> ``jobs``; a module at the top (``urls``, ``live``) is its own,
    and so are the management commands (entry points, as the URLs are: they use any app)."""
    parts = module.split(".")
    if "commands" in parts[:-1]:
        return "commands"
    return parts[1] if len(parts) > 1 else parts[0]


def app_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    apps: dict[str, set[str]] = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if app_of(a) != app_of(b):
                apps[app_of(a)].add(app_of(b))
    return apps


def main() -> int:
    edges = graph()
    apps = app_graph(edges)
    for app in sorted(apps):
        print(f"{app:<12} -> {', '.join(sorted(apps[app]))}")
    found = cycles(edges) + cycles(apps)
    for c in found:
        print("circle:", " <-> ".join(c))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
