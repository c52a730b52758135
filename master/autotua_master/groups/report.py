"""A group's report: text an arch tester pastes into the Gentoo bug, and the same as JSON.

Per arch and flavour, per package: each USE combination and reverse dependency, passed or failed and
how (fetch, compile, test, install... as the arch-test jobuild classifies it, after tatt), on which
slaves, with the failing log's address; then each slave's stage3 and ``emerge --info``, and the
pinned snapshot and tree revision every job ran against.
"""

from __future__ import annotations

from django.urls import reverse

from .cells import Matrix, SlaveInfo, summarise

MARK = {"passed": "passed", "failed": "FAILED", "disputed": "unsure", "error": "ERROR"}


def _url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def log_url(base: str, job: int, run: str, index: int | None) -> str:
    if not run or index is None:
        return _url(base, reverse("web:job", args=[job]))
    return _url(base, reverse("web:log", args=[job, run, index]))


def info_url(base: str, s: SlaveInfo) -> str:
    if s.inline:
        return _url(base, reverse("web:job", args=[s.info_job]) + f"?run={s.info_run}#emerge-info")
    if s.info_name:
        return _url(base, reverse("web:attachment", args=[s.info_job, s.info_run, s.info_index, s.info_name]))
    return ""


def as_json(m: Matrix, base: str) -> dict:
    g = m.group
    columns = []
    for arch, flavour in m.columns:
        packages: dict[str, dict] = {}
        for i, row in enumerate(m.rows):
            cell = m.cell(i, arch, flavour)
            if cell is None:
                continue
            pkg = packages.setdefault(row.get("package") or g.root, {"package": row.get("package") or g.root,
                                                                      "rows": []})
            failed = next((a for a in cell.attempts if a.state == "failed"), None)
            pkg["rows"].append({
                "label": row["label"], "kind": row.get("kind", "values"), "parameters": row.get("parameters", {}),
                "verdict": cell.verdict, "text": cell.text,
                "failure": failed.failure if failed else "", "detail": failed.detail if failed else "",
                "slaves": [a.slave for a in cell.attempts if a.slave],
                "jobs": [a.job for a in cell.attempts],
                "log": log_url(base, failed.job, failed.run, failed.failed_index) if failed else "",
            })
        for pkg in packages.values():
            pkg["state"] = summarise([r["verdict"] for r in pkg["rows"]])
        columns.append({"arch": arch, "flavour": flavour, "packages": list(packages.values())})
    return {
        "group": g.pk, "title": g.title, "kind": g.kind, "bug": g.bug, "root": g.root,
        "url": _url(base, reverse("web:group", args=[g.pk])),
        "revision": g.revision.revision_id, "revno": g.revision.revno, "snapshot": g.snapshot, "seed": g.seed,
        "request": g.request, "state": m.state, "counts": m.counts, "columns": columns,
        "slaves": [{"name": s.name, "arch": s.arch, "flavour": s.flavour, "stage3": s.stage3,
                    "emerge_info": info_url(base, s)} for s in m.slaves],
    }


def as_text(m: Matrix, base: str) -> str:
    d = as_json(m, base)
    g = m.group
    lines = [f"AutotuA {'arch testing' if g.kind == 'archtest' else 'group'} #{g.pk}: {g.title}"]
    if g.bug:
        lines.append(f"Bug: https://bugs.gentoo.org/{g.bug}")
    lines.append(f"Repository: gentoo-{g.snapshot} (the Gentoo snapshot every job ran against)" if g.snapshot
                 else "Repository: none pinned")
    lines.append(f"Jobuild: {g.root} at jobtage r{g.revision.revno} ({g.revision.revision_id})")
    req = g.request or {}
    if g.kind == "archtest":
        lines.append(f"Sampling: {req.get('combinations')} USE combinations satisfying REQUIRED_USE, with all-off "
                     f"and all-on when valid, and up to {req.get('rdeps')} reverse dependencies, drawn with seed "
                     f"{g.seed} (tatt's method); FEATURES=test")
    counts = ", ".join(f"{n} {v}" for v, n in d["counts"].items())
    lines.append(f"State: {d['state']} ({counts})")
    for col in d["columns"]:
        lines += ["", f"{col['arch']} ({col['flavour']} stage3):"]
        for pkg in col["packages"]:
            rows = pkg["rows"]
            bad = sum(r["verdict"] != "passed" for r in rows)
            summary = f"all {len(rows)} passed" if not bad else f"{bad} of {len(rows)} not passed"
            lines.append(f"  {pkg['package']}: {pkg['state']} ({summary})")
            for r in rows:
                label = r["label"].removeprefix(pkg["package"]).strip() or r["label"]
                mark = MARK.get(r["verdict"], r["verdict"])
                text = "" if r["verdict"] == "passed" else f": {r['text']}"
                lines.append(f"    [{mark}] {label}{text}")
                if r["detail"] and r["verdict"] != "passed":
                    lines.append(f"             {r['detail']}")
                if r["log"] and r["verdict"] != "passed":
                    lines.append(f"             log: {r['log']}")
    if d["slaves"]:
        lines += ["", "Slaves (stage3, emerge --info):"]
        for s in d["slaves"]:
            stage3 = f"{s['stage3']}; " if s["stage3"] else ""
            info = s["emerge_info"] or "no emerge --info"
            lines.append(f"  {s['name']} ({s['arch']}, {s['flavour']}): {stage3}{info}")
    lines += ["", f"Details: {d['url']}"]
    return "\n".join(lines) + "\n"
