"""Hostile signed jobuilds against the job container, run by a real ``autotua-slave`` against a real
master (issue 11): every attack a maintainer's valid signature made possible with the chroot, and
more, each a phase of a signed jobuild, each reported by the jobuild itself (``result
attack.<name>``) and each checked on the host: the attack failed, nothing it aimed at changed
(checksums, mounts, cgroups, processes, the host name, the kernel's knobs and log, the listeners),
and the job ended as the jobuild expects, or failed with a clear reason.

One job carries most attacks (bob/evil, then bob/evil-links for what the slave does after a
jobuild); limits (processes, disk, memory), killing everything, a bad PORTCONF and an untrusted
maintainer have jobs of their own; alice's jobs afterwards do Gentoo work in the same kind of
container and find nothing bob's job left. The jobs run once, in the module's fixture; each
attack is then asserted on its own.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests

from autotua.demo.httpserver import MirrorServer
from autotua.demo.sampletree import SampleTree
from autotua.demo.slaves import SlaveSetup
from autotua.linux import mountinfo
from autotua.metadata import MetadataReader
from autotua.slave.container.netfilter import host_addresses
from autotua_master.live import LiveMaster
from tests.slave.helpers import needs_root
from tests.support.container import cgroups_named, loops_under
from tests.support.live import add_jobuilds, job, latest, log_of, start
from tests.support.networld import Listener

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]
REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "slave/autotua"
DISK, MEMORY, PIDS = "256M", "512M", 200

COMMON = r'''
verdict() { # NAME blocked|ESCAPED DETAIL...: one line in the log, one result for the test
	local n=$1 v=$2
	shift 2
	echo "attack ${n}: ${v}: $*"
	result "attack.${n}" "${v}: $*"
}
'''

# name -> bash: each calls `verdict <name> blocked|ESCAPED <what happened>`
ATTACKS = {
    "chroot-escape": r'''
	out=$(python3 - <<'PY' 2>&1
import os
os.makedirs("/tmp/x", exist_ok=True)
os.chroot("/tmp/x")           # the classic: chroot deeper, keep the cwd outside, climb
for _ in range(64):
    os.chdir("..")
os.chroot(".")
for path in ("@SECRET_FILE@", "/proc/1/root@SECRET_FILE@"):
    try:
        print(open(path).read())
    except OSError as e:
        print(path, e.strerror)
PY
)
	if [[ ${out} == *@SECRET@* ]]; then verdict chroot-escape ESCAPED "${out}"
	else verdict chroot-escape blocked "${out//$'\n'/; }"; fi''',
    "proc1-root": r'''
	r=$(cat "/proc/1/root@SECRET_FILE@" 2>&1); w=$(echo pwned 2>&1 >>"/proc/1/root@VICTIM_FILE@")
	if [[ ${r} == *@SECRET@* ]]; then verdict proc1-root ESCAPED "read ${r}"
	else verdict proc1-root blocked "read: ${r}; write: ${w:-no error}"; fi''',
    "proc-pid-root": r'''
	found=
	for p in /proc/[0-9]*; do
		for via in root cwd; do
			[[ $(cat "${p}/${via}@SECRET_FILE@" 2>/dev/null) == *@SECRET@* ]] && found+=" ${p}/${via}"
			echo pwned 2>/dev/null >>"${p}/${via}@VICTIM_FILE@"
		done
	done
	if [[ -n ${found} ]]; then verdict proc-pid-root ESCAPED "read the secret through${found}"
	else verdict proc-pid-root blocked "no /proc/<pid>/root or cwd reaches the host ($(ls -d /proc/[0-9]* | wc -l)"\
		"processes tried)"; fi''',
    "remount-ro-binds": r'''
	said= forged="forg""ed-by-bob"  # the word itself is nowhere in the jobuilds' text
	for m in /var/tmp/autotua/tree /var/tmp/autotua/bridge @REPOSITORY@; do
		said+=" ${m}: $(mount -o remount,rw,bind "${m}" 2>&1 | head -1)"
		echo "${forged}" 2>/dev/null >>"${m}/bob/evil-links/evil-links-1.0.jobuild"  # the job's next jobuild
		echo "echo ${forged}" 2>/dev/null >>"${m}/jobuild.sh"
		echo "${forged}" 2>/dev/null >"${m}/profiles/evil"
	done
	w=$( { echo "${forged}" >>/var/tmp/autotua/bridge/jobuild.sh; } 2>&1)
	if grep -qs "${forged}" /var/tmp/autotua/bridge/jobuild.sh /var/tmp/autotua/tree/bob/evil-links/*.jobuild \
			@REPOSITORY@/profiles/evil; then verdict remount-ro-binds ESCAPED "wrote through a read-only bind"
	else verdict remount-ro-binds blocked "${said}; write: ${w}"; fi''',
    "peel-off-mounts": r'''
	said=
	for m in /var/tmp/autotua/tree /var/tmp/autotua/bridge /var/cache/distfiles /dev /proc /sys; do
		said+=" ${m}: $(umount "${m}" 2>&1 | head -1)"
	done
	said+="; lazily: $(umount -l /var/tmp/autotua/tree 2>&1 | head -1)"
	if [[ -f /var/tmp/autotua/bridge/jobuild.sh && -e /dev/null && -d /proc/1 ]]; then
		verdict peel-off-mounts blocked "${said}"
	else verdict peel-off-mounts ESCAPED "a mount came off: ${said}"; fi''',
    "distfile-poison": r'''
	f=/var/cache/distfiles/@DISTFILE@
	echo poisoned >"${f}" 2>/dev/null; echo forged >/var/cache/distfiles/.autotua/verified.sqlite 2>/dev/null
	r=$(mount -o remount,rw /var/cache/distfiles 2>&1 | head -1)
	# DISTDIR is writable by design (a per-job layer): the job sees its own change, the cache does not
	verdict distfile-poison blocked "changed in the job's own layer only ($(head -c 9 "${f}")); remount: ${r:-ok}"''',
    "stage3-poison": r'''
	cp /bin/false /bin/true && echo '#!/bin/sh' >/bin/env; chmod 755 /bin/env
	verdict stage3-poison blocked "replaced /bin/true and /bin/env in the job's root (the next job checks its own)"''',
    "kernel-log": r'''
	a=$( { echo "@MARKER@" >/dev/kmsg; } 2>&1); b=$(mknod /tmp/kmsg c 1 11 2>&1)
	if [[ -c /tmp/kmsg ]] && echo "@MARKER@" >/tmp/kmsg 2>/dev/null; then verdict kernel-log ESCAPED "wrote /dev/kmsg"
	else verdict kernel-log blocked "/dev/kmsg: ${a:-?}; mknod: ${b}"; fi''',
    "sysctl": r'''
	a=$(echo '|/tmp/evil %p' 2>&1 >/proc/sys/kernel/core_pattern)
	b=$(umount /proc/sys 2>&1; echo '|/tmp/evil %p' 2>&1 >/proc/sys/kernel/core_pattern)
	c=$(echo h 2>&1 >/proc/sysrq-trigger); d=$(echo /tmp/evil 2>&1 >/sys/kernel/uevent_helper)
	if [[ $(cat /proc/sys/kernel/core_pattern) == *evil* ]]; then verdict sysctl ESCAPED "core_pattern set"
	else verdict sysctl blocked "core_pattern: ${a}; after umount /proc/sys: ${b}; sysrq: ${c};"\
		"uevent_helper: ${d}"; fi''',
    "hostname": r'''
	python3 -c 'import socket; socket.sethostname("evil-host")' 2>&1
	verdict hostname blocked "its own UTS namespace is now $(cat /proc/sys/kernel/hostname)"\
		"(the host's is checked outside)"''',
    "cgroups": r'''
	mkdir -p /tmp/cg2 /tmp/cg1
	a=$(mount -t cgroup2 none /tmp/cg2 2>&1 && mkdir /tmp/cg2/evil-cgroup 2>&1)
	b=$(mount -t cgroup -o memory none /tmp/cg1 2>&1 && echo /tmp/evil 2>&1 >/tmp/cg1/release_agent)
	c=$(unshare --user --map-root-user --cgroup --mount sh -c \
		'mount -t cgroup -o rdma none /tmp/cg1 && echo /tmp/evil >/tmp/cg1/release_agent' 2>&1)
	if [[ -d /tmp/cg2/evil-cgroup ]]; then verdict cgroups ESCAPED "made a cgroup"
	else verdict cgroups blocked "v2: ${a:-mounted, mkdir refused}; v1: ${b}; nested: ${c}"; fi''',
    "other-processes": r'''
	a=$(cat /proc/1/environ 2>&1 | head -c 200); b=$(head -c 16 /proc/1/mem 2>&1 | head -c 200)
	c=$(ls /proc/1/fd 2>&1 | head -1); d=$(cat /proc/@TEST_PID@/environ 2>&1 | head -c 200)
	if [[ ${a} == *=* || ${d} == *=* ]]; then verdict other-processes ESCAPED "read an environment"
	else verdict other-processes blocked "init environ: ${a}; mem: ${b}; fd: ${c}; a host pid: ${d}"; fi''',
    "host-mount-namespace": r'''
	said=
	mkdir -p /tmp/m
	for ns in /proc/[0-9]*/ns/mnt; do
		said+=" ${ns}: $(nsenter --mount="${ns}" -- mount -t tmpfs autotua-evil-mount /tmp/m 2>&1 | head -1)"
		said+="$(grep -c autotua-evil-mount /proc/self/mountinfo) mounted;"
	done
	verdict host-mount-namespace blocked "every mount namespace it can see is its own:${said}"''',
    "slave-code": r'''
	said=
	for f in "@PACKAGE@/slave/cleanup.py" /proc/1/root"@PACKAGE@/slave/cleanup.py" /proc/1/exe; do
		said+=" ${f}: $( { echo 'import os; os.system("touch /tmp/pwned")' >>"${f}"; } 2>&1 | head -1)"
	done
	verdict slave-code blocked "${said}"''',
    "slave-secrets": r'''
	got=$(cat "@SLAVE_TOML@" "@TOKEN_FILE@" /proc/1/root"@TOKEN_FILE@" 2>&1)
	if [[ ${got} == *@TOKEN@* ]]; then verdict slave-secrets ESCAPED "read the token"
	else verdict slave-secrets blocked "${got//$'\n'/; }"; fi''',
    "host-services": r'''
	said=
	for to in 127.0.0.1/@MASTER_PORT@ 127.0.0.1/@LOOPBACK_PORT@ 10.0.2.2/@MASTER_PORT@ @HOST_ADDRS@; do
		said+=" ${to}: $(timeout 5 bash -c "exec 3<>/dev/tcp/${to%/*}/${to#*/} && echo CONNECTED" 2>&1 | tail -1)"
	done
	if [[ ${said} == *CONNECTED* ]]; then verdict host-services ESCAPED "${said}"
	else verdict host-services blocked "${said}"; fi''',
    "ptrace": r'''
	out=$(python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH the init
print("attached" if r == 0 else "refused:", os.strerror(ctypes.get_errno()))' 2>&1)
	if [[ ${out} == attached* ]]; then verdict ptrace ESCAPED "${out}"; else verdict ptrace blocked "${out}"; fi''',
    "keyctl": r'''
	out=$(python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEYCTL, ADD_KEY, SEARCH, DESCRIBE = 250, 248, 10, 6
found = libc.syscall(KEYCTL, SEARCH, -3, b"user", b"@KEY_NAME@", 0)  # in the session keyring
print("found the host key" if found > 0 else "not in its session keyring:", os.strerror(ctypes.get_errno()))
buf = ctypes.create_string_buffer(256)
libc.syscall(KEYCTL, DESCRIBE, -3, buf, 256)
print("session keyring:", buf.value.decode())
libc.syscall(ADD_KEY, b"user", b"autotua-job-key", b"left by bob", 11, -4)  # for the next job to look for
' 2>&1)
	if [[ ${out} == *"found the host key"* ]]; then verdict keyctl ESCAPED "${out}"
	else verdict keyctl blocked "${out//$'\n'/; }"; fi''',
    "mknod": r'''
	a=$(mknod /tmp/sda b 8 0 2>&1); b=$(mknod /tmp/mem c 1 1 2>&1)
	if [[ -b /tmp/sda || -c /tmp/mem ]]; then verdict mknod ESCAPED "made a device node"
	else verdict mknod blocked "${a}; ${b}"; fi''',
    "nested-userns": r'''
	out=$(unshare --user --map-root-user --mount sh -c '
		mount -o remount,rw,bind /var/tmp/autotua/tree 2>&1; touch /var/tmp/autotua/tree/evil 2>&1
		umount /var/tmp/autotua/bridge 2>&1; id' 2>&1)
	if [[ -e /var/tmp/autotua/tree/evil ]]; then verdict nested-userns ESCAPED "${out}"
	else verdict nested-userns blocked "${out//$'\n'/; }"; fi''',
    "proc-self-exe": r'''
	out=$(python3 -c '
import os
for p in ("/proc/1/exe", "/proc/self/exe"):
    try:
        open(p, "r+b"); print(p, "opened for writing")
    except OSError as e:
        print(p, e.strerror)
try:
    print("init exe:", os.readlink("/proc/1/exe"))
except OSError as e:
    print("init exe:", e.strerror)' 2>&1)
	if [[ ${out} == *"opened for writing"* ]]; then verdict proc-self-exe ESCAPED "${out}"
	else verdict proc-self-exe blocked "${out//$'\n'/; }"; fi''',
}
EVIL = COMMON + r'''DESCRIPTION="Try every way out of the container (the test judges from outside too)"

src_test() {
''' + "\n".join(f"\t# -- {name}{code}" for name, code in ATTACKS.items()) + r'''
	echo "bob was here" >/dev/shm/evil; echo "bob was here" >/run/evil
	# last: the attachment directory itself a link to the host's secret's directory, for the slave
	# to read "secret" through once this jobuild is over
	mv "${__AB_OUTDIR}" "${__AB_OUTDIR}.away" && ln -s "@SECRET_DIR@" "${__AB_OUTDIR}"
	printf 'AUTOTUA_ATTACH=%s\n' "secret through a linked directory" >&"${__AB_FD}"
}
'''
# after a jobuild the slave reads attachments and the log: links the job made must not lead it anywhere
EVIL_LINKS = COMMON + r'''DESCRIPTION="Links where the slave reads attachments"
DEPEND="=bob/evil-1.0"

src_test() {
	printf 'genuine\n' >"${T}/real.txt"
	attach "${T}/real.txt" "a real one"
	ln -s "@SECRET_FILE@" "${__AB_OUTDIR}/secret-link"
	printf 'AUTOTUA_ATTACH=%s\n' "secret-link a link to the host" ../../logs/0.log "/etc/passwd x" >&"${__AB_FD}"
	grep -qs "forg""ed-by-bob" "${__AB_JOBUILD}" /var/tmp/autotua/bridge/jobuild.sh && result attack.tree-tamper ESCAPED
	verdict symlink-attachments blocked "made the links (the test checks what the slave sent)"
}
'''
LIMITS = {
    "bob/fork-bomb/fork-bomb-1.0.jobuild": 'DESCRIPTION="A fork bomb"\nsrc_test() { echo "forking"; '
                                            'b() { b | b & }; b; sleep 600; }\n',
    "bob/disk-hog/disk-hog-1.0.jobuild": 'DESCRIPTION="Fill the disk"\nsrc_test() { echo "before the disk filled"; '
                                          'dd if=/dev/zero of=/var/tmp/fill bs=1M count=2048; sleep 600; }\n',
    "bob/memory-hog/memory-hog-1.0.jobuild": 'DESCRIPTION="Take all memory"\nsrc_test() { echo "allocating"; '
                                              'python3 -c "x = [bytearray(1 << 20) for _ in range(4096)]"; '
                                              'sleep 600; }\n',
    "bob/kill-all/kill-all-1.0.jobuild": 'DESCRIPTION="kill -9 -1"\nsrc_test() { echo "killing"; kill -9 -1; '
                                          'sleep 600; }\n',
}
WORK = r'''DESCRIPTION="The Gentoo work portage does, in the container"

ok() { result "work.$1" "ok: $2"; echo "work $1: ok: $2"; }
no() { result "work.$1" "FAILED: $2"; echo "work $1: FAILED: $2"; }
check() { # NAME EXPECTED COMMAND...
	local n=$1 want=$2 got
	shift 2
	got=$("$@" 2>&1)
	if [[ ${got} == ${want} ]]; then ok "${n}" "${got//$'\n'/; }"; else no "${n}" "${got//$'\n'/; }"; fi
}

src_test() {
	mkdir -p "${T}/w"
	touch "${T}/w/f"
	check chown portage:portage bash -c "chown -R portage:portage '${T}/w' && stat -c %U:%G '${T}/w/f'"
	check userpriv written bash -c "setpriv --reuid=250 --regid=250 --init-groups touch '${T}/w/new' && echo written"
	check setuid "0 250" setpriv --reuid=250 --regid=250 --clear-groups sh -c \
		'echo $(/usr/bin/autotua-suid-id -u) $(/usr/bin/autotua-suid-id -ru)'
	check pty "/dev/pts/*" python3 -c 'import os, pty
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/tty", ["tty"])
print(os.read(fd, 100).decode().strip())'
	check sandboxes "1 *" unshare --net --ipc --pid --uts --mount --fork --mount-proc \
		sh -c 'echo $$ $(ls /proc | grep -c "^[0-9]")'
	check shm "shared *" python3 -c 'from multiprocessing import shared_memory as s
m = s.SharedMemory(create=True, size=1 << 20); m.buf[:6] = b"shared"
n = s.SharedMemory(m.name); print(bytes(n.buf[:6]).decode(), m.name); n.close(); m.close(); m.unlink()'
	check big-file "209715200" bash -c \
		"dd if=/dev/zero of=/var/tmp/big bs=1M count=200 status=none && stat -c %s /var/tmp/big && rm /var/tmp/big"
	check nproc "[1-9]*" nproc
	check cpuinfo "processor*" bash -c "grep -m1 ^processor /proc/cpuinfo"
	check devices "ENOSPC" bash -c "head -c 4 /dev/urandom >/dev/null && head -c 1 /dev/zero >/dev/null \
		&& { echo x >/dev/full 2>/dev/null || echo ENOSPC; }"
	check distdir written bash -c "echo new >/var/cache/distfiles/fetched-by-the-job && echo written"
	check network-sandbox "lo*" unshare --net sh -c 'ls /sys/class/net 2>/dev/null || echo lo-only'
	check repository "gentoo" cat /var/db/repos/gentoo/profiles/repo_name
}
'''
AFTER = r'''DESCRIPTION="Alice's next job: nothing of bob's is left"

src_test() {
	local got
	got=$(sha256sum /bin/true /bin/env | cut -d' ' -f1 | tr '\n' ' ')
	[[ ${got} == "@TRUE_SHA@ @ENV_SHA@ " ]] && result clean.stage3 ok || result clean.stage3 "POISONED: ${got}"
	got=$(sha256sum /var/cache/distfiles/@DISTFILE@ | cut -d' ' -f1)
	[[ ${got} == @DISTFILE_SHA@ ]] && result clean.distfile ok || result clean.distfile "POISONED: ${got}"
	[[ -e /dev/shm/evil || -e /run/evil || -e /var/cache/distfiles/fetched-by-the-job ]] \
		&& result clean.tmpfs "LEFT" || result clean.tmpfs ok
	got=$(python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print("found" if libc.syscall(250, 10, -4, b"user", b"autotua-job-key", 0) > 0 else "none")')
	result clean.keyring "${got}"
	result clean.hostname "$(cat /proc/sys/kernel/hostname)"
}
'''
PORTCONF_EVIL = 'DESCRIPTION="PORTCONF reaching for /run and /dev"\nPORTCONF_URI="mirror://autotua-samples/' \
                'bob-evil-portconf-1.tar.gz"\nsrc_test() { echo "never runs"; }\n'


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None


def _session_key(name: str, payload: bytes):
    """A preexec_fn: a session keyring of its own for the slave, holding a secret key (as a login
    session may hold someone's credentials)."""
    def put() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall(250, 1, b"autotua-test-session")  # KEYCTL_JOIN_SESSION_KEYRING
        if libc.syscall(248, b"user", name.encode(), payload, len(payload), -3) < 0:  # add_key to @s
            raise OSError(ctypes.get_errno(), "add_key")
    return put


def _host_state(world) -> dict:
    """What the attacks aimed at, as the host has it."""
    cg = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "5", "-name", "*evil*"], capture_output=True,
                        text=True).stdout.split()
    return {
        "secret": _sha(world["secret_file"]), "victim": _sha(world["victim_file"]),
        "package": _tree_digest(PACKAGE), "slave_toml": _sha(world["slave"].config),
        "token": _sha(world["slave"].base / "slave.token"),
        "stage3": _tree_digest(world["stage3_root"]) if world.get("stage3_root") else "",
        "distfiles": _sha(world["distdir"] / "hello-suite-1.1.tar.gz") if world["distdir"].exists() else "",
        "repository": _tree_digest(world["repository"]),
        "hostname": socket.gethostname(),
        "core_pattern": Path("/proc/sys/kernel/core_pattern").read_text(),
        "uevent_helper": _read("/sys/kernel/uevent_helper"),  # absent without CONFIG_UEVENT_HELPER
        "kmsg": world["marker"] in subprocess.run(["dmesg"], capture_output=True, text=True).stdout,
        "cgroups": cg,
        "mounts": sorted(f"{m.mount_point} {m.fstype} {m.source}" for m in mountinfo() if "evil" in m.source
                         or "evil" in m.mount_point),
        "loops": loops_under(world["base"]),
        "job_cgroups": cgroups_named([f"autotua-{r}" for r in world.get("runs", [])]),
        "pwned": [p for p in ("/tmp/pwned", "/tmp/evil", "/run/evil", "/dev/shm/evil") if os.path.exists(p)],
        "processes": _ids_processes(),
    }


