"""The keeper: root on the host, it builds one job's container as an ordered list of steps, holds
it while the job runs, and undoes the steps in reverse when told to, or when the slave is gone.

Started by :class:`autotua.slave.container.Container` as ``python -m autotua.slave.container.keeper``
(a fresh interpreter: nothing of the slave's memory, its token least of all, is in it). It reads
its spec (one JSON line) on stdin, unshares a private mount namespace (nothing it mounts is seen
on the host), and runs :func:`steps`, announcing each (``{"step": name}``) before doing it and
writing what it made so far into ``container.json`` after it (what the next start needs to clean
up after a crash), then answers ``{"ready": ...}``. Then it waits for one command:

``teardown``
    undo every step in reverse (``{"undo": name}`` before each), check that nothing is mounted
    below the job's directory, answer, exit.

When stdin closes (the slave died, however it died) it does the same. If the keeper itself is
killed, the job's init dies with it (``PR_SET_PDEATHSIG``) and with the init every process of the
job; the kernel drops the keeper's mounts with its namespace, the loop device clears itself and
slirp4netns sees its exit descriptor close. Only the empty cgroups are left, for the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time

from autotua import linux
from autotua.slave import SlaveError
from autotua.slave.container import cgroups, disk, init, netfilter, network
from autotua.slave.container.idmap import IdRange, UserNamespace
from autotua.slave.container.mounts import BindMount, FsMount, MountError, MountStack, dev_mounts, run_mount
from autotua.slave.fsutil import UnsafePath, ensure_dir, read_regular_in, replace_file

INSIDE = "/var/tmp/autotua"
SLAVE_GONE = "the slave is gone"


class Context:
    """What the steps share: the spec, the paths, and what each step made."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.job: str = spec["job"]
        self.root = os.path.join(self.job, "root")
        self.ids = IdRange(int(spec["ids"]))
        self.userns: UserNamespace | None = None
        self.disk: disk.Disk | None = None
        self.cgroup: cgroups.JobCgroup | None = None
        self.net_cgroup: str | None = None
        self.init_pid: int | None = None
        self.info: dict = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.job, *parts)

    @property
    def userns_fd(self) -> int | None:
        """The job's user namespace, for idmapped mounts (None: the stage3 was shifted instead)."""
        return self.userns.fd if self.userns and self.spec.get("idmap", True) else None

    @property
    def owner(self) -> tuple[int, int]:
        return self.ids.root


class Step:
    """One part of the container. ``undo()`` must cope with a ``setup()`` that failed half way."""

    name = ""

    def setup(self, ctx: Context) -> None:
        raise NotImplementedError

    def undo(self, ctx: Context) -> None:
        pass


class UserNamespaceStep(Step):
    name = "userns"

    def setup(self, ctx):
        ctx.userns = UserNamespace(ctx.ids)
        ctx.userns.create()

    def undo(self, ctx):
        if ctx.userns:
            ctx.userns.close()


class DiskStep(Step):
    """The job's disk image; mkfs.ext4 runs on while the next steps are made."""

    name = "disk"

    def setup(self, ctx):
        ctx.disk = disk.Disk(ctx.path("disk.img"), ctx.path("disk"), int(ctx.spec["limits"]["disk"]))
        ctx.disk.start()

    def undo(self, ctx):
        if ctx.disk:
            ctx.disk.remove()


class DiskMountStep(Step):
    """The job's disk, mounted in the keeper's namespace, with the directories the root and the
    attachments live in."""

    name = "disk-mount"

    def setup(self, ctx):
        d = ctx.disk
        d.mount()
        ctx.info["loop"] = d.device
        dirs = [("upper", ctx.owner, 0o755), ("ovl", None, 0o700), ("out", ctx.owner, 0o755),
                ("dist-upper", (ctx.ids.host(0), ctx.ids.host(250)), 0o2775), ("dist-ovl", None, 0o700),
                *((f"out/{i}", ctx.owner, 0o755) for i in ctx.spec.get("outs", []))]
        for sub, owner, mode in dirs:
            path = os.path.join(d.mountpoint, sub)
            os.mkdir(path, mode)
            if owner:
                os.chown(path, *owner)
            os.chmod(path, mode)
        os.rmdir(os.path.join(d.mountpoint, "lost+found"))

    def undo(self, ctx):
        if ctx.disk:
            ctx.disk.unmount()


