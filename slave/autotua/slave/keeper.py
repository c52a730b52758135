"""The keeper: PID 1 of a job's private mount and PID namespaces, holding the chroot's mounts.

Started by :mod:`autotua.slave.chroot` as ``unshare --mount --pid --fork --kill-child --propagation
private -- python -m autotua.slave.keeper``. It reads its spec (one JSON line) on stdin, builds the
root (overlayfs over the cached stage3, or a plain copy where overlayfs is unavailable), makes the
Handbook's mounts and the slave's binds, unpacks the PORTCONF tarballs, answers ``{"ready": ...}``
and then waits for commands, one per line:

``killall``   kill every other process of the namespace (it is PID 1: ``kill(-1, SIGKILL)``)
``teardown``  killall, unmount everything in reverse order, check mountinfo, answer, exit

Phases run in the namespace through ``nsenter`` (see :mod:`autotua.slave.chroot`), never as the
keeper's children. When stdin closes (the slave died, however it died) the keeper kills
everything and exits; the kernel then removes every mount of the namespace, so a crash cannot
leave a bind mount of ``/dev`` behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

from autotua.slave import SlaveError
from autotua.slave.mounts import BindMount, FsMount, MountError, MountStack, handbook_mounts, shm_mount


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def killall(proc_dir: str | None, timeout: float = 10) -> None:
    """Kill every process of the namespace but ourselves, and wait until they are gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap()
        if not proc_dir or not os.path.isdir(proc_dir):
            return
        others = [p for p in os.listdir(proc_dir) if p.isdigit() and p != "1"]
        if not others:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        time.sleep(0.01)


def make_root(spec: dict, stack: MountStack) -> str:
    """The job's root: overlayfs (upper and work dirs in the job directory) or a plain copy."""
    lower, upper, work = spec["lower"], spec["upper"], spec["work"]
    if spec.get("overlay", True) and not any(c in p for p in (lower, upper, work) for c in ",:\\"):
        try:
            stack.push(FsMount("overlay", "", source="overlay",
                               data=f"lowerdir={lower},upperdir={upper},workdir={work}"))
            return "overlay"
        except OSError as e:
            if not spec.get("copy_fallback", True):
                raise MountError(f"overlayfs over {lower}: {e.strerror}") from None
            sys.stderr.write(f"autotua keeper: overlayfs unavailable ({e.strerror}); copying the root instead\n")
    # a plain copy: hard work, but the same result (a root nobody else sees)
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", f"{lower}/.", upper], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MountError(f"copying {lower}: {proc.stderr.strip()[-300:]}")
    stack.push(BindMount(upper, ""))
    return "copy"


def setup(spec: dict, stack: MountStack) -> dict:
    from autotua.slave.fsutil import ensure_dir, replace_file

    root = stack.root
    how = make_root(spec, stack)
    for m in handbook_mounts():
        stack.push(m)
    warnings = []
    try:
        stack.push(shm_mount())
    except (OSError, SlaveError) as e:
        warnings.append(f"/dev/shm: not mounted as a tmpfs ({e})")
    if spec.get("resolv_conf") and os.path.isfile(spec["resolv_conf"]):
        with open(spec["resolv_conf"], "rb") as f:
            replace_file(root, "etc/resolv.conf", f.read())  # copied, never written through a link
    for b in spec.get("binds", []):
        if b.get("optional") and not os.path.isdir(b["source"]):
            continue
        stack.push(BindMount(b["source"], b["at"], readonly=b.get("readonly", False)))
    for d in spec.get("dirs", []):
        ensure_dir(root, d["path"], d.get("mode", 0o755))
    if spec.get("portconf"):
        from autotua.slave.tarball import extract_into

        for path in spec["portconf"]:
            extract_into(path, root)
    return {"ready": True, "root": how, "mounts": [str(m) for m in stack.done], "warnings": warnings}


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the slave decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    line = sys.stdin.readline()
    if not line:
        return 1
    spec = json.loads(line)
    stack = MountStack(spec["root"])
    proc_dir = os.path.join(stack.root, "proc")
    try:
        reply(setup(spec, stack))
    except (OSError, SlaveError, ValueError) as e:
        try:
            stack.undo()
        except SlaveError as undo_error:
            reply({"error": f"{e}; and then {undo_error}"})
            return 1
        reply({"error": str(e)})
        return 1
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], 1.0)
        reap()
        if not ready:
            continue
        cmd = sys.stdin.readline().strip()
        if cmd == "killall":
            killall(proc_dir)
            reply({"ok": True})
        elif cmd in ("teardown", ""):  # "" is EOF: the slave is gone
            killall(proc_dir)
            try:
                stack.undo()
            except SlaveError as e:
                if cmd:
                    reply({"error": str(e)})
                return 1
            if cmd:
                reply({"ok": True, "left": []})
            return 0
        else:
            reply({"error": f"unknown command {cmd!r}"})


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(1)
