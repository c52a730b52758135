"""Tarball safety: every hostile entry refused before anything is written; PORTCONF unpacked without
following the root's own links."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from autotua.slave.tarball import TarballError, check_members, extract_into, unpack_stage3
from tests.slave.helpers import needs_root


def entry(name, kind=tarfile.REGTYPE, data=b"x\n", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def make_tar(path: Path, entries, mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


GOOD = [entry("etc/portage", tarfile.DIRTYPE, mode=0o755), entry("etc/portage/make.conf", data=b'FEATURES="test"\n')]

HOSTILE = {
    "dotdot": ([entry("etc/../../escape")], "'..' component"),
    "absolute": ([entry("/etc/passwd")], "absolute name"),
    "char device": ([entry("dev/evil", tarfile.CHRTYPE)], "device node"),
    "block device": ([entry("dev/sda", tarfile.BLKTYPE)], "device node"),
    "through own symlink": ([entry("etc/portage", tarfile.SYMTYPE, linkname="/etc"), entry("etc/portage/passwd")],
                            "below the symlink 'etc/portage'"),
    "hard link outside": ([entry("etc/portage/shadow", tarfile.LNKTYPE, linkname="../../etc/shadow")],
                          "'..' component"),
    "hard link to unknown": ([entry("etc/portage/x", tarfile.LNKTYPE, linkname="etc/shadow")], "not an earlier file"),
}


@pytest.mark.parametrize("kind", ["stage3", "portconf"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.bad_input('tarball', '{kind} tarball: {case}', 'TarballError naming the entry and why; nothing written')
def test_hostile_entries_are_refused_before_anything_is_written(tmp_path, kind, case):
    entries, why = HOSTILE[case]
    tar = make_tar(tmp_path / "bad.tar.gz", GOOD + entries)
    with pytest.raises(TarballError, match=why):
        check_members(tar, kind)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(TarballError, match=why):
        extract_into(tar, root) if kind == "portconf" else unpack_stage3(tar, root / "new")
    assert list(root.iterdir()) == []  # not even the good entries before the bad one


@pytest.mark.bad_input('tarball', 'portconf tarball: a relative symlink that climbs out of the root',
                       'TarballError: points outside the root')
def test_portconf_symlinks_that_climb_out_are_refused_absolute_ones_kept(tmp_path):
    out = make_tar(tmp_path / "out.tar.gz", [entry("etc/portage/x", tarfile.SYMTYPE, linkname="../../../etc/shadow")])
    with pytest.raises(TarballError, match=r"points outside the root"):
        check_members(out, "portconf")
    check_members(out, "stage3")  # a stage3's links are read inside the chroot: allowed
    inside = make_tar(tmp_path / "in.tar.gz", [
        entry("etc/portage/make.profile", tarfile.SYMTYPE,
              linkname="/var/db/repos/gentoo/profiles/default/linux/amd64/23.0"),
        entry("etc/portage/repos", tarfile.SYMTYPE, linkname="../../var/db/repos"),
    ])
    root = tmp_path / "root"
    root.mkdir()
    assert extract_into(inside, root) == 2
    assert os.readlink(root / "etc/portage/make.profile").startswith("/var/db/repos/gentoo/")


@pytest.mark.bad_input('tarball', 'portconf tarball: a FIFO', 'TarballError: only files, directories and links')
def test_portconf_fifo_refused_but_stage3_fifo_allowed(tmp_path):
    tar = make_tar(tmp_path / "f.tar.gz", [entry("etc/portage/fifo", tarfile.FIFOTYPE)])
    check_members(tar, "stage3")
    with pytest.raises(TarballError, match=r"only files, directories and links"):
        check_members(tar, "portconf")


@pytest.mark.bad_input('tarball', 'portconf tarball: an entry below a link the root already has (var/run -> /run)',
                       'TarballError: link or not a directory; nothing written outside')
def test_extract_never_follows_a_link_already_in_the_root(tmp_path):
    """A root whose `etc/portage` links outside (as stage3s have `/var/run -> /run`, and a hostile one
    could have this): writing through it is refused."""
    outside = tmp_path / "host-dir"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink(outside, root / "etc/portage")
    tar = make_tar(tmp_path / "p.tar.gz", [entry("etc/portage/pwned", data=b"owned\n")])
    with pytest.raises(TarballError, match=r"link or not a directory"):
        extract_into(tar, root)
    assert list(outside.iterdir()) == []
    # a file that is a link in the root is replaced, not written through
    os.unlink(root / "etc/portage")
    (root / "etc/portage").mkdir()
    target = tmp_path / "host-file"
    target.write_text("host\n")
    os.symlink(target, root / "etc/portage/make.conf")
    extract_into(make_tar(tmp_path / "q.tar.gz", [entry("etc/portage/make.conf", data=b"mine\n")]), root)
    assert target.read_text() == "host\n"
    assert not (root / "etc/portage/make.conf").is_symlink()
    assert (root / "etc/portage/make.conf").read_text() == "mine\n"


@pytest.mark.root
@needs_root
def test_extract_modes_owners_and_hard_links(tmp_path):
    """Modes as the archive has them, owners moved into the job's ids, hard links kept."""
    tar = make_tar(tmp_path / "p.tar.xz", [
        entry("etc/portage", tarfile.DIRTYPE, mode=0o755),
        entry("etc/portage/make.conf", data=b"A=1\n", mode=0o640),
        entry("etc/portage/same.conf", tarfile.LNKTYPE, linkname="etc/portage/make.conf"),
    ], mode="w:xz")
    root = tmp_path / "root"
    root.mkdir()
    extract_into(tar, root, id_shift=1879048192)
    st = os.stat(root / "etc/portage/make.conf")
    assert st.st_mode & 0o7777 == 0o640 and (st.st_uid, st.st_gid) == (1879048192, 1879048192)
    assert os.stat(root / "etc/portage/same.conf").st_ino == st.st_ino
    assert (root / "etc/portage/same.conf").read_text() == "A=1\n"


