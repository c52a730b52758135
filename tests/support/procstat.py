"""What a process and its descendants use, from /proc: for the benchmarks' figures."""

from __future__ import annotations

import os
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def processes(root: int) -> list[int]:
    """``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def usage(root: int, tree: bool = True) -> dict:
    """RSS and PSS (MiB), CPU seconds and threads of ``root`` and its descendants (``tree``), or of
    ``root`` alone."""
    rss = pss = cpu = 0.0
    threads = 0
    for pid in processes(root) if tree else [root]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # its own and its reaped children's (a PostgreSQL backend that ended is in the postmaster's)
            cpu += (int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if tree else 0)) / CLK
            threads += int(fields[17])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return {"rss": rss, "pss": pss, "cpu": cpu, "threads": threads}
