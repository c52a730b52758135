"""The sample tree's gentoo/arch-test jobuild with real portage: its phases, through jobuild.sh as the
slave runs them, in a plain chroot of the portage stage3 (autotua.demo.portage) with a verified
snapshot bind-mounted read-only, as tests/slave/test_emerge.py runs emerge. It emerges the job's
package with the job's USE flags and FEATURES=test, and classifies what fails from portage's exit
and output: a src_test dying (USE=broken-test) is a test failure naming the package and portage's
message, a REQUIRED_USE violation is refused before any build, a distfile nobody serves is a fetch
failure, and a reverse dependency builds against the version under test. The job container moves
this into the container (issues 11 and 12); these tests say the jobuild is ready for it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autotua.bridge import jobuild_sh, parse_record
from autotua.demo.portage import run_in_chroot
from autotua.demo.sampletree import JOBTAGE
from autotua.params import environment
from tests.slave.helpers import needs_root

pytestmark = [pytest.mark.slow, pytest.mark.root, needs_root]
INSIDE = "/var/tmp/autotua"


def run_jobuild(root: Path, repository, jobuild: str = "gentoo/arch-test-1", **values):
    """The jobuild's phases as the slave runs them (its env, the bridge, the record descriptor), in
    the chroot; (exit status, log, records, attachments dir)."""
    user, pv = jobuild.split("/")
    name = pv.rsplit("-", 1)[0]
    host = root / INSIDE.lstrip("/")
    for d in ("tree", "work", "temp", "out"):
        (host / d).mkdir(parents=True, exist_ok=True)
    shutil.copytree(JOBTAGE / user, host / "tree" / user, dirs_exist_ok=True)
    shutil.copyfile(jobuild_sh(), host / "jobuild.sh")
    env = {
        **environment(values), "NOCOLOR": "true", "__AB_FD": "3",
        "P": pv, "PN": name, "PV": pv.rsplit("-", 1)[1], "JOBUILD_USER": user,
        "FILESDIR": f"{INSIDE}/tree/{user}/{name}/files", "DISTDIR": "/var/cache/distfiles",
        "WORKDIR": f"{INSIDE}/work", "T": f"{INSIDE}/temp", "A": "",
        "__AB_JOBUILD": f"{INSIDE}/tree/{user}/{name}/{pv}.jobuild", "__AB_TREE": f"{INSIDE}/tree",
        "__AB_OUTDIR": f"{INSIDE}/out",
    }
    done = run_in_chroot(root, repository.path, "/bin/bash", "-c",
                         f"exec 3>{INSIDE}/records; exec /bin/bash {INSIDE}/jobuild.sh phases 2>&1", env=env,
                         timeout=900)
    records = [parse_record(line) for line in (host / "records").read_text().splitlines()]
    return done.returncode, done.stdout + done.stderr, [r for r in records if r], host / "out"


def results(records) -> dict[str, str]:
    return dict(v.split(" ", 1) for k, v in records if k == "AUTOTUA_RESULT")


def attachments(records) -> list[str]:
    return [v.split(" ", 1)[1] for k, v in records if k == "AUTOTUA_ATTACH"]


def test_a_passing_combination_builds_tests_and_installs(root, repository):
    rc, log, records, out = run_jobuild(root, repository, atom="=app-misc/hello-1.0",
                                        use="-broken-test english -french", unmask="=app-misc/hello-1.0")
    assert rc == 0, log[-4000:]
    assert results(records) == {"archtest.outcome": "passed", "archtest.binary": "",  # what emerge merged
                                "archtest.built": "dev-libs/slowlib-1.0 app-misc/hello-1.0"}
    assert "Completed testing app-misc/hello-1.0" in log  # FEATURES=test
    assert (root / "var/db/pkg/app-misc/hello-1.0").is_dir() and (root / "var/db/pkg/dev-libs/slowlib-1.0").is_dir()
    assert (root / "etc/portage/package.use/autotua-arch-test").read_text() == (
        "=app-misc/hello-1.0 -broken-test english -french\n")
    assert attachments(records) == ["emerge --info", "build log"]
    info = next(p for p in out.iterdir() if p.name.endswith("emerge-info.txt")).read_text()
    assert "Portage 3.0.83" in info
    build_log = next(p for p in out.iterdir() if p.name.endswith("build.log")).read_text()
    assert "Completed testing app-misc/hello-1.0" in build_log  # portage's log of hello's build


def test_a_failing_src_test_is_a_test_failure(root, repository):
    rc, _, records, out = run_jobuild(root, repository, atom="=app-misc/hello-1.0",
                                      use="broken-test -english french")
    assert rc != 0
    assert results(records) == {"archtest.outcome": "failed", "archtest.step": "build", "archtest.failure": "test",
                                "archtest.package": "app-misc/hello-1.0", "archtest.phase": "test",
                                "archtest.message": "src_test fails on purpose: USE=broken-test"}
    assert attachments(records) == ["emerge --info", "build log", "emerge output"]
    build_log = next(p for p in out.iterdir() if p.name.endswith("build.log")).read_text()
    assert "src_test fails on purpose" in build_log
    died = [v for k, v in records if k == "AUTOTUA_DIE"]
    assert died == ["src_test build of =app-misc/hello-1.0 failed: test (app-misc/hello-1.0, test phase): "
                    "src_test fails on purpose: USE=broken-test"]
    assert not (root / "var/db/pkg/app-misc/hello-1.0").exists()
    assert (root / "var/db/pkg/dev-libs/slowlib-1.0").is_dir()  # its dependency built first, and passed


def test_required_use_is_refused_before_any_build(root, repository):
    rc, log, records, _ = run_jobuild(root, repository, atom="=app-misc/hello-1.0", use="english french")
    assert rc != 0
    got = results(records)
    assert (got["archtest.failure"], got["archtest.step"]) == ("required-use", "dependencies"), log[-3000:]
    assert not (root / "var/db/pkg/dev-libs/slowlib-1.0").exists()


def test_a_distfile_nobody_serves_is_a_fetch_failure(root, repository):
    conf = root / "etc/portage/make.conf"
    conf.write_text(conf.read_text().replace("GENTOO_MIRRORS=", "GENTOO_MIRRORS=\"http://127.0.0.1:9/\"\n#"))
    rc, log, records, _ = run_jobuild(root, repository, atom="=app-misc/tiny-1.0")
    assert rc != 0
    got = results(records)
    assert (got["archtest.failure"], got.get("archtest.package")) == ("fetch", "app-misc/tiny-1.0"), log[-3000:]
    assert got["archtest.message"] == "Couldn't download 'tiny-1.0.tar.gz'. Aborting."


def test_a_reverse_dependency_builds_with_the_version_under_test(root, repository):
    rc, log, records, _ = run_jobuild(root, repository, atom="=app-misc/greeter-extras-1.0", use="fancy",
                                      unmask="=dev-libs/libgreet-1.0", **{"with": "=dev-libs/libgreet-1.0"})
    assert rc == 0, log[-4000:]
    assert results(records) == {"archtest.outcome": "passed", "archtest.binary": "",
                                # as a dependency, then again as the version under test (the "with" step)
                                "archtest.built": "dev-libs/libgreet-1.0 dev-libs/libgreet-1.0 "
                                                  "app-misc/greeter-extras-1.0"}
    assert (root / "var/db/pkg/dev-libs/libgreet-1.0").is_dir()  # the ~amd64 version under test, not 0.9
    assert not (root / "var/db/pkg/dev-libs/libgreet-0.9").exists()
    assert (root / "var/db/pkg/app-misc/greeter-extras-1.0").is_dir()