@pytest.mark.bad_input('tarball', 'portconf tarball: {case}', 'TarballError naming the entry; nothing written')
@pytest.mark.parametrize("case,bad,why", [
    ("an entry outside etc/portage/", entry("run/evil"), "may only hold etc/portage/"),
    ("a setuid file", entry("etc/portage/bashrc", mode=0o4755), "setuid or setgid"),
    ("a setgid directory", entry("etc/portage/env", tarfile.DIRTYPE, mode=0o2755), "setuid or setgid"),
    ("an owner outside the job's ids", entry("etc/portage/owned"), "not one of the job's ids"),
])
def test_portconf_holds_portage_config_only(tmp_path, case, bad, why):
    if case.startswith("an owner"):
        bad[0].uid = 70000
    tar = make_tar(tmp_path / "bad.tar.gz", [*GOOD, bad])
    with pytest.raises(TarballError, match=rf"refusing entry '{bad[0].name}': .*{why}"):
        check_members(tar, "portconf")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(TarballError, match=why):
        extract_into(tar, root)
    assert list(root.iterdir()) == []
    check_members(make_tar(tmp_path / "legacy.tar.gz", [entry("etc/make.conf")]), "portconf")  # the legacy name


@pytest.mark.bad_input('tarball', 'a tarball that is not one', 'TarballError: not a readable tarball')
def test_unreadable_tarball(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(TarballError, match=r"not a readable tarball"):
        check_members(bad, "portconf")


@pytest.mark.root
@needs_root
def test_unpack_stage3_keeps_owners_and_modes(tmp_path):
    owned = entry("./home/user/file", data=b"u\n", mode=0o640)
    owned[0].uid, owned[0].gid = 1234, 5678
    tar = make_tar(tmp_path / "s.tar.xz", [entry("./", tarfile.DIRTYPE, mode=0o755),
                                            entry("./home", tarfile.DIRTYPE, mode=0o755),
                                            entry("./home/user", tarfile.DIRTYPE, mode=0o700), owned,
                                            entry("./etc/localtime", tarfile.SYMTYPE, linkname="/usr/share/zi/UTC")],
                   mode="w:xz")
    unpack_stage3(tar, tmp_path / "root")
    st = os.stat(tmp_path / "root/home/user/file")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 5678, 0o640)
    assert os.readlink(tmp_path / "root/etc/localtime") == "/usr/share/zi/UTC"
