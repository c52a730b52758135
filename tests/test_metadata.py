"""Metadata through the sandboxed depend-phase daemon, including hostile jobuilds."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autotua import sandbox
from autotua.atom import JobuildId
from autotua.cache import DigestCache
from autotua.metadata import Limits, Metadata, MetadataDaemon, MetadataError, MetadataReader, Templates

J = JobuildId.parse("alice/foo-1.2")
FAST = Limits(timeout=3, cpu=2)


@pytest.fixture(scope="module")
def daemon():
    with MetadataDaemon(FAST) as d:
        yield d


def md(reader, src, templates=None, jid=J):
    return reader.get(jid, src.encode(), templates)


def test_variables_and_phases(reader):
    m = md(reader, """
DESCRIPTION="Test  ${PN} version ${PV}
  (${P}) by ${JOBUILD_USER}"
SRC_URI="mirror://samples/${P}.tar.gz -> x-${PV}.tar.gz"
PORTCONF_URI="https://e.org/conf.tar"
DEPEND=">=alice/bar-1
    || ( bob/a bob/b )"
SIDEPEND="carol/c"
ARCH="amd64  x86"
STAGE3=systemd
src_test() { :; }
pkg_setup() { :; }
""")
    assert m == Metadata(
        description="Test foo version 1.2 (foo-1.2) by alice",
        src_uri="mirror://samples/foo-1.2.tar.gz -> x-1.2.tar.gz",
        portconf_uri="https://e.org/conf.tar",
        depend=">=alice/bar-1 || ( bob/a bob/b )",
        sidepend="carol/c",
        arch=("amd64", "x86"),
        stage3="systemd",
        inherited=(),
        defined_phases=("pkg_setup", "src_test"),
    )
    assert Metadata.from_json(m.to_json()) == m


def test_defaults(reader):
    m = md(reader, 'DESCRIPTION="d"')
    assert (m.stage3, m.arch, m.depend, m.defined_phases) == ("openrc", (), "", ())


def test_templates_and_inherited(reader):
    t = Templates(sources={
        "alice/base": b'ARCH="amd64"\nsrc_test() { echo base; }\nsrc_compile() { :; }\n',
        "bob/extra": b'inherit alice/base\nDEPEND="bob/x"\n',
    })
    m = md(reader, 'inherit bob/extra\nDESCRIPTION="uses templates"\nsrc_test() { base_src_test; }', t)
    assert m.inherited == ("bob/extra", "alice/base")
    assert m.arch == ("amd64",)
    assert m.depend == "bob/x"
    assert m.defined_phases == ("src_compile", "src_test")


@pytest.mark.parametrize(
    ("src", "kind", "text"),
    [
        ("inherit alice/none\nDESCRIPTION=x", "template-missing", "no template alice/none"),
        ("inherit alice/bad\nDESCRIPTION=x", "template-unverified", "signed by someone else"),
        ("inherit ../etc\nDESCRIPTION=x", "source-failed", "not <user>/<template>"),
        ('DESCRIPTION=""', "invalid", "DESCRIPTION is empty"),
        ('DESCRIPTION=x; ARCH="amd64 AMD64"', "invalid", "ARCH keyword 'AMD64'"),
        ('DESCRIPTION=x; STAGE3="a b"', "invalid", "STAGE3"),
        ("DESCRIPTION=x\n\nfalse", "source-failed",
         "alice/foo/foo-1.2.jobuild, line 3: a command at global scope failed"),
        ("DESCRIPTION=x\n[[ -n '' ]] && X=1", "source-failed",
         "alice/foo/foo-1.2.jobuild: sourcing it returned non-zero: its last command at global scope failed"),
        ("DESCRIPTION=x\n\nif then", "source-failed",
         "alice/foo/foo-1.2.jobuild: line 3: syntax error near unexpected token `then'"),
        ("DESCRIPTION=x\n\n\ndie 'nope'", "source-failed", "alice/foo/foo-1.2.jobuild, line 4: died: nope"),
        ("DESCRIPTION=x\n: ${X:?must be set}", "source-failed", "alice/foo/foo-1.2.jobuild: line 2: X: must be set"),
        ("DESCRIPTION=x\nls /", "forbidden-command",
         "'ls' at alice/foo/foo-1.2.jobuild, line 2 runs a command at global scope"),
        ("inherit alice/runs\nDESCRIPTION=x", "forbidden-command",
         "'uname' at alice/templates/runs.jtemplate, line 2 runs a command at global scope"),
        ("inherit alice/dies\nDESCRIPTION=x", "source-failed", "alice/templates/dies.jtemplate, line 3: died: here"),
        ("DESCRIPTION=$(uname)", "forbidden-command", "'uname'"),
    ],
)
@pytest.mark.bad_input('jobuild', 'a jobuild: {src!r}', 'MetadataError {kind}: {text}')
def test_errors(reader, src, kind, text):
    """One error, naming the jobuild's (or template's) own file and line, never jobuild.sh's or the sandbox's."""
    t = Templates(errors={"alice/bad": "alice/templates/bad.jtemplate: signed by someone else"},
                  sources={"alice/runs": b"A=1\nB=$(uname)\n", "alice/dies": b"A=1\n\ndie here\n"})
    with pytest.raises(MetadataError) as e:
        md(reader, src, t)
    assert e.value.kind == kind
    assert text in str(e.value)
    assert str(e.value).startswith(f"{J}: ")
    assert "jobuild.sh" not in str(e.value) and "/src/" not in str(e.value)


def test_cache_hit_and_template_invalidation():
    cache = DigestCache()
    with MetadataReader(cache, FAST) as r:
        t1 = Templates(sources={"alice/t": b'ARCH="x86"\n'})
        src = 'inherit alice/t\nDESCRIPTION="d"'
        assert md(r, src, t1).arch == ("x86",)
        daemon = r._daemon()
        n = daemon.requests
        assert md(r, src, t1).arch == ("x86",)
        assert daemon.requests == n  # cached
        t2 = Templates(sources={"alice/t": b'ARCH="arm64"\n'})
        assert md(r, src, t2).arch == ("arm64",)
        assert daemon.requests == n + 1  # the template changed: read again
        # an unrelated template changing does not matter
        t3 = Templates(sources={"alice/t": b'ARCH="arm64"\n', "bob/other": b"X=1"})
        md(r, src, t3)
        assert daemon.requests == n + 1
        # errors are cached too, and a template appearing fixes them
        bad = 'inherit bob/late\nDESCRIPTION="d"'
        with pytest.raises(MetadataError):
            md(r, bad, t3)
        with pytest.raises(MetadataError):
            md(r, bad, t3)
        assert daemon.requests == n + 2
        t4 = Templates(sources={**t3.sources, "bob/late": b"STAGE3=musl"})
        assert md(r, bad, t4).stage3 == "musl"
    # a new reader on the same cache: no daemon needed at all
    with MetadataReader(cache, FAST) as r2:
        assert md(r2, src, t2).arch == ("arm64",)
        assert r2._daemons == []


def test_version_is_part_of_the_key(reader):
    src = 'DESCRIPTION="v${PV}"'
    assert md(reader, src, jid=JobuildId.parse("alice/foo-1")).description == "v1"
    assert md(reader, src, jid=JobuildId.parse("alice/foo-2")).description == "v2"


# ---- hostile jobuilds: one clear error each, no harm -----------------------------------------------

@pytest.mark.bad_input('jobuild', 'an endless loop at global scope',
                       'MetadataError timeout (CPU limit); the next jobuild is read')
def test_endless_loop_hits_the_cpu_limit_and_the_daemon_recovers():
    # a wall clock far above the CPU limit, so a busy machine still meets the CPU limit first
    with MetadataDaemon(Limits(timeout=60, cpu=1)) as daemon:
        with pytest.raises(MetadataError) as e:
            daemon.extract(J, b"DESCRIPTION=x\nwhile :; do :; done")
        assert e.value.kind == "timeout"
        assert "more than 1 CPU seconds" in str(e.value)
        assert daemon.extract(J, b"DESCRIPTION=after")["DESCRIPTION"] == "after"


@pytest.mark.bad_input('jobuild', 'a blocking read at global scope',
                       'MetadataError: took longer than the wall-clock limit')
def test_blocking_read_times_out(daemon):
    with pytest.raises(MetadataError, match="longer than"):
        daemon.extract(J, b'DESCRIPTION=x\ncoproc W { read -r a; }; read -r b <&"${W[0]}"')


def sandbox_processes(daemon) -> list[int]:
    """Every process in the daemon's PID namespace (its first process included)."""
    with open(f"/proc/{daemon.proc.pid}/task/{daemon.proc.pid}/children") as f:
        init = int(f.read().split()[0])
    ns = os.readlink(f"/proc/{init}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
    return found


@pytest.mark.skipif(sandbox.isolation() == "none", reason="needs a PID namespace")
@pytest.mark.bad_input('jobuild', 'a fork bomb at global scope',
                       'MetadataError background-process or timeout; no process left')
def test_fork_bomb(daemon):
    daemon.extract(J, b"DESCRIPTION=started")
    with pytest.raises(MetadataError) as e:
        daemon.extract(J, b"DESCRIPTION=x\n:(){ :|:& };:")
    assert e.value.kind in ("background-process", "timeout")
    assert daemon.extract(J, b"DESCRIPTION=fine")["DESCRIPTION"] == "fine"
    # nothing of the bomb survives: the namespace holds the daemon's bash alone (the kernel may take
    # a moment to reap what was killed)
    deadline = time.monotonic() + 5
    while len(sandbox_processes(daemon)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox_processes(daemon)) == 1


@pytest.mark.bad_input('jobuild', 'a background process at global scope', 'MetadataError background-process')
def test_background_process(daemon):
    with pytest.raises(MetadataError) as e:
        daemon.extract(J, b"DESCRIPTION=x\n{ while :; do :; done; } &")
    assert e.value.kind == "background-process"


@pytest.mark.bad_input('jobuild', 'rm -rf / at global scope', 'nothing outside the sandbox is touched')
def test_rm_rf_harms_nothing(daemon, tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("alive")
    for src in (b"rm -rf /", b"/bin/bash -c 'rm -rf /'", f"echo gone >{canary}".encode(),
                b"exec /bin/bash -c 'echo x >/jobuild.sh'", b"echo x >/jobuild.sh"):
        with pytest.raises(MetadataError):
            daemon.extract(J, b"DESCRIPTION=x\n" + src)
    assert canary.read_text() == "alive"
    assert daemon.extract(J, b"DESCRIPTION=ok")["DESCRIPTION"] == "ok"


@pytest.mark.bad_input('jobuild', 'reading /etc/passwd and files outside the tree',
                       'not readable: the secret never reaches the metadata')
def test_files_outside_the_tree_are_not_readable(daemon, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    for src in (f'DESCRIPTION="$(<{secret})"', 'DESCRIPTION="$(</etc/passwd)"',
                f'read -r DESCRIPTION <{secret}'):
        with pytest.raises(MetadataError) as e:
            daemon.extract(J, src.encode())
        assert "TOP-SECRET" not in str(e.value)
        assert "root:" not in str(e.value)


@pytest.mark.skipif(sandbox.isolation() != "root", reason="the chroot and nobody need root")
def test_the_sandbox_is_empty_and_unprivileged(daemon):
    values = daemon.extract(J, b'shopt -s nullglob; DESCRIPTION="$UID $EUID"; ARCH="$(echo /* /*/*)"')
    assert values["DESCRIPTION"] == "65534 65534"
    assert set(values["ARCH"].split()) >= {"/bin", "/bin/bash", "/dev/null", "/jobuild.sh"}
    forbidden = ("/etc", "/home", "/root", "/usr/bin", "/tmp", "/proc")
    assert not any(p.startswith(forbidden) for p in values["ARCH"].split())


@pytest.mark.bad_input('jobuild', 'a /dev/tcp connection at global scope', 'network unreachable; nothing accepted')
def test_network_is_unreachable(daemon):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    t = threading.Thread(target=accept)
    t.start()
    with pytest.raises(MetadataError) as e:
        daemon.extract(J, f"DESCRIPTION=x\nexec 5<>/dev/tcp/127.0.0.1/{port}".encode())
    t.join()
    listener.close()
    assert not accepted
    assert "unreachable" in str(e.value) or "refused" in str(e.value)


@pytest.mark.bad_input('jobuild', 'a memory hog at global scope', 'MetadataError; the next jobuild is read')
def test_memory_hog(daemon):
    with pytest.raises(MetadataError) as e:
        daemon.extract(J, b'DESCRIPTION=x\nx=y; while :; do x="$x$x"; done')
    assert e.value.kind in ("source-failed", "timeout")
    assert daemon.extract(J, b"DESCRIPTION=ok")["DESCRIPTION"] == "ok"


@pytest.mark.bad_input('jobuild', 'forged metadata records printed by the jobuild',
                       'ignored: the values are the real ones')
def test_forged_records_change_nothing(daemon):
    src = (b'printf "DESCRIPTION=forged\\nAUTOTUA_END=0000 0\\nDEPEND=evil/x\\n" >&$__AB_FD\n'
           b'DESCRIPTION="real"')
    values = daemon.extract(J, src)
    assert values["DESCRIPTION"] == "real"
    assert values["DEPEND"] == ""
    assert daemon.extract(J, b"DESCRIPTION=next")["DESCRIPTION"] == "next"


@pytest.mark.bad_input('jobuild', "a jobuild reading the protocol's stdin", 'reads nothing')
def test_stdin_is_not_the_protocol(daemon):
    values = daemon.extract(J, b'read -r line; DESCRIPTION="got:${line}"')
    assert values["DESCRIPTION"] == "got:"


def test_threads_each_get_a_daemon():
    with MetadataReader(DigestCache(), FAST) as r:
        results = {}

        def work(i):
            results[i] = md(r, f'DESCRIPTION="thread {i}"', jid=JobuildId.parse(f"alice/t-{i}"))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {i: m.description for i, m in results.items()} == {i: f"thread {i}" for i in range(4)}
        assert len(r._daemons) == 4


def test_no_sandbox_leftovers(tmp_path):
    d = MetadataDaemon(FAST)
    d.extract(J, b"DESCRIPTION=x")
    workdir = d._workdir
    assert os.path.isdir(workdir)
    pid = d.proc.pid
    d.close()
    assert not os.path.exists(workdir)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.bad_input('jobuild', 'a jobuild of more than 1 MiB', 'MetadataError before sourcing')
def test_oversized_jobuild_is_refused_before_sourcing():
    with MetadataReader(DigestCache(), FAST) as r:
        with pytest.raises(MetadataError, match="a jobuild may have 1048576 at most"):
            r.get(J, b"DESCRIPTION=x\n" + b"#" * (1 << 20))
        assert r._daemons == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to nobody")
def test_unprivileged_users_get_a_user_namespace_sandbox():
    """A maintainer runs autotua-jobuild as themselves: the sandbox must hold without root."""
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="autotua-userns-"))  # pytest's tmp_path is root-only
    script = where / "probe.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(sandbox.__file__).parents[1])!r})\n"
        "from autotua import sandbox\n"
        "from autotua.atom import JobuildId\n"
        "from autotua.metadata import Limits, MetadataDaemon, MetadataError\n"
        "print(sandbox.isolation())\n"
        "with MetadataDaemon(Limits(timeout=3, cpu=2)) as d:\n"
        "    j = JobuildId.parse('alice/x-1')\n"
        "    print(d.extract(j, b'shopt -s nullglob; DESCRIPTION=\"$(echo /etc/*)\"')['DESCRIPTION'] or 'empty')\n"
        "    try:\n"
        "        d.extract(j, b'DESCRIPTION=x; ls')\n"
        "    except MetadataError as e:\n"
        "        print(e.kind)\n"
    )
    script.chmod(0o644)
    where.chmod(0o755)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
    proc = subprocess.run([runuser, "-u", "nobody", "--", python, str(script)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    shutil.rmtree(where)
    if "Permission denied" in proc.stderr:
        pytest.skip(f"nobody cannot run {python} here")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["userns", "empty", "forbidden-command"]


@pytest.mark.skipif(sandbox.isolation() == "none", reason="needs the sandbox's read-only binds")
@pytest.mark.bad_input('jobuild', "a jobuild overwriting the sources (templates) later requests read",
                       "read-only file system; the next jobuild reads the template as signed")
def test_a_jobuild_cannot_change_the_sources_later_requests_read(reader):
    t = Templates(sources={"alice/base": b'ARCH="amd64"\n'})
    assert md(reader, 'inherit alice/base\nDESCRIPTION="first"', t).arch == ("amd64",)
    for attack in (": >/src/alice/templates/base.jtemplate", "echo 'ARCH=evil' >/src/alice/templates/base.jtemplate",
                   "echo 'DESCRIPTION=evil' >/src/alice/foo/foo-1.3.jobuild"):
        with pytest.raises(MetadataError) as e:
            md(reader, f'DESCRIPTION="x"\n{attack}', t, jid=JobuildId.parse("mallory/x-1"))
        assert "Read-only file system" in str(e.value)
    assert md(reader, 'inherit alice/base\nDESCRIPTION="second"', t, jid=JobuildId.parse("bob/y-1")).arch == ("amd64",)
    assert md(reader, 'DESCRIPTION="mine"', t, jid=JobuildId.parse("alice/foo-1.3")).description == "mine"


def _owner(code: str, tmp_path, env=None) -> subprocess.CompletedProcess:
    """A Python process that starts a metadata daemon, prints its work directory, then runs ``code``."""
    script = ("import os, signal, sys\n"
              f"sys.path.insert(0, {str(Path(sandbox.__file__).parents[1])!r})\n"
              "from autotua.atom import JobuildId\n"
              "from autotua.metadata import MetadataDaemon\n"
              "d = MetadataDaemon()\n"
              "d.extract(JobuildId.parse('alice/x-1'), b'DESCRIPTION=x')\n"
              "print(d._workdir, flush=True)\n" + code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_a_daemon_left_open_is_removed_at_its_process_exit(tmp_path):
    r = _owner("sys.exit(0)  # never closed", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and not os.path.exists(r.stdout.strip())


def test_a_killed_process_s_work_directory_is_removed_by_the_next_sandbox(tmp_path, monkeypatch):
    base = tmp_path / "tmp"
    base.mkdir()
    r = _owner("os.kill(os.getpid(), signal.SIGKILL)", tmp_path, env={"TMPDIR": str(base)})
    left = r.stdout.strip()
    assert r.returncode == -9 and left.startswith(str(base)) and os.path.isdir(left), r.stderr
    assert sandbox.clean_stale(base) == [left]
    assert not os.path.exists(left)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(base))
    live = sandbox.make_workdir()  # a live one (this process holds its lock) is never taken
    try:
        assert live.parent == base and sandbox.clean_stale(base) == [] and live.is_dir()
    finally:
        sandbox.remove_workdir(live)


def test_a_directory_being_made_is_never_taken_for_stale(tmp_path, monkeypatch):
    """make_workdir() racing clean_stale() (another thread's, or another slave's): seen once in CI, a
    new directory's lock file was found before it was locked, and the directory was removed."""
    import tempfile

    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    stop = threading.Event()
    removed = []

    def sweep():
        while not stop.is_set():
            removed.extend(sandbox.clean_stale(base))

    sweepers = [threading.Thread(target=sweep) for _ in range(2)]
    for t in sweepers:
        t.start()
    made = []
    try:
        for _ in range(300):
            made.append(sandbox.make_workdir())
            assert (made[-1] / "root").is_dir() and (made[-1] / "lock").is_file()
    finally:
        stop.set()
        for t in sweepers:
            t.join()
        for path in made:
            sandbox.remove_workdir(path)
    assert removed == [] and len(made) == 300


def test_a_directory_whose_maker_died_while_making_it_is_removed_a_minute_later(tmp_path):
    base = tmp_path / "tmp"
    fresh, old = base / (sandbox.PREFIX + "fresh"), base / (sandbox.PREFIX + "old")
    for d in (fresh, old):
        d.mkdir(parents=True)
        (d / "lock.new").touch()
    os.utime(old / "lock.new", (time.time() - 120, time.time() - 120))
    assert sandbox.clean_stale(base) == [str(old)]
    assert fresh.is_dir() and not old.exists()