class RootStep(Step):
    """The root: the cached stage3 (idmapped, read-only) below, the job's disk above (overlayfs)."""

    name = "root"

    def __init__(self):
        self.stack: MountStack | None = None

    def setup(self, ctx):
        spec, job = ctx.spec, ctx.job
        self.stack = MountStack(job)
        self.stack.push(BindMount(spec["lower"], "lower", readonly=True, userns_fd=ctx.userns_fd))
        d = ctx.disk.mountpoint
        self.stack.push(FsMount("overlay", "root", source="overlay", flags=linux.MS_NODEV,
                                data=f"lowerdir={job}/lower,upperdir={d}/upper,workdir={d}/ovl"))
        ctx.info["idmapped"] = self.stack.done[0].idmapped

    def undo(self, ctx):
        if self.stack:
            self.stack.undo()


class PortconfStep(Step):
    """The slave's portage defaults (:mod:`autotua.slave.makeconf`), then PORTCONF tarballs over them,
    into the root before anything is mounted over it (only etc/portage/)."""

    name = "portconf"

    def setup(self, ctx):
        portage = ctx.spec.get("portage")
        if portage:
            write_portage_defaults(ctx.root, portage, ctx.owner)
        if not ctx.spec.get("portconf"):
            return
        from autotua.slave.tarball import extract_into

        for path in ctx.spec["portconf"]:
            extract_into(path, ctx.root, id_shift=ctx.ids.base)


def write_portage_defaults(root: str, portage: dict, owner: tuple[int, int]) -> None:
    """``etc/portage/make.conf``: the stage3's own, then the slave's block (also kept as
    ``etc/portage/autotua.conf``); a stage3 whose make.conf is a directory gets the block as its last
    file. And the opt-in binhost's ``binrepos.conf`` entry. Written, never followed."""
    from autotua.slave import makeconf

    block = portage["make_conf"].encode()
    replace_file(root, makeconf.AUTOTUA_CONF, block, owner=owner)
    conf = os.path.join(root, "etc/portage/make.conf")
    if os.path.isdir(conf) and not os.path.islink(conf):
        replace_file(root, "etc/portage/make.conf/zz-autotua.conf", block, owner=owner)
    else:
        try:
            stage3 = read_regular_in(root, ["etc", "portage"], "make.conf", 1 << 20).decode(errors="replace")
        except UnsafePath:  # none (or a link): the block alone
            stage3 = ""
        replace_file(root, "etc/portage/make.conf", makeconf.job_make_conf(stage3, portage["make_conf"]).encode(),
                     owner=owner)
    if portage.get("binrepos_conf"):
        binrepos = os.path.join(root, "etc/portage/binrepos.conf")
        if os.path.isfile(binrepos) and not os.path.islink(binrepos):  # a file: make it the directory form
            old = read_regular_in(root, ["etc", "portage"], "binrepos.conf", 1 << 20)
            os.unlink(binrepos)
            replace_file(root, "etc/portage/binrepos.conf/stage3.conf", old, owner=owner)
        replace_file(root, makeconf.BINREPOS_CONF, portage["binrepos_conf"].encode(), owner=owner)


class FilesStep(Step):
    """The work directories of the plan's jobuilds, resolv.conf and hosts: written, never followed."""

    name = "files"

    def setup(self, ctx):
        for d in ctx.spec.get("dirs", []):
            ensure_dir(ctx.root, d, owner=ctx.owner)
        hostname = ctx.spec["hostname"]
        replace_file(ctx.root, "etc/resolv.conf", network.resolv_conf(ctx.spec["network"]), owner=ctx.owner)
        replace_file(ctx.root, "etc/hosts", network.hosts(hostname), owner=ctx.owner)
        replace_file(ctx.root, "etc/hostname", f"{hostname}\n".encode(), owner=ctx.owner)