def _ids_processes() -> list[str]:
    """Processes running as a job's host ids (the default range): none once the jobs are over."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            if 0x70000000 <= uid < 0x70000000 + 65536:
                out.append(pid)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample, stage3, release_key):
    base = tmp_path_factory.mktemp("attacked")
    secret = f"host-secret-{secrets.token_hex(8)}"
    (base / "host").mkdir()
    secret_file, victim_file = base / "host/secret", base / "host/victim"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    victim_file.write_text("the host's own file\n")
    repository = base / "repository"
    (repository / "profiles").mkdir(parents=True)
    (repository / "profiles/repo_name").write_text("gentoo\n")
    # the tree: the sample, plus bob's hostile jobuilds and alice's jobs, in a branch and distdir of its own
    shutil.copytree(sample.branch, base / "jobtage", symlinks=True)
    shutil.copytree(sample.distdir, base / "distfiles")
    tree = SampleTree(base / "jobtage", sample.gnupghome, base / "distfiles", dict(sample.fingerprints))
    evil_tar = base / "distfiles/bob-evil-portconf-1.tar.gz"
    with tarfile.open(evil_tar, "w:gz") as tar:
        for name in ("etc/portage/make.conf", "run/autotua-evil", "dev/autotua-evil"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, __import__("io").BytesIO(b"evil\n"))
    world = {"base": base, "secret_file": secret_file, "victim_file": victim_file, "repository": repository,
             "distdir": base / "slave-cache/distfiles", "marker": f"autotua-evil-{secrets.token_hex(6)}"}
    master = LiveMaster(base / "master", tree=tree.branch, LEASE_SECONDS=30, HEARTBEAT_SECONDS=1, RETRY_AFTER=1,
                        WAIT_RETRY_AFTER=1, MAX_ATTEMPTS=1, DISTFILES_DIR=tree.distdir,
                        MIRRORS=json.dumps({"autotua-samples": ["/distfiles/"]}))
    master.migrate()
    master.people = {u: master.person_session(master.add_maintainer(u, f)) for u, f in tree.fingerprints.items()}
    loopback = Listener("127.0.0.1")
    anywhere = Listener("0.0.0.0")
    try:
        start(master)
        with MirrorServer(stage3.mirror) as m:
            token = master.add_slave("attacked", arch="amd64", flavours=("openrc",))
            slave = SlaveSetup(base / "slave", master.url, token, m.url, str(release_key.key_file),
                               cache_dir=str(base / "slave-cache"),
                               extra={"repository": str(repository), "disk_limit": DISK, "memory_limit": MEMORY,
                                      "pids_limit": PIDS})
            world.update(slave=slave, master=master, token=token)
            subs = {"@SECRET@": secret, "@SECRET_FILE@": str(secret_file), "@SECRET_DIR@": str(secret_file.parent),
                    "@VICTIM_FILE@": str(victim_file), "@PACKAGE@": str(PACKAGE), "@SLAVE_TOML@": str(slave.config),
                    "@TOKEN_FILE@": str(slave.base / "slave.token"), "@TOKEN@": token,
                    "@MASTER_PORT@": str(master.port), "@LOOPBACK_PORT@": str(loopback.port),
                    "@HOST_ADDRS@": " ".join(f"{a}/{anywhere.port}" for a in host_addresses()
                                             if not a.startswith("127.")),
                    "@REPOSITORY@": "/var/db/repos/gentoo", "@MARKER@": world["marker"], "@TEST_PID@": str(os.getpid()),
                    "@KEY_NAME@": "autotua-host-secret", "@DISTFILE@": "hello-suite-1.1.tar.gz",
                    "@DISTFILE_SHA@": _sha(base / "distfiles/hello-suite-1.1.tar.gz")}

            def text(t: str) -> str:
                for k, v in subs.items():
                    t = t.replace(k, v)
                return t

            evil = text(EVIL).replace('src_test() {', 'SRC_URI="mirror://autotua-samples/hello-suite-1.1.tar.gz"\n'
                                                      'src_test() {', 1)
            add_jobuilds(tree, {"bob/evil/evil-1.0.jobuild": evil,
                                "bob/evil-links/evil-links-1.0.jobuild": text(EVIL_LINKS), **LIMITS,
                                "bob/evil-portconf/evil-portconf-1.0.jobuild": PORTCONF_EVIL,
                                "alice/work/work-1.0.jobuild": WORK}, "bob's hostile jobuilds, alice's work")
            with MetadataReader() as reader:
                for user, name in (("bob", "evil"), ("bob", "evil-portconf")):
                    tree.manifest(user, name, reader)
            tree.commit("Manifests")
            keyring = _session_key("autotua-host-secret", secret.encode())
            results = {}

            def run(user: str, root: str) -> dict:
                j = master.people[user].post(master.url + "/api/v1/jobs/", json={"root": root}, timeout=120).json()
                assert j["state"] == "queued", j
                r = slave.run("run", "--once", timeout=600, preexec_fn=keyring)
                assert r.returncode == 0, r.stderr[-3000:]
                results[root] = job(master, j["id"])
                world.setdefault("logs", {})[root] = r.stderr
                return results[root]

            # the cache is filled first (stage3 unpacked), so the "before" state has the stage3 to compare
            run("alice", "=alice/hello-suite-1.1")  # its SRC_URI file is the one bob poisons
            roots = sorted(p for p in (base / "slave-cache/roots").iterdir() if p.is_dir())
            world["stage3_root"] = roots[0]
            world["runs"] = []
            subs["@TRUE_SHA@"] = _sha(roots[0] / "bin/true")
            subs["@ENV_SHA@"] = _sha(roots[0] / "bin/env")
            add_jobuilds(tree, {"alice/after/after-1.0.jobuild": text(AFTER)}, "alice's next job")
            world["before"] = _host_state(world)
            for user, root in (("bob", "bob/evil-links"), ("bob", "bob/fork-bomb"), ("bob", "bob/disk-hog"),
                               ("bob", "bob/memory-hog"), ("bob", "bob/kill-all"), ("bob", "bob/evil-portconf"),
                               ("alice", "alice/work"), ("alice", "alice/after")):
                run(user, root)
            world["runs"] = [r["uuid"] for j in results.values() for r in j["runs"]]
            world["after"] = _host_state(world)
            world["results"] = results
            world["listeners"] = (loopback.connections, anywhere.connections)
            yield world
    finally:
        loopback.close()
        anywhere.close()
        master.stop()


def _attack_results(world) -> dict[str, str]:
    j = world["results"]["bob/evil-links"]
    out = {}
    for r in latest(j)["results"]:
        out.update({k.removeprefix("attack."): v for k, v in r["results"].items() if k.startswith("attack.")})
    return out


#: attack -> the host state it aimed at (unchanged afterwards)
AIMS = {
    "chroot-escape": ["secret"], "proc1-root": ["secret", "victim"], "proc-pid-root": ["secret", "victim"],
    "remount-ro-binds": ["repository", "package"], "peel-off-mounts": ["mounts"],
    "distfile-poison": ["distfiles"], "stage3-poison": ["stage3"], "kernel-log": ["kmsg"],
    "sysctl": ["core_pattern", "uevent_helper"], "hostname": ["hostname"], "cgroups": ["cgroups"],
    "other-processes": [], "host-mount-namespace": ["mounts"], "slave-code": ["package", "pwned"],
    "slave-secrets": ["slave_toml", "token"], "host-services": [], "ptrace": ["processes"], "keyctl": [],
    "mknod": [], "nested-userns": ["mounts"], "proc-self-exe": ["package"],
}


def test_the_hostile_job_ran_every_attack_and_passed(world):
    j = world["results"]["bob/evil-links"]
    assert j["state"] == "passed", (j["reason"], world["logs"]["bob/evil-links"][-3000:])
    assert set(_attack_results(world)) == {*ATTACKS, "symlink-attachments"}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_failed_and_the_host_did_not_change(world, attack):
    said = _attack_results(world)[attack]
    assert said.startswith("blocked: "), f"{attack}: {said}"
    for aim in AIMS[attack]:
        assert world["after"][aim] == world["before"][aim], f"{attack} changed the host's {aim}"
    # and nothing at all of the host changed, whatever the attack aimed at
    changed = {k for k in world["before"] if k not in ("job_cgroups", "loops")
               and world["after"][k] != world["before"][k]}
    assert not changed, changed


def test_the_slave_read_no_attachment_through_a_link(world):
    j = world["results"]["bob/evil-links"]
    run = latest(j)
    evil, links = (next(r for r in run["results"] if r["jobuild"] == f"bob/{n}-1.0") for n in ("evil", "evil-links"))
    assert [a["label"] for a in links["attachments"]] == ["a real one"]
    assert evil["attachments"] == []
    text = log_of(world["master"], j, links["index"])
    left_out = re.compile(r"autotua-slave: attachment .*left out")
    assert len(left_out.findall(text)) == 3, text  # the link, and two names that are paths
    assert len(left_out.findall(log_of(world["master"], j, evil["index"]))) == 1  # the linked directory
    for index in range(len(run["results"])):
        assert world["token"] not in log_of(world["master"], j, index)
    secret = world["secret_file"].read_text().strip()
    for r in run["results"]:
        for a in r["attachments"]:
            data = requests.get(f"{world['master'].url}/api/v1/jobs/{j['id']}/runs/{run['uuid']}/jobuilds/"
                                f"{r['index']}/attachments/{a['name']}", timeout=60).content
            assert secret.encode() not in data and world["token"].encode() not in data
        assert secret not in json.dumps(r["results"]) and world["token"] not in json.dumps(r["results"])


def test_no_listener_of_the_host_was_reached(world):
    assert world["listeners"] == (0, 0)


@pytest.mark.parametrize("root,reason", [
    ("bob/fork-bomb", "bob/fork-bomb-1.0 failed in src_test: more than 200 processes (the slave's pids_limit)"),
    ("bob/disk-hog", "bob/disk-hog-1.0 failed in src_test: used more than 256 MiB of disk (the slave's disk_limit)"),
    ("bob/memory-hog", "bob/memory-hog-1.0 failed in src_test: used more than 512 MiB of memory (the slave's "
                       "memory_limit)"),
])
def test_a_limit_fails_the_job_with_its_reason_and_the_log_arrives(world, root, reason):
    j = world["results"][root]
    assert j["state"] == "failed" and j["reason"] == reason, j["reason"]
    assert len(j["runs"]) == 1  # failed, not an error for the next volunteer to try again
    text = log_of(world["master"], j, 0)
    assert {"bob/fork-bomb": "forking", "bob/disk-hog": "before the disk filled",
            "bob/memory-hog": "allocating"}[root] in text
    assert reason.split(": ", 1)[1] in text  # the slave says so in the log too
    result = latest(j)["results"][0]
    phase = next(p for p in result["phases"] if p["name"] == "src_test")
    started, finished = (__import__("datetime").datetime.fromisoformat(phase[k]) for k in ("started", "finished"))
    assert (finished - started).total_seconds() < 120  # not the phase timeout: the limit ended it


def test_killing_everything_kills_the_job_only(world):
    j = world["results"]["bob/kill-all"]
    assert j["state"] == "failed" and j["reason"].startswith("bob/kill-all-1.0 failed in src_test"), j["reason"]
    assert "killing" in log_of(world["master"], j, 0)
    assert world["results"]["alice/work"]["state"] == "passed"  # and the slave took the next job


@pytest.mark.bad_input("container", "a PORTCONF tarball with entries under run/ and dev/", "error naming the entry; "
                       "nothing of the job runs, nothing is written to the host")
def test_a_portconf_reaching_for_run_and_dev_is_refused(world):
    j = world["results"]["bob/evil-portconf"]
    assert j["state"] == "error", j
    assert "bob-evil-portconf-1.tar.gz: refusing entry 'run/autotua-evil'" in latest(j)["end_reason"]
    assert "may only hold etc/portage/" in latest(j)["end_reason"]
    assert not latest(j)["results"]
    assert not os.path.exists("/run/autotua-evil") and not os.path.exists("/dev/autotua-evil")


@pytest.mark.parametrize("work", ["chown", "userpriv", "setuid", "pty", "sandboxes", "shm", "big-file", "nproc",
                                  "cpuinfo", "devices", "distdir", "network-sandbox", "repository"])
def test_gentoo_work_in_the_container(world, work):
    j = world["results"]["alice/work"]
    said = latest(j)["results"][0]["results"][f"work.{work}"]
    assert said.startswith("ok: "), said
    assert j["state"] == "passed"


@pytest.mark.parametrize("what", ["stage3", "distfile", "tmpfs", "keyring", "hostname"])
def test_the_next_job_finds_nothing_of_the_hostile_one(world, what):
    j = world["results"]["alice/after"]
    assert j["state"] == "passed", j
    said = latest(j)["results"][0]["results"][f"clean.{what}"]
    expected = {"keyring": "none", "hostname": f"autotua-{latest(j)['uuid'].replace('-', '')[:8]}"}.get(what, "ok")
    assert said == expected


def test_nothing_of_the_jobs_is_left_on_the_host(world):
    after = world["after"]
    assert after["loops"] == [] and after["job_cgroups"] == [] and after["processes"] == []
    assert after["pwned"] == []
