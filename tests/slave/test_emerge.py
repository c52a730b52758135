"""Real portage in the test stage3: ``emerge --oneshot`` of a package of the tiny repository in a plain
chroot of a root that carries portage 3.0.83 (autotua.demo.portage), the repository a verified
snapshot (autotua.slave.snapshot) bind-mounted read-only at /var/db/repos/gentoo, its distfiles
fetched by portage from the local mirror. Portage fetches, builds, runs src_test, installs and
writes binary packages, and a second emerge installs from them; a USE flag fails src_test, a
REQUIRED_USE violation is refused, and ``emerge --info`` works. The job container moves this into the
container (issue 11); the mounts here live in a private mount namespace that dies with the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autotua.demo.httpserver import MirrorServer
from autotua.demo.portage import PORTAGE_VERSION, REPOSITORY, build_portage_rootfs, portage_wheel, run_in_chroot
from autotua.demo.repository import PROFILE
from autotua.slave.snapshot import SnapshotStore
from tests.slave.helpers import needs_root

pytestmark = [pytest.mark.slow, pytest.mark.root, needs_root]


@pytest.fixture(scope="module")
def portage_root(tmp_path_factory) -> Path:
    return build_portage_rootfs(tmp_path_factory.mktemp("stage3") / "root", portage_wheel(), PROFILE)


@pytest.fixture(scope="module")
def served(snapshots):
    with MirrorServer(snapshots[0].mirror) as m:
        yield m


@pytest.fixture(scope="module")
def repository(tmp_path_factory, served, snapshot_key, snapshots):
    store = SnapshotStore([served.url], tmp_path_factory.mktemp("cache"), snapshot_key.key_file,
                          fingerprint=snapshot_key.fingerprint)
    return store.get(snapshots[1].date)


@pytest.fixture
def root(tmp_path, portage_root, served) -> Path:
    """A fresh copy of the portage stage3, fetching distfiles from the local mirror."""
    copy = tmp_path / "root"
    subprocess.run(["cp", "-a", str(portage_root), str(copy)], check=True)
    conf = copy / "etc/portage/make.conf"
    conf.write_text(conf.read_text() + f'GENTOO_MIRRORS="{served.url}"\nSLOWLIB_SECONDS=1\n')
    yield copy
    shutil.rmtree(copy, ignore_errors=True)



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
