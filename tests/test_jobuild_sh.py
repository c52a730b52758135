"""jobuild.sh in phases mode: phase order and defaults, helpers, die, the record protocol, and a run
inside a chroot that holds nothing but bash and coreutils (plus tar/gzip for unpack)."""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from autotua.bridge import jobuild_sh, parse_record
from autotua.demo.rootfs import COREUTILS, build_rootfs


def run_phases(tmp, jobuild_text, *, templates=None, distfiles=None, files=None, chroot=None, phases=None,
               user="alice", name="foo", version="1.0", colour=False, extra_env=None):
    """Run `jobuild.sh phases` the way the slave does; returns (exit status, output, records)."""
    root = Path(chroot) if chroot else Path(tmp)
    base = "/var/tmp/autotua"
    host = root / base.lstrip("/")
    for d in ("tree", "work", "temp", "out", "distdir"):
        (host / d).mkdir(parents=True, exist_ok=True)
    jpath = host / "tree" / user / name / f"{name}-{version}.jobuild"
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(jobuild_text)
    for tname, text in (templates or {}).items():
        tu, tn = tname.split("/")
        p = host / "tree" / tu / "templates" / f"{tn}.jtemplate"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for fname, data in (files or {}).items():
        p = host / "tree" / user / name / "files" / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    for dname, path in (distfiles or {}).items():
        (host / "distdir" / dname).write_bytes(Path(path).read_bytes())
    inside = base if chroot else str(host)
    script = f"{inside}/jobuild.sh"
    (host / "jobuild.sh").write_bytes(Path(jobuild_sh()).read_bytes())
    rfd, wfd = os.pipe()
    env = {
        "PATH": "/usr/bin:/bin", "NOCOLOR": "false" if colour else "1", "__AB_FD": str(wfd),
        "P": f"{name}-{version}", "PN": name, "PV": version, "JOBUILD_USER": user,
        "FILESDIR": f"{inside}/tree/{user}/{name}/files", "DISTDIR": f"{inside}/distdir",
        "WORKDIR": f"{inside}/work", "T": f"{inside}/temp", "A": " ".join(distfiles or ()),
        "__AB_JOBUILD": f"{inside}/tree/{user}/{name}/{name}-{version}.jobuild", "__AB_TREE": f"{inside}/tree",
        "__AB_OUTDIR": f"{inside}/out",
    }
    if phases:
        env["__AB_RUN_PHASES"] = phases
    env.update(extra_env or {})
    argv = ["bash", script, "phases"]
    if chroot:
        argv = [shutil.which("chroot"), str(root), "/bin/bash", script, "phases"]
    proc = subprocess.Popen(argv, env=env, pass_fds=(wfd,), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd="/")
    os.close(wfd)
    with os.fdopen(rfd) as f:
        records = [parse_record(line) for line in f]
    out = proc.stdout.read().decode()
    return proc.wait(), out, records, host


def keyed(records, key):
    return [v for k, v in records if k == key]


def test_phases_run_in_order_with_defaults(tmp_path):
    rc, out, records, _ = run_phases(tmp_path, """
DESCRIPTION=x
pkg_setup() { echo "setup in $PWD"; }
src_test() { echo "test P=$P PN=$PN PV=$PV user=$JOBUILD_USER"; }
""")
    assert rc == 0, out
    starts = [v.split()[0] for v in keyed(records, "AUTOTUA_PHASE_START")]
    ends = [v.split()[:2] for v in keyed(records, "AUTOTUA_PHASE_END")]
    assert starts == ["pkg_setup", "src_unpack", "src_compile", "src_test"]
    assert ends == [[p, "0"] for p in starts]
    assert "test P=foo-1.0 PN=foo PV=1.0 user=alice" in out
    assert "setup in " in out


def test_each_phase_begins_with_a_header_and_a_failure_ends_with_a_line(tmp_path):
    rc, out, _, _ = run_phases(tmp_path, """
DESCRIPTION=x
src_compile() { echo compiling; }
src_test() { echo testing; return 3; }
""")
    assert rc == 3
    headers = [line for line in out.splitlines() if line.startswith(">>> Running ")]
    assert headers == [f">>> Running {p}" for p in ("pkg_setup", "src_unpack", "src_compile", "src_test")]
    assert out.index(">>> Running src_compile") < out.index("compiling") < out.index(">>> Running src_test")
    assert out.rstrip().endswith("* src_test failed (exit status 3)")