class MountsStep(Step):
    """Everything mounted into the root by the host's root, so that the kernel locks it."""

    name = "mounts"

    def __init__(self):
        self.stack: MountStack | None = None

    def setup(self, ctx):
        spec, own, fd = ctx.spec, ctx.owner, ctx.userns_fd
        d = ctx.disk.mountpoint
        s = self.stack = MountStack(ctx.job)
        s.push(BindMount(spec["tree"], f"root{INSIDE}/tree", readonly=True, userns_fd=fd, owner=own))
        s.push(BindMount(spec["bridge"], f"root{INSIDE}/bridge", readonly=True, userns_fd=fd, owner=own))
        s.push(BindMount(f"{d}/out", f"root{INSIDE}/out", owner=own))
        # DISTDIR: the verified cache read-only below, the job's own downloads above
        s.push(BindMount(spec["distdir"], "dist-lower", readonly=True, userns_fd=fd))
        s.push(FsMount("overlay", "root/var/cache/distfiles", source="overlay", flags=linux.MS_NODEV, owner=own,
                       data=f"lowerdir={ctx.job}/dist-lower,upperdir={d}/dist-upper,workdir={d}/dist-ovl"))
        if spec.get("pkgdir"):  # the binary package cache of the job's signers (autotua.slave.binpkgs)
            s.push(BindMount(spec["pkgdir"], "root/var/cache/binpkgs", userns_fd=fd, owner=own))
        repo = spec.get("repository")  # the job's snapshot, or the host's repository: where portage looks
        if repo and os.path.isdir(repo):
            s.push(BindMount(repo, "root/var/db/repos/gentoo", readonly=True, userns_fd=fd, owner=own))
        shm = int(spec["limits"].get("shm") or 0) or 64 << 20
        for m in [*dev_mounts("root", own, ctx.ids.host(5), shm), run_mount("root", own)]:
            s.push(m)
        ensure_dir(ctx.root, "proc", owner=own)
        ensure_dir(ctx.root, "sys", owner=own)
        ctx.info["mounts"] = [str(m) for m in s.done]

    def undo(self, ctx):
        if self.stack:
            self.stack.undo()


class CgroupStep(Step):
    name = "cgroup"

    def setup(self, ctx):
        ctx.cgroup = cgroups.JobCgroup(f"autotua-{os.path.basename(ctx.job)}",
                                       cgroups.Limits.from_spec(ctx.spec["limits"]))
        ctx.info["cgroups"] = ctx.cgroup.dirs
        ctx.cgroup.create()
        ctx.info["cgroup_where"] = ctx.cgroup.where
        ctx.info["watch"] = ctx.cgroup.watch()
        if ctx.spec["network"] == "outbound":
            # slirp4netns's, for its connection filter; made now: once the init moves into the job's
            # cgroup (holding the cgroup lock through an RCU grace period), a mkdir would wait for it
            ctx.net_cgroup = ctx.cgroup.child("net")

    def undo(self, ctx):
        if ctx.cgroup:
            ctx.cgroup.remove()


