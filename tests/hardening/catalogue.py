"""The catalogue of bad inputs: every ``@pytest.mark.bad_input(area, what, error)`` in the suite.

A test that refuses a bad input says so with the marker, next to the assertions that check the
error and that nothing else changed; ``{name}`` (or ``{name!r}``) in ``what`` and ``error`` takes
the test's parameter of that name, so a parametrized test adds one entry per case. This module is a
pytest plugin that collects the markers without running anything, and a script that prints the
catalogue::

    .venv/bin/python -m tests.hardening.catalogue          # the markdown docs/security.md holds

tests/hardening/test_catalogue.py renders it into docs/security.md and checks its size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

AREAS = {
    "tarball": "Tarballs (stage3 and PORTCONF)",
    "signature": "Signatures and keys",
    "stage3": "Stage3 releases (latest-stage3 pointers, DIGESTS)",
    "snapshot": "Gentoo repository snapshots (snapshots/, .gpgsig, .md5sum)",
    "manifest": "Manifests and fetched files",
    "tree": "The tree (sync, revisions, paths)",
    "push": "Pushes to the master's tree",
    "atom": "Atoms, versions, dependencies",
    "jobuild": "Jobuilds (metadata, the depend phase)",
    "parameter": "Job parameters (values, patterns, what the phases see)",
    "archtest": "Groups and arch testing (package lists, matrices, filters)",
    "protocol": "The slave protocol (replays, order, headers)",
    "api": "The REST API (bodies, types, URLs)",
    "web": "The web UI",
    "slave": "The slave's own configuration and commands",
    "container": "The job container (what it is given, what a jobuild in it tries)",
}


# -- the plugin -------------------------------------------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--bad-input-catalogue", metavar="FILE",
                     help="write the bad_input markers of the collected tests to FILE (JSON) and run nothing")


def _format(text: str, params: dict) -> str:
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


def pytest_collection_modifyitems(session, config, items):
    out = config.getoption("--bad-input-catalogue")
    if not out:
        return
    rows = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for mark in item.iter_markers("bad_input"):
            area, what, error = mark.args
            uses_params = any("{" + p in what + error for p in params)
            test = item.nodeid if uses_params else item.nodeid.split("[", 1)[0]
            rows.append({"area": area, "what": _format(what, params), "error": _format(error, params), "test": test})
    Path(out).write_text(json.dumps(rows, indent=1))
    items[:] = []


# -- collecting and rendering -----------------------------------------------------------------------
def collect(paths: tuple[str, ...] = ("tests",)) -> list[dict]:
    """Every bad input of the suite (one entry per distinct area and input), collected by pytest."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "catalogue.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "-p", "tests.hardening.catalogue", "--bad-input-catalogue", str(out), *paths],
                              cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if not out.exists():
            raise RuntimeError(f"collecting the catalogue failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        rows = json.loads(out.read_text())
    unknown = {r["area"] for r in rows} - set(AREAS)
    if unknown:
        raise ValueError(f"bad_input areas not in tests/hardening/catalogue.py AREAS: {sorted(unknown)}")
    merged: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["area"], r["what"])
        if key in merged:
            if r["test"] not in merged[key]["tests"]:
                merged[key]["tests"].append(r["test"])
        else:
            merged[key] = {"area": r["area"], "what": r["what"], "error": r["error"], "tests": [r["test"]]}
    order = list(AREAS)
    return sorted(merged.values(), key=lambda r: (order.index(r["area"]), r["tests"][0], r["what"]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(entries: list[dict]) -> str:
    tests = {t for e in entries for t in e["tests"]}
    files = {t.split("::")[0] for t in tests}
    lines = [f"**{len(entries)} distinct bad inputs**, refused by {len(tests)} tests in {len(files)} files.", ""]
    for area, title in AREAS.items():
        mine = [e for e in entries if e["area"] == area]
        if not mine:
            continue
        lines += [f"#### {title} ({len(mine)})", "", "| bad input | the error it yields | where it is tested |",
                  "|---|---|---|"]
        for e in mine:
            where = "<br>".join(f"`{t}`" for t in e["tests"])
            lines.append(f"| {_cell(e['what'])} | {_cell(e['error'])} | {where} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(collect(tuple(sys.argv[1:]) or ("tests",))))
