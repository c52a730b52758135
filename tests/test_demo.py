from autotua.demo.main import main


def test_demo_signs_the_tree_and_prints_valid_plans(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "8 jobuilds, 0 error(s)" in out
    assert out.count(">>> valid") == 4
    assert "<alice/hello-suite-2     -> alice/hello-suite-1.1" in out
    assert "bob/fail-on-purpose      -> bob/fail-on-purpose-1.0" in out
    assert (tmp_path / "demo/jobtage/.bzr").is_dir()
