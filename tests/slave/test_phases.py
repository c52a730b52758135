"""jobuild.sh phases in the job's container, driven from Python: records, results, attachments,
failures, per-phase timeouts, interruptions, leftovers killed, big logs streamed whole."""

import time
from pathlib import Path

import pytest

from autotua.atom import JobuildId
from autotua.slave.container import Container
from autotua.slave.logstream import LogStream
from autotua.slave.phases import run_jobuild
from autotua.slave.sync import Prepared
from tests.slave.helpers import needs_root
from tests.support.live import printed

pytestmark = [pytest.mark.root, needs_root]
JOBTAGE = Path(__file__).resolve().parents[2] / "jobtage"


@pytest.fixture
def chroot(tmp_path, cached_root, host):
    """A started job container; ``add(cpv, text)`` writes a jobuild into its tree."""
    from autotua.slave.job import Workspace

    ws = Workspace(tmp_path / "jobs", "run-1")
    ws.create()
    prepared = []

    def add(cpv, text, templates=None):
        jid = JobuildId.parse(cpv)
        path = ws.tree / jid.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for name, body in (templates or {}).items():
            user, tname = name.split("/")
            t = ws.tree / user / "templates" / f"{tname}.jtemplate"
            t.parent.mkdir(parents=True, exist_ok=True)
            t.write_text(body)
        p = Prepared(len(prepared), jid, jid.path, "digest")
        prepared.append(p)
        return p

    class Chroot:
        pass

    c = Chroot()
    c.ws, c.add, c.prepared = ws, add, prepared
    c.ns = None

    def start():
        (tmp_path / "distfiles").mkdir(exist_ok=True)
        c.ns = Container(ws.dir, ws.spec(cached_root, prepared, tmp_path / "distfiles", host))
        c.ns.start()
        return c.ns

    c.start = start
    yield c
    if c.ns:
        c.ns.teardown()


def run(c, p, timeout=60, should_stop=lambda: None):
    stream = LogStream(c.ws.logs / f"{p.index}.log")
    out = run_jobuild(c.ns, p, stream, timeout=timeout, should_stop=should_stop)
    out.log_size = stream.close()
    return out, (c.ws.logs / f"{p.index}.log").read_text()


def test_the_sample_toolchain_sanity_jobuild(chroot):
    p = chroot.add("alice/toolchain-sanity-1.0",
                   (JOBTAGE / "alice/toolchain-sanity/toolchain-sanity-1.0.jobuild").read_text())
    chroot.start()
    out, text = run(chroot, p)
    assert out.passed, text
    assert [ph.name for ph in out.phases] == ["pkg_setup", "src_unpack", "src_compile", "src_test"]
    assert all(ph.status == "passed" and ph.finished >= ph.started for ph in out.phases)
    assert out.results["machine"]
    assert out.results["bash.version"]
    assert "bash and coreutils look sane" in text
    assert out.log_size == len(text.encode())


def test_a_failing_phase(chroot):
    p = chroot.add("bob/fail-on-purpose-1.0",
                   (JOBTAGE / "bob/fail-on-purpose/fail-on-purpose-1.0.jobuild").read_text())
    chroot.start()
    out, text = run(chroot, p)
    assert not out.passed
    assert out.failed_in == "src_test"
    assert out.reason() == "bob/fail-on-purpose-1.0 failed in src_test"
    assert [(ph.name, ph.status) for ph in out.phases][-1] == ("src_test", "failed")
    assert out.died == ["src_test this jobuild fails on purpose"]
    assert "this jobuild fails on purpose" in text


def test_a_phase_that_runs_too_long_is_killed(chroot):
    p = chroot.add("bob/slow-1.0", 'DESCRIPTION=x\nsrc_compile() { echo compiling; sleep 1000; }\n')
    chroot.start()
    t = time.monotonic()
    out, text = run(chroot, p, timeout=1)
    assert time.monotonic() - t < 10
    assert not out.passed
    assert out.timed_out == "src_compile timed out after 1 s"
    assert out.exit_code == 124
    assert (out.phases[-1].name, out.phases[-1].exit_code) == ("src_compile", 124)
    assert "compiling" in text and "timed out after 1 s; killed" in text


def test_stop_from_outside(chroot):
    p = chroot.add("bob/slow-1.0", 'DESCRIPTION=x\nsrc_test() { echo testing; sleep 1000; }\n')
    chroot.start()
    start = time.monotonic()
    out, text = run(chroot, p, should_stop=lambda: "cancelled: by alice" if time.monotonic() - start > 1 else None)
    assert out.interrupted == "cancelled: by alice"
    assert "cancelled: by alice; killed" in text


def test_leftover_processes_do_not_keep_the_jobuild_alive(chroot):
    p = chroot.add("bob/daemon-1.0", 'DESCRIPTION=x\nsrc_test() { ( sleep 1000 & ) ; echo left a sleeper; }\n')
    q = chroot.add("bob/after-1.0", 'DESCRIPTION=x\nsrc_test() { n=0; for x in /proc/[0-9]*; do n=$((n+1)); done; '
                                    'echo "processes: $n"; }\n')
    chroot.start()
    t = time.monotonic()
    out, _ = run(chroot, p)
    assert out.passed and time.monotonic() - t < 10
    out, text = run(chroot, q)
    # the init, jobuild.sh, its phase subshell, and the for loop: no sleeper left
    assert "processes: " in text and int(text.split("processes: ")[1].split()[0]) <= 4


def test_results_attachments_and_templates(chroot):
    p = chroot.add("alice/suite-1.0", r'''DESCRIPTION=x
inherit alice/base
src_test() {
    base_src_test
    result tests.passed 5
    result note "two
lines"
    echo "report" >"$T/report.txt"
    attach "$T/report.txt" "the report"
    ln -s /etc/passwd "$T/link"
    attach "$T/link" "a link"
}
''', templates={"alice/base": 'src_test() { echo "from the template"; }\n'})
    chroot.start()
    out, text = run(chroot, p)
    assert out.passed, text
    assert out.results == {"tests.passed": "5", "note": "two\nlines"}
    names = [n for n, _ in out.attachments]
    assert [label for _, label in out.attachments] == ["the report", "a link"]
    out_dir = Path(chroot.ns.out_dir())  # on the job's disk, through the keeper's namespace
    assert (out_dir / "0" / names[0]).read_text() == "report\n"
    # attach copies inside the container (cp -L): the link became the container's passwd, never the host's
    assert (out_dir / "0" / names[1]).read_text().startswith("root:x:0:0:root:/root:/bin/bash\nportage:")
    assert "from the template" in text


def test_a_big_log_arrives_whole(chroot):
    p = chroot.add("bob/chatty-1.0", 'DESCRIPTION=x\nsrc_test() { seq 1 2000000; echo done >&2; }\n')
    chroot.start()
    out, text = run(chroot, p)
    assert out.passed
    lines = printed(text).splitlines()
    assert lines[:2] == ["1", "2"] and "2000000" in lines and lines.count("done") == 1
    assert out.log_size == len(text.encode()) > 14_000_000


def test_sourcing_failure_is_a_failure_at_global_scope(chroot):
    p = chroot.add("bob/broken-1.0", 'DESCRIPTION=x\ninherit bob/missing\n')
    chroot.start()
    out, text = run(chroot, p)
    assert not out.passed and out.phases == []
    assert out.reason() == "bob/broken-1.0 failed in global scope"
    assert "template bob/missing does not exist" in text
