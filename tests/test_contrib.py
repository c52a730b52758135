"""The service files under contrib/: what can be checked here is checked (systemd-analyze verify, the
shell's syntax check), with the programs they name pointed at this checkout's."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
BIN = Path(sys.executable).parent  # the venv's autotua-slave, autotua-master, gunicorn


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", sorted(p.name for p in (CONTRIB / "systemd").iterdir()))
def test_systemd_units_verify(unit, tmp_path):
    text = (CONTRIB / "systemd" / unit).read_text()
    for prog in ("autotua-slave", "autotua-master", "gunicorn"):
        assert (BIN / prog).exists(), f"{prog} is not in {BIN}"
        text = text.replace(f"/usr/local/bin/{prog}", str(BIN / prog))
    for other in (CONTRIB / "systemd").iterdir():  # a timer needs its service beside it
        (tmp_path / other.name).write_text(other.read_text().replace("/usr/local/bin/", f"{BIN}/"))
    (tmp_path / unit).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if unit.split(".")[0] in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_slave_unit_runs_the_documented_command():
    text = (CONTRIB / "systemd/autotua-slave.service").read_text()
    assert "ExecStart=/usr/local/bin/autotua-slave -c /etc/autotua/slave.toml run" in text
    assert "KillMode=mixed" in text and "Restart=on-failure" in text
    assert "CAP_SYS_ADMIN" in text and "CAP_SYS_CHROOT" in text


def test_openrc_script_syntax_and_shape():
    script = CONTRIB / "openrc/autotua-slave"
    assert script.read_text().startswith("#!/sbin/openrc-run\n")
    assert os.access(script, os.X_OK)
    for shell in ("bash", "sh"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    # the functions and variables openrc-run reads are there
    text = script.read_text()
    for needed in ("command=", "command_args=", "supervisor=", "retry=", "depend()", "start_pre()"):
        assert needed in text


def test_the_commands_the_services_run_exist():
    for args in (["autotua-slave", "--help"], ["autotua-master", "help", "sweepleases"],
                 ["autotua-master", "help", "refreshsnapshots"]):
        proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(BIN / "autotua-slave"), "--help"], capture_output=True, text=True)
    for sub in ("run", "clean", "register"):
        assert sub in proc.stdout