def test_colour_is_kept_unless_nocolor(tmp_path):
    """What the slave runs (NOCOLOR=false): portage's colours, in the log as ANSI sequences."""
    rc, out, _, _ = run_phases(tmp_path, 'DESCRIPTION=x\nsrc_test() { einfo fine; ewarn careful; eerror bad; }',
                               colour=True)
    assert rc == 0
    assert "\x1b[32;01m>>>\x1b[0m Running \x1b[36;01msrc_test\x1b[0m" in out
    for colour, text in (("32", "fine"), ("33", "careful"), ("31", "bad")):
        assert f" \x1b[{colour};01m*\x1b[0m {text}" in out
    rc, plain, _, _ = run_phases(tmp_path / "plain", 'DESCRIPTION=x\nsrc_test() { einfo fine; }')
    assert "\x1b" not in plain and " * fine" in plain


def test_each_phase_is_a_subshell_and_variables_do_not_leak(tmp_path):
    rc, out, _, _ = run_phases(tmp_path, """
DESCRIPTION=x
GLOBAL=g
pkg_setup() { LEAK=1; echo "global=$GLOBAL"; }
src_test() { echo "leak=${LEAK:-none}"; }
""")
    assert rc == 0
    assert "global=g" in out
    assert "leak=none" in out


def test_die_reports_phase_trace_and_stops(tmp_path):
    rc, out, records, _ = run_phases(tmp_path, """
DESCRIPTION=x
helper() { die "broken on purpose"; }
src_compile() { helper; }
src_test() { echo "never reached"; }
""")
    assert rc == 1
    assert "never reached" not in out
    assert "ERROR: alice/foo-1.0 failed (src_compile):" in out
    assert "broken on purpose" in out
    assert "called helper" in out  # the call trace
    assert keyed(records, "AUTOTUA_DIE") == ["src_compile broken on purpose"]
    assert keyed(records, "AUTOTUA_PHASE_END")[-1].split()[:2] == ["src_compile", "1"]
    assert not any(v.startswith("src_test") for v in keyed(records, "AUTOTUA_PHASE_START"))


def test_die_from_a_nested_subshell_or_pipeline_ends_the_phase(tmp_path):
    rc, out, _records, _ = run_phases(tmp_path, """
DESCRIPTION=x
src_test() {
    ( die "from a subshell" )
    echo "after the subshell"
}
""")
    assert rc == 1
    assert "after the subshell" not in out
    rc, out, _, _ = run_phases(tmp_path / "2", """
DESCRIPTION=x
src_test() { echo x | die "from a pipeline"; echo "after the pipeline"; }
""")
    assert rc == 1
    assert "after the pipeline" not in out


def test_failing_command_fails_the_phase(tmp_path):
    rc, _out, records, _ = run_phases(tmp_path, "DESCRIPTION=x\nsrc_test() { false; }\n")
    assert rc == 1
    assert keyed(records, "AUTOTUA_PHASE_END")[-1].split()[:2] == ["src_test", "1"]


def test_results_and_attachments_come_back_as_records(tmp_path):
    rc, out, records, host = run_phases(tmp_path, r"""
DESCRIPTION=x
src_test() {
    result tests.passed 5
    result multi "line one
line two\with backslash"
    echo report >"$T/report.txt"
    attach "$T/report.txt" "the report"
    attach "$T/report.txt"
}
""")
    assert rc == 0, out
    assert keyed(records, "AUTOTUA_RESULT") == ["tests.passed 5", "multi line one\nline two\\with backslash"]
    attached = [v.split(" ", 1) for v in keyed(records, "AUTOTUA_ATTACH")]
    assert [label for _, label in attached] == ["the report", "report.txt"]
    for name, _ in attached:
        assert (host / "out" / name).read_text() == "report\n"
    # results never come from parsing the log
    assert "tests.passed" not in out


