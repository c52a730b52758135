"""A job's dependency graph as SVG: DOT written here, drawn by Graphviz's ``dot`` on the master.

DEPEND edges are solid (``A -> B``: A needs B first, in the same container); SIDEPEND edges are dashed
and violet, to a node for the jobuild that must have passed somewhere. Nodes are filled by status.
Every SVG is cached in ``DATA_DIR/graphs/`` under the digest of its DOT source, so a page view after
the first costs a file read; a change of any status changes the source and so the picture. When
``dot`` is missing (or fails) the page says so and shows everything else.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from django.conf import settings
from django.urls import reverse

from autotua.atom import Atom, AtomError, JobuildId, iter_atoms, parse_depend

FILL = {
    "passed": "#b9e6b3", "failed": "#f5b1b1", "running": "#ffe08a", "pending": "#e6e8ec", "not-run": "#f6f6f6",
    "invalid": "#f5b1b1", "unlinked": "#f6f6f6",
}
TIMEOUT = 20


class GraphUnavailable(Exception):
    """Why there is no picture (dot missing, failing, too slow); the page shows the sentence."""


def _q(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, so no escape sequence of dot's
    (\\N, \\l...) is ever taken from the data."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _label(*lines: str) -> str:
    return "\\n".join(_q(line)[1:-1] for line in lines)


def depend_edges(plan: list[dict]) -> list[tuple[int, int]]:
    """(dependent, dependency) plan indexes, from each entry's DEPEND matched against the plan (the
    resolver took exactly one jobuild for each atom it satisfied)."""
    ids = []
    for e in plan:
        try:
            ids.append(JobuildId.parse(e["jobuild"]))
        except AtomError:
            ids.append(None)
    edges = []
    for e in plan:
        try:
            atoms = iter_atoms(parse_depend(e.get("depend") or ""))
        except AtomError:
            continue
        for atom in atoms:
            for j, jid in enumerate(ids):
                if jid is not None and j != e["index"] and isinstance(atom, Atom) and atom.matches(jid):
                    edges.append((e["index"], j))
    return sorted(set(edges))


def job_dot(page) -> str:
    """DOT source for a :class:`~autotua_master.web.queries.jobpage.JobPage`."""
    job = page.job
    out = ["digraph job {",
           '  graph [rankdir=TB, bgcolor="transparent", fontname="sans-serif", fontsize=10, nodesep=0.35];',
           '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=10, color="#555555"];',
           '  edge [fontname="sans-serif", fontsize=9, color="#444444"];']
    for row in page.rows:
        e = row.entry
        url = ""
        if row.log is not None and page.run is not None:
            url = reverse("web:log", args=[job.pk, page.run.uuid, row.index])
        attrs = [f"label=\"{_label(e['jobuild'], row.status)}\"", f"fillcolor={_q(FILL.get(row.status, '#ffffff'))}",
                 f"tooltip={_q(e.get('description') or e['jobuild'])}"]
        if row.index == len(page.rows) - 1:
            attrs.append("penwidth=2")
        if url:
            attrs.append(f"URL={_q(url)}")
        out.append(f"  p{row.index} [{', '.join(attrs)}];")
    for a, b in depend_edges(job.plan):
        out.append(f"  p{a} -> p{b};")
    by_name = {r.entry["jobuild"]: r.index for r in page.rows}
    nodes: dict[tuple[str, str], str] = {}
    for s in page.sidepends:
        req = s.requirement
        key = (req["jobuild"], req.get("identity") or req["digest"])
        if key not in nodes:
            nodes[key] = f"s{len(nodes)}"
            extra = s.state
            url = ""
            if s.provider is not None:
                extra += f" (job #{s.provider.pk})"
                url = reverse("web:job", args=[s.provider.pk])
            elif s.passed_by is not None:
                url = reverse("web:job", args=[s.passed_by.job_id])
            attrs = [f"label=\"{_label(req['jobuild'], 'SIDEPEND ' + extra)}\"",
                     f"fillcolor={_q(FILL.get(s.state, '#ffffff'))}", 'style="rounded,filled,dashed"',
                     f"tooltip={_q('must have passed somewhere: ' + req['atom'])}"]
            if url:
                attrs.append(f"URL={_q(url)}")
            out.append(f"  {nodes[key]} [{', '.join(attrs)}];")
        src = by_name.get(req["required_by"])
        if src is not None:
            out.append(f"  p{src} -> {nodes[key]} [style=dashed, color=\"#7b3fb5\", fontcolor=\"#7b3fb5\", "
                       f"label={_q('SIDEPEND')}];")
    out.append("}")
    return "\n".join(out) + "\n"


def cache_dir() -> Path:
    return Path(settings.AUTOTUA_DATA_DIR) / "graphs"


def render_svg(dot_source: str) -> str:
    """The SVG for ``dot_source``, from the cache or drawn now; raises :class:`GraphUnavailable`."""
    key = hashlib.sha256(dot_source.encode()).hexdigest()
    path = cache_dir() / f"{key}.svg"
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    dot = settings.AUTOTUA_DOT
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=dot_source.encode(), capture_output=True, timeout=TIMEOUT,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except FileNotFoundError:
        raise GraphUnavailable(f"the dependency graph needs Graphviz's '{dot}', which is not installed on this "
                               "master (Debian: apt-get install graphviz; Gentoo: emerge media-gfx/graphviz)") from None
    except subprocess.TimeoutExpired:
        raise GraphUnavailable(f"Graphviz took longer than {TIMEOUT}s to draw this graph") from None
    if proc.returncode:
        raise GraphUnavailable(f"Graphviz failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()[:500]}")
    svg = clean(proc.stdout.decode("utf-8", "replace"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".svg-")
    with os.fdopen(fd, "w") as f:
        f.write(svg)
    os.replace(tmp, path)
    return svg


_ACTIVE_TAGS = {"script", "foreignobject", "iframe", "object", "embed", "handler", "animate", "set"}


def clean(svg: str) -> str:
    """dot's SVG without its XML prolog and DOCTYPE, to inline in a page. It is parsed and refused if
    any element or attribute could run something (dot escapes every label, so this never happens
    unless ``dot`` is not dot): no script-like element, no ``on*`` attribute, links only to this site."""
    start = svg.find("<svg")
    if start < 0:
        raise GraphUnavailable("Graphviz produced no SVG")
    svg = svg[start:]
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as e:
        raise GraphUnavailable(f"the SVG from Graphviz does not parse: {e}") from None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1].lower() in _ACTIVE_TAGS:
            raise GraphUnavailable("the SVG from Graphviz held active content; not shown")
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or (local == "href" and not value.startswith("/")):
                raise GraphUnavailable("the SVG from Graphviz held active content; not shown")
    return svg


def job_svg(page) -> str:
    return render_svg(job_dot(page))
