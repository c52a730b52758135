"""autotua-jobuild, end to end as a maintainer uses it: new, manifest, sign, check, metadata, graph."""

import json
import os
import subprocess
import sys

import pytest

from autotua.cli.jobuild import main
from autotua.demo.httpserver import MirrorServer
from autotua.demo.sampletree import build_distfiles


@pytest.fixture
def cli(monkeypatch, gnupghome, tmp_path, capsys):
    monkeypatch.setenv("GNUPGHOME", str(gnupghome))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(*args):
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_maintainer_workflow(cli, tmp_path, keys):
    tree = tmp_path / "jobtage"
    dist = build_distfiles(tmp_path / "served")
    rc, out, _ = cli("new", "alice/suite-1.1", "--tree", tree)
    assert rc == 0 and "wrote" in out
    path = tree / "alice/suite/suite-1.1.jobuild"
    assert 'DESCRIPTION=""' in path.read_text()
    rc, _, err = cli("new", "alice/suite-1.1", "--tree", tree)
    assert rc == 2 and "already exists" in err
    path.write_text('DESCRIPTION="run the suite"\nSRC_URI="mirror://samples/hello-suite-${PV}.tar.gz"\n'
                    'src_test() { bash run-tests.sh; }\n')
    (tree / "alice/suite/files").mkdir()
    (tree / "alice/suite/files/extra.sh").write_text("echo extra\n")
    mirrors = tmp_path / "mirrors"
    with MirrorServer(dist.popitem()[1].parent) as m:
        mirrors.write_text(f"samples {m.url}/nowhere {m.url}\n")
        rc, out, err = cli("manifest", tree / "alice/suite", "--mirrors", mirrors, "--distdir", tmp_path / "d")
    assert rc == 0, err
    text = (tree / "alice/suite/Manifest").read_text()
    assert text.startswith("AUX extra.sh ")
    assert "DIST hello-suite-1.1.tar.gz " in text
    # not signed yet: check lists every problem
    rc, out, err = cli("check", "--tree", tree, "--trust", f"alice={keys['alice']}")
    assert rc == 1
    assert "[missing-signature]" in out and "[untrusted-key]" in out
    rc, out, _ = cli("sign", "--local-user", keys["alice"], "--export-key", tree, "alice", tree / "alice")
    assert rc == 0 and "2 file(s) signed" in out
    assert (tree / "alice/alice.asc").exists()
    assert (tree / "alice/suite/Manifest").read_text().startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    rc, out, _ = cli("check", "--tree", tree, "--trust", f"alice={keys['alice']}")
    assert rc == 0, out
    assert "1 jobuilds, 0 error(s)" in out
    # trusting another fingerprint for alice makes everything fail
    rc, out, _ = cli("check", "--tree", tree, "--trust", f"alice={keys['mallory']}")
    assert rc == 1 and "[untrusted-key]" in out


def test_check_and_graph_on_the_sample_branch(cli, sample, tmp_path):
    trust = tmp_path / "trust"
    trust.write_text("".join(f"{u} {f}\n" for u, f in sample.fingerprints.items()))
    rc, out, _ = cli("check", "--tree", sample.branch, "--revision", "1", "--trust", trust)
    assert rc == 0, out
    assert ">>> revision 1: 11 jobuilds, 0 error(s)" in out
    rc, out, _ = cli("check", "--tree", sample.branch, "--trust", trust)  # a checkout: its working files
    assert rc == 0, out
    assert f">>> {sample.branch}: 11 jobuilds, 0 error(s)" in out
    rc, out, _ = cli("graph", "--tree", sample.branch, "--revision", "1", "--arch", "amd64", "--trust", trust,
                     "bob/integration")
    assert rc == 0
    assert out.index("alice/toolchain-sanity-1.0") < out.index("bob/portconf-check-1.0") < out.index(
        "bob/integration-1.0")
    assert "<alice/hello-suite-2" in out and "alice/hello-suite-1.1" in out
    rc, out, _ = cli("graph", "--tree", sample.branch, "--arch", "arm64", "--trust", trust, "--json",
                     "bob/integration")
    assert rc == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert data["errors"][0]["kind"] == "arch"
    assert [p["jobuild"] for p in data["plan"]][-1] == "bob/integration-1.0"
    assert set(data) >= {"root", "revision", "revno", "arch", "stage3", "plan", "sidepends", "warnings", "errors"}


def test_graph_without_trust_uses_the_tree_keys_and_says_so(cli, sample):
    rc, out, err = cli("graph", "--tree", sample.branch, "alice/hello-suite")
    assert rc == 0
    assert "alice/hello-suite-2.0" in out
    assert "trusting the keys the tree itself holds" in err


def test_metadata(cli, sample):
    path = sample.branch / "alice/hello-suite/hello-suite-2.0.jobuild"
    rc, out, _ = cli("metadata", path, "--json")
    assert rc == 0
    md = json.loads(out)["metadata"]
    assert md["src_uri"] == "mirror://autotua-samples/hello-suite-2.0.tar.gz -> alice-hello-suite-2.0.tar.gz"
    assert md["inherited"] == ["alice/testsuite"]
    rc, out, _ = cli("metadata", path)
    assert "DESCRIPTION=Run the hello test suite, version 2.0, with its extra checks" in out


def test_metadata_of_a_hostile_jobuild(cli, tmp_path):
    p = tmp_path / "t/alice/evil/evil-1.jobuild"
    p.parent.mkdir(parents=True)
    p.write_text("DESCRIPTION=x\nrm -rf --no-preserve-root /\n")
    rc, out, _ = cli("metadata", p, "--json")
    assert rc == 1
    assert json.loads(out)["error"]["kind"] == "forbidden-command"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "--tree", "/nonexistent", "alice/x"], "not a directory"),
        (["metadata", "/etc/passwd"], "not a .jobuild file"),
        (["check", "--tree", ".", "--trust", "alice=nothex"], "fingerprint"),
    ],
)
@pytest.mark.bad_input('slave', 'autotua-jobuild {args}', 'exit 2: {message}')
def test_environment_errors_exit_2(cli, args, message):
    rc, _, err = cli(*args)
    assert rc == 2
    assert message in err


def test_usage_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "autotua.cli.jobuild", "graph"], capture_output=True, text=True,
                          env={**os.environ, "XDG_CACHE_HOME": "/tmp"})
    assert proc.returncode == 2
    assert "--tree" in proc.stderr