@pytest.mark.bad_input('jobuild', 'result with a key that is not a word', 'the phase fails: not a valid key')
@pytest.mark.bad_input('jobuild', 'attach of a file that does not exist', 'the phase fails: not a regular file')
def test_result_and_attach_refuse_bad_input(tmp_path):
    rc, out, _, _ = run_phases(tmp_path, "DESCRIPTION=x\nsrc_test() { result 'bad key' v; }\n")
    assert rc == 1
    assert "not a valid key" in out
    rc, out, _, _ = run_phases(tmp_path / "2", "DESCRIPTION=x\nsrc_test() { attach /nonexistent; }\n")
    assert rc == 1
    assert "not a regular file" in out


def test_messages_as_portage_prints_them(tmp_path):
    rc, out, _, _ = run_phases(tmp_path, 'DESCRIPTION=x\nsrc_test() { einfo "i"; ewarn "w"; eerror "e"; }\n')
    assert rc == 0
    assert " * i\n * w\n * e\n" in out


def test_inherit_and_template_phase_names(tmp_path):
    rc, out, _records, _ = run_phases(tmp_path, """
DESCRIPTION=x
inherit alice/suite
src_test() { echo "own test"; suite_src_test; }
""", templates={"alice/suite": 'src_test() { echo "template test"; }\nsrc_compile() { echo "template compile"; }\n'})
    assert rc == 0, out
    assert out.index("template compile") < out.index("own test") < out.index("template test")


def test_missing_template_dies_at_global_scope(tmp_path):
    rc, out, records, _ = run_phases(tmp_path, "DESCRIPTION=x\ninherit alice/none\n")
    assert rc == 1
    assert "template alice/none does not exist" in out
    assert keyed(records, "AUTOTUA_PHASE_START") == []


def test_default_src_unpack_and_filesdir(tmp_path):
    import io

    dist = tmp_path / "suite-1.0.tar.gz"
    with tarfile.open(dist, "w:gz") as tar:
        data = b"#!/bin/bash\necho suite ran\n"
        info = tarfile.TarInfo("foo-1.0/run.sh")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    rc, out, _, _ = run_phases(tmp_path / "run", """
DESCRIPTION=x
src_compile() { echo "compile in ${PWD##*/}"; }
src_test() { bash run.sh; bash "${FILESDIR}/helper.sh"; default; }
""", distfiles={"suite-1.0.tar.gz": dist}, files={"helper.sh": "echo helper ran\n"})
    assert rc == 0, out
    assert "Unpacking suite-1.0.tar.gz" in out
    assert "compile in foo-1.0" in out  # src_compile runs in $S
    assert "suite ran" in out and "helper ran" in out


def test_subset_of_phases(tmp_path):
    rc, _, records, _ = run_phases(tmp_path, "DESCRIPTION=x\n", phases="src_test")
    assert rc == 0
    assert [v.split()[0] for v in keyed(records, "AUTOTUA_PHASE_START")] == ["src_test"]


@pytest.mark.bad_input('jobuild', 'jobuild.sh started without its variables or record descriptor',
                       'exit 2: is not set / fd is not open')
def test_refuses_to_run_without_its_variables(tmp_path):
    proc = subprocess.run(["bash", jobuild_sh(), "phases"], env={"__AB_FD": "1"}, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "is not set" in proc.stderr
    proc = subprocess.run(["bash", jobuild_sh(), "phases"], env={"__AB_FD": "9"}, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "fd 9 is not open" in proc.stderr


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_in_a_chroot_with_only_bash_and_coreutils(tmp_path):
    root = build_rootfs(tmp_path / "root", programs=(*COREUTILS, "bash"))
    assert not (root / "bin/tar").exists()
    rc, out, records, _ = run_phases(tmp_path, r"""
DESCRIPTION="runs in a bare chroot"
src_compile() { mkdir -p sub && echo data >sub/f && cp sub/f copy; }
src_test() {
    [[ $(<copy) == data ]] || die "copy failed"
    result where "$(uname -s)"
    echo "x" >"$T/r"; attach "$T/r" log
    einfo "done in $(pwd)"
}
""", chroot=root)
    assert rc == 0, out
    assert keyed(records, "AUTOTUA_RESULT") == ["where Linux"]
    assert "done in /var/tmp/autotua/work" in out
