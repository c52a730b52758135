"""Root in the job is not root on the host: the job's ids 0-65535 are host ids no account uses.

The range is the slave's *subordinate ids* (``subids`` in slave.toml): the first range of at least
65536 ids that ``/etc/subuid`` and ``/etc/subgid`` give the named user (``autotua`` by default,
as ``usermod --add-subuids`` writes them), or an explicit first id; without an entry for the user,
:data:`DEFAULT_BASE`. :func:`check` refuses a range that an account, a group or another user's
subordinate range uses.

The slave is root, so it writes the mapping itself (``/proc/<pid>/uid_map``); ``newuidmap`` is
for unprivileged users. :class:`UserNamespace` makes the namespace once per job with a short-lived
child and keeps a descriptor of it: the stage3 and the binds are idmapped through it (the host's
root-owned files show as the job's root), and the job's init joins it.

Where idmapped mounts are not available (an old kernel, a filesystem without them), the cached
stage3 is copied once with its owners shifted into the range instead (:func:`shift_tree`).
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections import namedtuple

from autotua import linux
from autotua.slave import SlaveError

SIZE = 65536
DEFAULT_USER = "autotua"
DEFAULT_BASE = 0x70000000  # 1879048192: above the ranges useradd and systemd-nspawn hand out


class IdError(SlaveError):
    def __init__(self, message: str):
        super().__init__(message, "ids")


class IdRange(namedtuple("IdRange", "base source", defaults=("",))):
    """Host ids ``base`` .. ``base + 65535``, the job's 0 .. 65535 (uids and gids alike)."""

    def host(self, job_id: int) -> int:
        return self.base + job_id

    @property
    def root(self) -> tuple[int, int]:
        return (self.base, self.base)

    def map_line(self) -> str:
        return f"0 {self.base} {SIZE}\n"


def _ranges(path: str) -> list[tuple[str, int, int]]:
    """``name:first:count`` lines of an /etc/subuid-style file."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((parts[0], int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def resolve(setting: str, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> IdRange:
    """The range for ``subids`` = ``setting`` (a user name, or a first id)."""
    if setting.isdigit():
        return IdRange(int(setting), f"subids = {setting}")
    found = []
    for path in (subuid, subgid):
        mine = [(first, count) for name, first, count in _ranges(path) if name == setting and count >= SIZE]
        found.append(mine[0][0] if mine else None)
    if found[0] is None and found[1] is None:
        return IdRange(DEFAULT_BASE, f"the default range (no entry for {setting} in {subuid}, {subgid})")
    if found[0] != found[1]:
        raise IdError(f"{subuid} and {subgid} give {setting} different ranges ({found[0]} and {found[1]}); the "
                      f"job's uids and gids need one range of {SIZE} ids starting at the same id in both")
    return IdRange(found[0], f"{subuid}, {subgid}: {setting}:{found[0]}:{SIZE}")


def check(ids: IdRange, setting: str, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> None:
    """Refuse a range that would give a job's processes or files the ids of a host account."""
    import grp
    import pwd

    lo, hi = ids.base, ids.base + SIZE
    if lo < SIZE or hi > 2**32 - 2:
        raise IdError(f"the range {lo}-{hi - 1} is not usable: it must start at {SIZE} or above and end below "
                      f"{2**32 - 2}")
    users = [p for p in pwd.getpwall() if lo <= p.pw_uid < hi]
    groups = [g for g in grp.getgrall() if lo <= g.gr_gid < hi]
    if users or groups:
        who = ", ".join([f"user {p.pw_name} ({p.pw_uid})" for p in users[:3]] +
                        [f"group {g.gr_name} ({g.gr_gid})" for g in groups[:3]])
        raise IdError(f"the job ids {lo}-{hi - 1} ({ids.source}) are used on this host: {who}; choose another "
                      "range (subids in slave.toml, or an entry in /etc/subuid and /etc/subgid)")
    for path in (subuid, subgid):
        for name, first, count in _ranges(path):
            if name != setting and first < hi and lo < first + count:
                raise IdError(f"the job ids {lo}-{hi - 1} overlap {name}'s subordinate ids in {path} "
                              f"({first}-{first + count - 1})")


class UserNamespace:
    """A user namespace mapping 0-65535 onto ``ids``, held by a descriptor (``fd``).

    A child process unshares it and waits; we open ``/proc/<child>/ns/user``, write its maps (as
    root, directly) and let the child go. ``setgroups`` stays allowed: portage's userpriv
    drops supplementary groups.
    """

    def __init__(self, ids: IdRange):
        self.ids = ids
        self.fd: int | None = None

    def create(self) -> int:
        def maps(pid: int) -> None:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(self.ids.map_line())

        try:
            self.fd = linux.namespace_of_child(linux.CLONE_NEWUSER, before_release=maps)
        except OSError as e:
            raise IdError(f"cannot make a user namespace ({e}; is user.max_user_namespaces 0?)") from None
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def idmapped_mounts_work(path: str | os.PathLike, ids: IdRange) -> bool:
    """Whether ``path``'s filesystem can be idmapped here (tried on a detached copy, never attached)."""
    ns = UserNamespace(ids)
    try:
        fd = linux.open_tree(path, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
    except OSError:
        return False
    try:
        linux.mount_setattr(fd, linux.MOUNT_ATTR_IDMAP, ns.create())
        return True
    except (OSError, SlaveError):
        return False
    finally:
        os.close(fd)
        ns.close()


def shift_tree(src: str | os.PathLike, dest: str | os.PathLike, ids: IdRange) -> None:
    """Copy ``src`` to ``dest`` (which must not exist) with every owner moved into ``ids``: the
    one-time alternative to an idmapped stage3. Setuid and setgid bits survive the chown."""
    import shutil

    src, dest = os.fspath(src), os.fspath(dest)
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise IdError(f"copying {src} to shift its owners: {proc.stderr.strip()[-300:]}")

    def shift(path: str) -> None:
        st = os.lstat(path)
        if st.st_uid >= SIZE or st.st_gid >= SIZE:
            raise IdError(f"{path}: owner {st.st_uid}:{st.st_gid} is outside 0-{SIZE - 1}")
        os.lchown(path, ids.host(st.st_uid), ids.host(st.st_gid))
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared them

    shift(dest)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in (*dirnames, *filenames):
            shift(os.path.join(dirpath, name))