class InitStep(Step):
    """Fork the job's init into a new PID namespace, early: while the keeper goes on, it puts itself
    into the job's cgroups and makes the job's network namespace (both slow kernel work: RCU grace
    periods), tells slirp4netns (``net``), then waits to be let in (:class:`EnterStep`)."""

    name = "init"

    def __init__(self):
        self.status_r: int | None = None
        self.go_w: int | None = None
        self.lifeline: int | None = None
        self.net_r: int | None = None  # for slirp4netns: the init made the network namespace
        self.buf = b""

    def setup(self, ctx):
        go_r, go_w = os.pipe()
        status_r, status_w = os.pipe()
        life_r, self.lifeline = os.pipe()  # the write end lives as long as the keeper does
        net_r, net_w = os.pipe() if ctx.spec["network"] == "outbound" else (None, None)
        channel = int(ctx.spec["channel_fd"])
        own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        procs = [os.path.join(d, "cgroup.procs") for d in ctx.cgroup.dirs]
        linux.unshare(linux.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            init.main({**ctx.spec, "root": ctx.root}, procs, ctx.userns.fd, go_r, status_w, channel, life_r, net_w)
        linux.setns(own_pidns, linux.CLONE_NEWPID)  # the keeper's later children stay out of it
        for fd in (own_pidns, life_r, go_r, status_w, net_w):
            if fd is not None:
                os.close(fd)
        os.close(channel)  # the init holds it now: its death closes it
        ctx.init_pid = ctx.info["init_pid"] = pid
        self.status_r, self.go_w, self.net_r = status_r, go_w, net_r
        # needs CAP_SYS_RESOURCE; without it the OOM killer still prefers the job's big processes
        with contextlib.suppress(PermissionError), open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("-1000")

    def expect(self, key: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.status_r], [], [], left)[0]:
                raise MountError(f"the job's init did not get to '{key}' within {timeout:.0f} s")
            chunk = os.read(self.status_r, 4096)
            if not chunk:
                raise MountError("the job's init exited while entering the container")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if "error" in msg:
            raise MountError(msg["error"])
        if key not in msg:
            raise MountError(f"the job's init said {msg!r} instead of '{key}'")
        return msg

    def go(self) -> None:
        os.write(self.go_w, b"g")
        os.close(self.go_w)
        self.go_w = None

    def kill(self, ctx) -> None:
        """SIGKILL the init: the kernel kills every process of its namespace, and its mount
        namespace (holding the disk through the root's overlay) goes with the last of them."""
        for fd in (self.status_r, self.go_w, self.lifeline, self.net_r):
            if fd is not None:
                os.close(fd)
        self.status_r = self.go_w = self.lifeline = self.net_r = None
        pid = ctx.init_pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        ctx.init_pid = None

    def undo(self, ctx):
        self.kill(ctx)


class NetworkStep(Step):
    """outbound: the connection filter on a v2 cgroup of its own, then slirp4netns in it, for the
    network namespace the init is making (it waits for it, in its own process)."""

    name = "network"

    def __init__(self, init_step: InitStep):
        self.init_step = init_step
        self.slirp: network.Slirp | None = None

    def setup(self, ctx):
        if ctx.spec["network"] != "outbound":
            return
        helper = ctx.net_cgroup
        if helper is None:
            raise network.NetworkError("network = outbound needs the unified (v2) cgroup hierarchy for the filter "
                                       "that keeps jobs off the host's own addresses")
        blocked, allowed = netfilter.host_rules()
        ctx.info["blocked"] = blocked
        procs = [os.path.join(helper, "cgroup.procs"), *(os.path.join(d, "cgroup.procs")
                                                         for d in dict.fromkeys(ctx.cgroup.v1.values()))]
        net_r, self.init_step.net_r = self.init_step.net_r, None
        # the filter is attached by slirp4netns's own process before it joins the cgroup: the keeper goes on
        self.slirp = network.Slirp(ctx.spec["slirp4netns"], ctx.init_pid, net_r, ctx.path("slirp4netns.log"), procs,
                                   prepare=lambda: netfilter.attach(helper, blocked, allowed))
        ctx.info["slirp4netns"] = self.slirp.pid

    def undo(self, ctx):
        if self.slirp:
            self.slirp.stop()
            self.slirp = None


class EnterStep(Step):
    """Let the init in (every mount is made), then wait until the disk is reserved, slirp4netns is
    up and the init is inside: root pivoted, user namespace joined, every mount locked."""

    name = "enter"

    def __init__(self, init_step: InitStep, network_step: NetworkStep):
        self.init_step, self.network_step = init_step, network_step

    def setup(self, ctx):
        self.init_step.go()
        self.init_step.expect("net")
        if ctx.spec["network"] != "host":
            ctx.info["netns"] = os.stat(f"/proc/{ctx.init_pid}/ns/net").st_ino
        ctx.disk.wait_reserved()
        ctx.info["disk_allocated"] = ctx.disk.allocated
        if self.network_step.slirp:
            self.network_step.slirp.wait_ready()
        self.init_step.expect("entered")

    def undo(self, ctx):
        if self.network_step.slirp:  # its exit (the tap device going) takes a while: let it go on meanwhile
            self.network_step.slirp.kill()
        self.init_step.kill(ctx)  # first: nothing of the job may run while the rest is undone


