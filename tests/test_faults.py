"""The fault-injection hook (autotua.faults): a no-op unless armed; armed, it SIGKILLs its own process
at the n-th call of a matching point, once, whichever process makes that call."""

import os
import signal
import subprocess
import sys

from autotua import faults

CALLS = ("from autotua import faults\nimport sys\n"
         "for n in sys.argv[1:]:\n    faults.point(n)\n    print(n, flush=True)\n")


def run(points: list[str], armed: str | None, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(faults.ENV, None)
    if armed is not None:
        (tmp_path / "faults").write_text(armed)
        env[faults.ENV] = str(tmp_path / "faults")
    return subprocess.run([sys.executable, "-c", CALLS, *points], env=env, capture_output=True, text=True)


def test_without_the_variable_nothing_happens(tmp_path, monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("anything")  # this very process goes on
    assert run(["a", "b"], None, tmp_path).stdout.split() == ["a", "b"]


def test_an_armed_point_kills_its_process_once(tmp_path):
    p = run(["sync:pull", "stage3:unpack", "later"], "stage3:unpack\n", tmp_path)
    assert p.returncode == -signal.SIGKILL
    assert p.stdout.split() == ["sync:pull"]
    assert (tmp_path / "faults").read_text() == ""  # taken: the next process goes through
    fired = (tmp_path / "faults.fired").read_text().split()
    assert fired[0] == "stage3:unpack" and int(fired[2]) > 0
    assert run(["stage3:unpack", "later"], None, tmp_path).returncode == 0
    env_again = run(["stage3:unpack"], "", tmp_path)
    assert env_again.returncode == 0 and env_again.stdout.split() == ["stage3:unpack"]


def test_patterns_and_counts_are_shared_between_processes(tmp_path):
    armed = "phase:*:src_test 3\nlog:2.log\n"
    first = run(["phase:a-1:src_test", "phase:b-1:pkg_setup", "phase:b-1:src_test"], armed, tmp_path)
    assert first.returncode == 0
    assert (tmp_path / "faults").read_text() == "phase:*:src_test 1\nlog:2.log\n"
    env = {**os.environ, faults.ENV: str(tmp_path / "faults")}
    second = subprocess.run([sys.executable, "-c", CALLS, "log:1.log", "phase:c-1:src_test", "x"], env=env,
                            capture_output=True, text=True)
    assert second.returncode == -signal.SIGKILL and second.stdout.split() == ["log:1.log"]
    assert (tmp_path / "faults").read_text() == "log:2.log\n"
