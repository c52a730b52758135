"""Real portage in the test stage3: ``emerge --oneshot`` of a package of the tiny repository in a plain
chroot of a root that carries portage 3.0.83 (autotua.demo.portage), the repository a verified
snapshot (autotua.slave.snapshot) bind-mounted read-only at /var/db/repos/gentoo, its distfiles
fetched by portage from the local mirror. Portage fetches, builds, runs src_test, installs and
writes binary packages, and a second emerge installs from them; a USE flag fails src_test, a
REQUIRED_USE violation is refused, and ``emerge --info`` works; the mounts here live in a private
mount namespace that dies with the test. And the same in the job container, where portage runs its
userpriv, ipc-sandbox and network-sandbox for real (the job's root is not the host's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autotua.demo.portage import PORTAGE_VERSION, REPOSITORY, run_in_chroot
from tests.slave.helpers import needs_root
from tests.support.container import sh, start, wait_nothing_left, workspace

pytestmark = [pytest.mark.slow, pytest.mark.root, needs_root]


def test_emerge_builds_tests_installs_and_packages(root, repository, served):
    done = run_in_chroot(root, repository.path, "emerge", "--oneshot", "app-misc/hello")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    # the dependency first, each fetched, tested, installed and packaged
    for cpv in ("dev-libs/slowlib-1.0", "app-misc/hello-1.0"):
        assert f"Completed testing {cpv}" in out
        assert (root / "var/db/pkg" / cpv).is_dir()
        cat, pf = cpv.split("/")
        assert (root / "var/cache/binpkgs" / cat / pf.rsplit("-", 1)[0] / f"{pf}-1.gpkg.tar").stat().st_size > 0
    assert out.index("Emerging (1 of 2) dev-libs/slowlib-1.0") < out.index("Emerging (2 of 2) app-misc/hello-1.0")
    assert ("GET", "/distfiles/hello-1.0.tar.gz", None) in served.requests  # from GENTOO_MIRRORS
    assert (root / "var/cache/distfiles/hello-1.0.tar.gz").exists()
    ran = run_in_chroot(root, repository.path, "hello")
    assert ran.stdout == "Hello from hello 1.0\n", ran.stderr
    # the repository was read-only; portage needed nothing written there
    assert not list((root / REPOSITORY.lstrip("/")).iterdir())  # only the mount point, empty outside
    # a second emerge of the dependency installs the binary package instead of building it
    again = run_in_chroot(root, repository.path, "emerge", "--oneshot", "--usepkgonly", "dev-libs/slowlib")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "Emerging binary (1 of 1) dev-libs/slowlib-1.0" in again.stdout
    assert "Compiling source" not in again.stdout


def test_emerge_info(root, repository):
    info = run_in_chroot(root, repository.path, "emerge", "--info")
    assert info.returncode == 0, info.stderr[-3000:]
    assert f"Portage {PORTAGE_VERSION}" in info.stdout
    assert 'ACCEPT_KEYWORDS="amd64"' in info.stdout
    assert "gentoo\n    location: /var/db/repos/gentoo" in info.stdout
    features = info.stdout.split('\nFEATURES="', 1)[1].split('"', 1)[0].split()
    assert {"test", "buildpkg", "userpriv"} <= set(features) and "sandbox" not in features


def test_a_use_flag_fails_src_test_and_required_use_is_checked(root, repository):
    broken = run_in_chroot(root, repository.path, "emerge", "--oneshot", "app-misc/hello", env={"USE": "broken-test"})
    out = broken.stdout + broken.stderr
    assert broken.returncode != 0
    assert "src_test fails on purpose: USE=broken-test" in out and "(test phase)" in out
    assert not (root / "var/db/pkg/app-misc/hello-1.0").exists()
    both = run_in_chroot(root, repository.path, "emerge", "--oneshot", "--pretend", "app-misc/hello",
                  env={"USE": "english french"})
    assert both.returncode != 0
    assert "REQUIRED_USE" in both.stdout + both.stderr


def test_emerge_in_the_job_container(tmp_path, portage_root, repository, snapshots, host):
    """emerge in the job container, the snapshot at /var/db/repos/gentoo (read-only, idmapped), the
    distfiles from the slave's verified cache below the job's DISTDIR layer (the job cannot reach the
    host's 127.0.0.1 mirror, by design): it builds, tests (as portage: userpriv) and installs."""
    distdir = tmp_path / "distfiles"
    shutil.copytree(Path(snapshots[0].mirror) / "distfiles", distdir)
    ws = workspace(tmp_path)
    c = start(ws, portage_root, host, distdir=distdir, repository=str(repository.path))
    try:
        rc, out = sh(c, "emerge --oneshot app-misc/hello && hello && ls -ln /var/cache/binpkgs/app-misc/hello "
                        "&& emerge --info | grep -E '^FEATURES'", timeout=900)
    finally:
        c.teardown()
    assert rc == 0, out[-4000:]
    assert "Completed testing app-misc/hello-1.0" in out and "Hello from hello 1.0" in out
    features = out.split('FEATURES="', 1)[1].split('"', 1)[0].split()
    assert {"userpriv", "ipc-sandbox", "network-sandbox"} <= set(features), features
    assert wait_nothing_left(tmp_path, [ws.run], [c.info["netns"]]) == {}