def steps() -> list[Step]:
    """The container, in the order it is built (and undone in reverse). Three of them go on in
    processes of their own while the keeper makes the next: mkfs.ext4 (until disk-mount), the
    init placing itself and making the network namespace, slirp4netns coming up (until enter)."""
    init_step = InitStep()
    network_step = NetworkStep(init_step)
    return [DiskStep(), CgroupStep(), UserNamespaceStep(), init_step, network_step, DiskMountStep(), RootStep(),
            PortconfStep(), FilesStep(), MountsStep(), EnterStep(init_step, network_step)]


# -- the process ----------------------------------------------------------------------------------
def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Commands:
    """Lines from the slave on stdin, read from the descriptor (no buffering behind our back)."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.buf = b""
        self.eof = False

    def _fill(self, timeout: float) -> None:
        if not self.eof and select.select([self.fd], [], [], timeout)[0]:
            chunk = os.read(self.fd, 65536)
            self.buf += chunk
            self.eof = not chunk

    def line(self, timeout: float | None = None) -> str | None:
        """The next line; "" at EOF; None when nothing came within ``timeout``."""
        while b"\n" not in self.buf and not self.eof:
            before = len(self.buf)
            self._fill(timeout if timeout is not None else 3600)
            if timeout is not None and len(self.buf) == before and not self.eof:
                return None
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            return line.decode()
        return ""

    def gone(self) -> bool:
        """Whether the slave has closed our stdin (checked between steps)."""
        self._fill(0)
        return self.eof and not self.buf


class Keeper:
    def __init__(self, spec: dict, commands: Commands):
        self.ctx = Context(spec)
        self.commands = commands
        self.steps = steps()
        self.done: list[Step] = []
        self.timings: dict[str, float] = {}

    def build(self) -> None:
        for step in self.steps:
            reply({"step": step.name})
            t = time.perf_counter()
            self.done.append(step)  # undone even when it fails half way
            try:
                step.setup(self.ctx)
            except (OSError, SlaveError, ValueError, KeyError) as e:
                raise SlaveError(f"{step.name}: {e}") from e
            self.timings[step.name] = round((time.perf_counter() - t) * 1000, 2)
            self.record()  # as it grows: a crash at any step leaves what it had made named
            if self.commands.gone():
                raise SlaveError(SLAVE_GONE)

    def undo(self, talk: bool = True) -> list[str]:
        errors = []
        for step in reversed(self.done):
            if talk:
                with contextlib.suppress(OSError):
                    reply({"undo": step.name})
            t = time.perf_counter()
            try:
                step.undo(self.ctx)
            except (OSError, SlaveError) as e:
                errors.append(f"{step.name}: {e}")
            self.timings[f"undo:{step.name}"] = round((time.perf_counter() - t) * 1000, 2)
        self.done.clear()
        left = linux.mounts_under(self.ctx.job)
        if left:
            errors.append("still mounted: " + ", ".join(left))
        return errors

    def record(self) -> None:
        """container.json: what the next start cleans up if this run is lost."""
        with open(self.ctx.path("container.json"), "w") as f:
            json.dump({"keeper": os.getpid(), **self.ctx.info}, f)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the slave decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    commands = Commands()
    line = commands.line()
    if not line:
        return 1
    spec = json.loads(line)
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    keeper = Keeper(spec, commands)
    try:
        keeper.build()
    except (OSError, SlaveError, ValueError, KeyError) as e:
        talk = SLAVE_GONE not in str(e)
        errors = keeper.undo(talk=talk)
        if talk:
            with contextlib.suppress(OSError):
                reply({"error": "; and then ".join([str(e), *errors])})
        return 1
    try:
        reply({"ready": True, **keeper.ctx.info, "timings": keeper.timings})
    except OSError:
        keeper.undo(talk=False)
        return 1
    while True:
        cmd = commands.line(timeout=None)
        if cmd is None:
            continue
        cmd = cmd.strip()
        if cmd in ("", "teardown"):  # "" is EOF: the slave is gone
            errors = keeper.undo(talk=bool(cmd))
            if cmd:
                with contextlib.suppress(OSError):
                    reply({"error": "teardown: " + "; ".join(errors), "timings": keeper.timings} if errors
                          else {"ok": True, "timings": keeper.timings})
            return 1 if errors else 0
        with contextlib.suppress(OSError):
            reply({"error": f"unknown command {cmd!r}"})


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(1)
