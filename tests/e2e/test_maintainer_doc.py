"""docs/maintainer.md's session, run as written: every ``$`` command of it, in one shell, as alice, against
a live master and a real slave; the config files are the document's own (its host and token replaced);
what goes into ``$EDITOR`` is the document's jobuild. Each command must succeed and print the lines the
document shows (job numbers, revisions, digests, paths and the master's address aside). It is the end
to end of the maintainer's loop: ``brz push`` over HTTP with the API token, the master indexes the new
revision, ``submit --watch`` follows the job on the slave to its end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slave.helpers import needs_root

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

DOC = Path(__file__).resolve().parents[2] / "docs" / "maintainer.md"
PLACEHOLDER_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def session(text: str) -> list[tuple[str, list[str]]]:
    """The session's commands, each with the lines the document shows after it."""
    block = text.split("## A session", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def block_after(text: str, marker: str, lang: str) -> str:
    return text.split(marker, 1)[1].split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def config_files(text: str, master_url: str, token: str) -> dict[str, str]:
    """The two ini files of "Setting up, once", for this master and this token."""
    from urllib.parse import urlsplit

    url = urlsplit(master_url)
    setup = text.split("## Setting up, once", 1)[1].split("## A session", 1)[0]
    auth, conf = (b.split("```", 1)[0] for b in setup.split("```ini\n")[1:3])
    auth = auth.replace("scheme = https", f"scheme = {url.scheme}").replace(
        "host = master.example.org", f"host = {url.hostname}\nport = {url.port}").replace(PLACEHOLDER_TOKEN, token)
    conf = conf.replace("https://master.example.org", master_url).replace(PLACEHOLDER_TOKEN, token)
    assert token in auth and token in conf and master_url in conf
    return {".config/breezy/authentication.conf": auth, ".config/autotua/jobuild.conf": conf}


def normal(line: str, master_url: str, checkout: str) -> str:
    line = line.replace(master_url, "<master>").replace("https://master.example.org", "<master>")
    line = line.replace(checkout, "<tree>").replace("/home/alice/jobtage", "<tree>")
    line = re.sub(r"\b[0-9a-f]{8,}\b", "HEX", line)
    line = re.sub(r"\d+", "N", line)
    return " ".join(line.split())


def test_the_maintainer_guide_session_runs_as_written(tmp_path, sample, e2e_master, make_slave, tree):
    text = DOC.read_text()
    steps = session(text)
    assert len(steps) >= 10 and steps[-1][0].startswith("autotua-jobuild submit")
    master = e2e_master()
    slave = make_slave(master, "box1")
    slave.start()
    token = master.people["alice"].headers["Authorization"].split()[1]
    home = tmp_path / "alice"
    for rel, body in config_files(text, master.url, token).items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(body)
        (home / rel).chmod(0o600)
    editor = tmp_path / "editor"
    jobuild = block_after(text, "<!-- editor -->", "bash")
    editor.write_text(f"#!{sys.executable}\nimport sys\nopen(sys.argv[1], 'w').write({jobuild!r})\n")
    editor.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    script = ["set -o pipefail"]
    for i, (cmd, _) in enumerate(steps):
        script += [f"echo '@@ {i}'", f"{{ {cmd} ; }} 2>&1 || {{ echo \"@@ FAILED {i} $?\"; exit 1; }}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOTUA_", "BRZ_"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                "GNUPGHOME": str(tree.gnupghome), "BRZ_EMAIL": "alice <alice@jobtage.example>", "BRZ_LOG": os.devnull,
                "MASTER": master.url, "KEY": tree.fingerprints["alice"], "EDITOR": str(editor),
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"})
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout
    assert proc.returncode == 0 and "@@ FAILED" not in out, out[-6000:] + proc.stderr[-2000:]
    checkout = str(work / "jobtage")
    parts = re.split(r"^@@ (\d+)\n", out, flags=re.M)
    got = {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}
    for i, (cmd, shown) in enumerate(steps):
        lines = {normal(x, master.url, checkout) for x in got[i].splitlines()}
        for want in shown:
            assert normal(want, master.url, checkout) in lines, f"`{cmd}` did not print {want!r}:\n{got[i]}"
    # the push landed on the master's branch, indexed; the job passed
    jobs = master.people["alice"].get(master.url + "/api/v1/jobs/?root=alice/greeting", timeout=60).json()["results"]
    assert [j["state"] for j in jobs] == ["passed"]
    assert f"Pushed up to revision {jobs[0]['revno']}." in got[[c for c, _ in steps].index(
        next(c for c, _ in steps if c.startswith("brz push")))]
    shutil.rmtree(work / "jobtage", ignore_errors=True)
