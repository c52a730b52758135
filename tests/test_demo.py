"""`make demo`, for real: the whole system, then a Ctrl-C that stops everything and leaves no mount, no
process (gpg-agents included) and no temporary directory; and, while it runs, the README's newcomer
path as written: be alice, push a jobuild, watch it run."""

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autotua.demo.main import main
from autotua.linux import mounts_under
from tests.support.leftovers import ProcessWatch, descendants, touching

README = Path(__file__).resolve().parents[1] / "README.md"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the demo's slaves need root")


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    """The stage3s and slave caches, built by the first demo and used by the next (as on a real machine)."""
    return tmp_path_factory.mktemp("demo-cache")


def no_helpers_left(*paths) -> None:
    """No process of the demo's left using its directories: gpg-agents (which the suite's process watch
    lets live, as session helpers) least of all."""
    for path in paths:
        left = touching(path)
        assert not left, f"processes left using {path}: {left}"


def test_demo_without_slaves_validates_and_queues(tmp_path, capsys):
    before = set(os.listdir(tempfile.gettempdir()))
    assert main(["--workdir", str(tmp_path / "demo"), "--cache", str(tmp_path / "cache"), "--no-slaves",
                 "--exit-when-done"]) == 0
    out = capsys.readouterr().out
    assert "bob/integration        by bob    waiting" in out
    assert "=alice/hello-suite-1.1 (openrc) queued by the master for a SIDEPEND: queued" in out
    assert "login   admin" in out and "/admin/" in out
    token = re.search(r"token   alice  ([0-9a-f]{40})  ", out).group(1)
    assert f"token = {token}" in (tmp_path / "demo/alice/config/autotua/jobuild.conf").read_text()
    assert f"password = {token}" in (tmp_path / "demo/alice/config/breezy/authentication.conf").read_text()
    assert "no mount left behind; all stopped" in out
    no_helpers_left(tmp_path / "demo", tmp_path / "cache")
    assert set(os.listdir(tempfile.gettempdir())) <= before  # its temporary directories are gone


@pytest.mark.slow
@pytest.mark.root
@needs_root
def test_demo_runs_the_whole_story(tmp_path, capsys, demo_cache):
    work = tmp_path / "demo"
    watch = ProcessWatch().start()  # other tests' servers and daemons may be running: only new ones count
    try:
        assert main(["--workdir", str(work), "--cache", str(demo_cache), "--exit-when-done"]) == 0
        left = watch.leftovers()
    finally:
        watch.stop()
    assert left == [], [str(p) for p in left]
    out = capsys.readouterr().out
    # the SIDEPEND the master queued by itself ran on the openrc slave, its dependent on the systemd one
    assert "#3 =alice/hello-suite-1.1: running on demo-openrc" in out
    assert "#2   bob/integration-1.0 PASSED on demo-systemd" in out
    assert "bob/fail-on-purpose-1.0 FAILED on demo-openrc [pkg_setup:ok src_unpack:ok src_compile:ok " \
           "src_test:failed]" in out
    assert "#5 bob/needs-failing: waiting -> failed (SIDEPEND bob/fail-on-purpose-1.0 failed" in out
    assert "#7 bob/slow: running -> cancelled (cancelled by bob: the demo shows a cancel)" in out
    summary = out[out.index("Where things ended"):]
    for line in ("#1   alice/hello-suite        passed", "#2   bob/integration          passed",
                 "#4   bob/fail-on-purpose      failed", "#7   bob/slow                 cancelled"):
        assert line in summary
    # gentoo/arch-test for real: the first job builds slowlib, the second installs its binary package
    emerged = out[out.index("Emerging in the job"):]
    assert re.search(r"#\d+ job 1: passed in \d+ s; built from source: dev-libs/slowlib-1.0 app-misc/hello-1.0; "
                     r"from binary packages: -\n", emerged), emerged[:3000]
    assert re.search(r"#\d+ job 2: passed in \d+ s; built from source: app-misc/hello-1.0; "
                     r"from binary packages: dev-libs/slowlib-1.0\n", emerged), emerged[:3000]
    assert "emerge --info from inside the job: Portage 3.0.83" in emerged
    assert "no mount left behind; all stopped" in out
    assert mounts_under(work) == []


def newcomer_commands() -> str:
    """The README's "Your first jobuild" commands, as written."""
    return README.read_text().split("<!-- newcomer -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


class Lines:
    """A process's output, line by line, each wait bounded: nothing here blocks past its deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""
        self.seen: list[str] = []

    def until(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise AssertionError(f"no {text!r} within {timeout} s:\n" + "".join(self.seen[-60:]))
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"the demo ended before {text!r}:\n" + "".join(self.seen[-60:]))
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.seen += [line.decode(errors="replace") + "\n" for line in done]
        return "".join(self.seen)

    def rest(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        chunks = []
        while time.monotonic() < deadline and self.sel.select(max(deadline - time.monotonic(), 0)):
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return (self.buf + b"".join(chunks)).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.root
@needs_root
def test_the_newcomer_path_then_ctrl_c_from_a_shell_that_ignores_sigint(tmp_path, demo_cache):
    """The demo runs (started as a background job is, with SIGINT ignored); the README's newcomer
    commands push a jobuild as alice and watch it pass; then Ctrl-C stops everything, every wait
    bounded."""
    work = tmp_path / "var" / "demo"  # the README's commands say var/demo, relative to the checkout
    watch = ProcessWatch().start()
    before_tmp = set(os.listdir(tempfile.gettempdir()))
    proc = subprocess.Popen(["bash", "-c", 'trap "" INT; exec "$@"', "demo", sys.executable, "-m",
                             "autotua.demo.main", "--workdir", str(work), "--cache", str(demo_cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Lines(proc)
    try:
        out.until("Running until Ctrl-C", 600)
        assert len(descendants(proc.pid)) >= 3  # the master, the slaves
        newcomer = subprocess.run(["bash", "-e", "-c", newcomer_commands()], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=600, stdin=subprocess.DEVNULL,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("AUTOTUA_")})
        said = newcomer.stdout
        assert newcomer.returncode == 0, said
        assert "Pushed up to revision 2." in said
        job = re.search(r"created job #(\d+) alice/first: queued at r2", said).group(1)
        assert ">>> Running src_test" in said and " * Testing first-1.0" in said
        assert said.rstrip().endswith(f">>> job #{job} passed")
        out.until(f"#{job} alice/first", 60)  # the demo's own terminal tells it too
        proc.send_signal(signal.SIGINT)
        assert proc.wait(180) == 0
        rest = out.rest(30)
    finally:
        if proc.poll() is None:  # a failure above: stop it as an init system would, so it cleans up
            proc.terminate()
            try:
                proc.wait(180)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(60)
    assert "Ctrl-C: stopping the slaves, the mirror and the master" in rest
    assert "no mount left behind; all stopped" in rest
    assert mounts_under(work) == []
    try:
        left = watch.leftovers()
    finally:
        watch.stop()
    assert left == [], [str(p) for p in left]
    no_helpers_left(work, demo_cache)
    # the demo's temporary directories are gone (the newcomer's own checkout, `mktemp -d`, is theirs)
    assert {n for n in os.listdir(tempfile.gettempdir()) if not n.startswith("tmp.")} <= before_tmp
