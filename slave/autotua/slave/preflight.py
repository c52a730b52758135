"""What the slave checks at start: that this host can build the job container as configured.

Each check returns a :class:`Check` (ok or not, and one sentence); ``autotua-slave check`` prints
them, and ``run`` refuses to take jobs while any fails, saying exactly what to install or change.
Nothing here changes the host: the probes (a user namespace, an idmapped copy of a directory that
is never attached, a BPF program that is never attached) go away with their descriptors.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from autotua.slave import SlaveError
from autotua.slave.config import Config
from autotua.slave.container import cgroups, disk, netfilter, network
from autotua.slave.container.idmap import IdRange, UserNamespace, idmapped_mounts_work, resolve
from autotua.slave.container.idmap import check as check_ids


@dataclass
class Check:
    name: str
    ok: bool
    says: str

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'MISSING':8} {self.name:12} {self.says}"


@dataclass
class Host:
    """What the daemon works out once, at start: whom it trusts, the job ids, whether the stage3 can
    be idmapped, and the container settings every job's spec carries."""

    trusted: frozenset[str]
    ids: IdRange
    idmap: bool
    container: dict

    @classmethod
    def of(cls, cfg: Config) -> Host:
        from autotua.slave import trust

        ids = resolve(cfg.subids)
        check_ids(ids, cfg.subids)
        idmap = cfg.idmapped_mounts and idmapped_mounts_work(_existing(cfg.cache_dir), ids)
        limits = {"memory": cfg.memory_limit, "pids": cfg.pids_limit, "cpus": cfg.cpus, "disk": cfg.disk_limit,
                  "shm": cfg.memory_limit // 2}
        return cls(trust.load(cfg), ids, idmap, {"ids": ids.base, "idmap": idmap, "network": cfg.network,
                                                 "slirp4netns": network.slirp4netns() or "slirp4netns",
                                                 "limits": limits})


def _existing(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def _filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


def run(cfg: Config) -> list[Check]:
    out = []
    fs = _filesystems()
    out.append(Check("overlayfs", "overlay" in fs, "the job's root is an overlay over the stage3" if "overlay" in fs
                     else "the kernel has no overlayfs (CONFIG_OVERLAY_FS)"))
    # user namespaces and the job's ids
    try:
        ids = resolve(cfg.subids)
        check_ids(ids, cfg.subids)
        ns = UserNamespace(ids)
        ns.create()
        ns.close()
        out.append(Check("subids", True, f"the job's ids 0-65535 are host ids {ids.base}-{ids.base + 65535} "
                                         f"({ids.source})"))
    except (SlaveError, OSError) as e:
        out.append(Check("subids", False, str(e)))
        ids = None
    if ids is not None:
        works = cfg.idmapped_mounts and idmapped_mounts_work(_existing(cfg.cache_dir), ids)
        out.append(Check("idmap", True, "idmapped mounts: the stage3 is shared by every job as it is" if works else
                         "no idmapped mounts here (or idmapped_mounts = false): each stage3 is copied once with "
                         "its owners shifted"))
    # the disk
    ok = bool(disk.mkfs_tool()) and os.path.exists("/dev/loop-control") and "ext4" in fs
    out.append(Check("disk", ok, f"each job gets a {cgroups.human(cfg.disk_limit)} ext4 image (disk_limit)" if ok else
                     "the job's disk needs mkfs.ext4 (Debian: e2fsprogs; Gentoo: sys-fs/e2fsprogs), ext4 and "
                     "loop devices (/dev/loop-control, CONFIG_BLK_DEV_LOOP)"))
    if re.search(r"[,:\\\s]", os.path.realpath(cfg.work_dir)):
        out.append(Check("work_dir", False, f"{cfg.work_dir}: overlayfs takes no ',', ':', '\\' or spaces in its "
                                            "paths; choose another work_dir"))
    # cgroups
    lay = cgroups.Layout.read()
    where = lay.where()
    missing = [c for c in ("memory", "pids") if c not in where and c not in lay.v2_available()]
    if cfg.cpus and "cpu" not in where and "cpu" not in lay.v2_available():
        missing.append("cpu")
    out.append(Check("cgroups", not missing,
                     "limits: " + ", ".join(f"{c} ({h})" for c, h in sorted(where.items())) if not missing else
                     f"no {', '.join(missing)} controller: mount cgroup2 (/sys/fs/cgroup) or the v1 hierarchies "
                     "(the kernel needs CONFIG_MEMCG, CONFIG_CGROUP_PIDS, CONFIG_CGROUP_SCHED)"))
    # the network
    if cfg.network == "outbound":
        slirp = network.slirp4netns()
        problems = []
        if not slirp:
            problems.append("slirp4netns is not installed (Debian: apt-get install slirp4netns; Gentoo: emerge "
                            "app-containers/slirp4netns)")
        if not lay.v2:
            problems.append("there is no cgroup2 hierarchy for the filter that keeps jobs off the host's addresses "
                            "(mount it at /sys/fs/cgroup/unified, or set network = \"none\")")
        else:
            try:
                os.close(netfilter.load(netfilter.ipv4_program(["127.0.0.0/8"], []), netfilter.INET4_CONNECT))
            except (SlaveError, OSError) as e:
                problems.append(f"the kernel cannot filter the network helper's connections ({e}; it needs "
                                "CONFIG_CGROUP_BPF)")
        out.append(Check("network", not problems, "; ".join(problems) or
                         f"outbound: the internet through {shutil.which('slirp4netns') or slirp}, the host's "
                         "loopback and addresses out of reach"))
    else:
        out.append(Check("network", True, {"none": "none: loopback only", "host": "host: the host's own network "
                                           "(jobs reach everything the host reaches)"}[cfg.network]))
    return out


def problems(cfg: Config) -> list[str]:
    return [f"{c.name}: {c.says}" for c in run(cfg) if not c.ok]
