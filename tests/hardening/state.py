"""Everything a request could change on the master, to compare before and after a refused one."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings


def files(root: Path) -> dict[str, str]:
    """path -> sha256 of every file below ``root`` (logs, attachments, spooled uploads)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot() -> dict:
    """Every row of the tables the API and the pages write, and every file of the data dir's runs/."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from autotua_master.jobs.models import Attachment, Job, JobuildResult, LogFile, Provision, Run
    from autotua_master.jobs.models.sidepend import Requirement
    from autotua_master.slaves.models import Slave
    from autotua_master.tree.models import Maintainer

    rows = {}
    for model in (Job, Run, Slave, JobuildResult, LogFile, Attachment, Provision, Requirement, Maintainer, Token,
                  get_user_model()):
        rows[model.__name__] = list(model.objects.order_by("pk").values())
    rows["files"] = files(Path(settings.AUTOTUA_DATA_DIR) / "runs")
    return rows


def diff(before: dict, after: dict) -> list[str]:
    """What changed, table by table (empty when nothing did)."""
    out = []
    for table in before:
        if before[table] != after[table]:
            b, a = before[table], after[table]
            if isinstance(b, dict):
                changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                out.append(f"{table}: {changed}")
            else:
                out.append(f"{table}: {len(b)} -> {len(a)} rows; "
                           f"first change {next(((x, y) for x, y in zip(b, a, strict=False) if x != y), None)}")
    return out
