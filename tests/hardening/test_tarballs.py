"""Tarball traversal in the forms tests/slave/test_tarball.py leaves out, on both paths a tarball takes
into the slave: a stage3 (checked, then GNU tar with the Handbook's flags) and a PORTCONF tarball
(checked, then unpacked one directory descriptor at a time; its entries below etc/portage/, the only
place a PORTCONF tarball may write, so that each case meets the check it is about). Real archives, made with tarfile and
with GNU tar itself (sparse files, PAX and GNU long names, zstd). Each is refused before a single
byte is written, and fast (a 1 TiB sparse file is refused from its header, never unpacked).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from autotua.slave.tarball import UNPACKED_LIMIT, TarballError, check_members, extract_into, unpack_stage3

bad = pytest.mark.bad_input
KINDS = ["stage3", "portconf"]


def member(name, kind=tarfile.REGTYPE, data=b"x\n", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def tar(path: Path, entries, fmt=tarfile.PAX_FORMAT, mode="w:gz") -> Path:
    with tarfile.open(path, mode, format=fmt) as t:
        for info, data in [member("etc", tarfile.DIRTYPE), member("etc/portage", tarfile.DIRTYPE), *entries]:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def assert_refused(tarball: Path, kind: str, why: str, tmp_path: Path) -> None:
    """Refused by the check and by the unpacker of ``kind``, in under 10 s, with nothing written."""
    started = time.monotonic()
    with pytest.raises(TarballError, match=why):
        check_members(tarball, kind)
    root = tmp_path / f"root-{kind}"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    with pytest.raises(TarballError, match=why):
        if kind == "stage3":
            unpack_stage3(tarball, root / "new")
        else:
            extract_into(tarball, root)
    assert time.monotonic() - started < 10
    assert list(root.iterdir()) == [], list(root.rglob("*"))
    assert list(outside.iterdir()) == []


@bad("tarball", "a 1 TiB sparse file (GNU tar -S, a 200-byte .tar.gz) in a {kind} tarball",
     "TarballError: it is a sparse file; nothing unpacked")
@pytest.mark.parametrize("kind", KINDS)
def test_huge_sparse_file(tmp_path, kind):
    src = tmp_path / "src"
    (src / "etc/portage").mkdir(parents=True)
    (src / "etc/portage/ok.conf").write_text("A=1\n")
    with open(src / "etc/portage/huge", "wb") as f:
        f.truncate(1 << 40)
    out = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "-cSzf", out, "-C", src, "."], check=True)
    assert out.stat().st_size < 4096
    assert_refused(out, kind, r"refusing entry './etc/portage/huge': it is a sparse file \(1099511627776 bytes",
                   tmp_path)


@bad("tarball", "a {kind} tarball whose header claims more bytes than the kind's limit",
     "TarballError: the archive unpacks to more than the limit")
@pytest.mark.parametrize("kind", KINDS)
def test_header_claiming_a_huge_file(tmp_path, kind):
    """A header saying 64 GiB + 1 (GNU base-256 size field) with a few bytes after it: refused from the header."""
    info = tarfile.TarInfo("etc/portage/bomb")
    info.size = UNPACKED_LIMIT[kind] + 1
    raw = io.BytesIO()
    raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
    raw.write(b"\0" * 4096)
    out = tmp_path / "lie.tar"
    out.write_bytes(raw.getvalue())
    assert_refused(out, kind, "the archive unpacks to more than", tmp_path)


@bad("tarball", "a PORTCONF tarball of 65 MiB of zeros (65 KiB compressed)",
     "TarballError: the archive unpacks to more than 67108864 bytes")
def test_portconf_that_unpacks_past_its_limit(tmp_path):
    out = tmp_path / "zeros.tar.gz"
    tar(out, [member("etc/portage/zeros", data=b"\0" * (65 << 20))])
    assert out.stat().st_size < 200_000
    assert_refused(out, "portconf", "the archive unpacks to more than 67108864 bytes", tmp_path)


HOSTILE = {
    "hard link to an absolute name": ([member("etc/portage/shadow", tarfile.LNKTYPE, linkname="/etc/shadow")],
                                      "hard link to a name with an absolute name"),
    "entry below a regular file of the archive": ([member("etc/portage/conf"), member("etc/portage/conf/x")],
                                                  "below 'etc/portage/conf', which is not a directory"),
    "hard link to a symlink of the archive": ([member("etc/portage/l", tarfile.SYMTYPE, linkname="/etc/shadow"),
                                               member("etc/portage/h", tarfile.LNKTYPE, linkname="etc/portage/l")],
                                              "not an earlier file of the archive"),
    "a directory replaced by a symlink, then written through": (
        [member("etc/portage", tarfile.DIRTYPE), member("etc/portage", tarfile.SYMTYPE, linkname="/etc"),
         member("etc/portage/passwd")], "below the symlink 'etc/portage'"),
    "a symlink, then a file through it": ([member("etc/portage/up", tarfile.SYMTYPE, linkname=".."),
                                            member("etc/portage/up/escape")],
                                           "below the symlink 'etc/portage/up'"),
    "'..' hidden in a PAX path header": ([member("etc/" + "x" * 120 + "/../../../escape")], "'..' component"),
    "'..' hidden in a GNU long name": ([member("etc/" + "y" * 120 + "/../../../escape")], "'..' component"),
    "the archive's root as a file": ([member(".")], "the archive's root is not a directory"),
    "a hard link to '..'": ([member("etc/portage/x", tarfile.LNKTYPE, linkname="../etc/passwd")],
                            "'..' component"),
}


@bad("tarball", "{kind} tarball: {case}", "TarballError naming the entry; nothing written")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_more_traversals(tmp_path, kind, case):
    entries, why = HOSTILE[case]
    fmt = tarfile.GNU_FORMAT if "GNU" in case else tarfile.PAX_FORMAT
    assert_refused(tar(tmp_path / "bad.tar.gz", entries, fmt=fmt), kind, why, tmp_path)


@bad("tarball", "a zstd-compressed {kind} tarball with a '..' entry", "TarballError: '..' component")
@pytest.mark.parametrize("kind", KINDS)
def test_zstd_traversal(tmp_path, kind):
    plain = tar(tmp_path / "bad.tar", [member("etc/../../escape")], mode="w")
    out = tmp_path / "bad.tar.zst"
    subprocess.run(["zstd", "-q", "-o", out, plain], check=True)
    assert_refused(out, kind, "'..' component", tmp_path)


@bad("tarball", "a {kind} tarball cut off in the middle", "TarballError: not a readable tarball")
@pytest.mark.parametrize("kind", KINDS)
def test_truncated_tarball(tmp_path, kind):
    full = tar(tmp_path / "full.tar.gz", [member("etc/portage/big", data=bytes(range(256)) * 4000)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert_refused(cut, kind, "not a readable tarball", tmp_path)


@pytest.mark.root
@pytest.mark.slow
@bad("stage3", "a signed stage3 holding a 1 TiB sparse file, through autotua-slave fetch-stage3",
     "exit 1: refusing entry ...: it is a sparse file; no root unpacked")
def test_fetch_stage3_refuses_a_signed_sparse_bomb(tmp_path, release_key, stage3):
    """The stage3 path end to end: the release is validly signed (DIGESTS, .asc, latest), and still refused."""
    import os

    from autotua.demo.httpserver import MirrorServer
    from autotua.demo.slaves import SlaveSetup
    from autotua.demo.stage3 import copy_release, digests_block

    if os.geteuid() != 0:
        pytest.skip("fetch-stage3 needs root (CI runs the tests as root)")
    release = copy_release(stage3, tmp_path / "mirror")
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin/sh").write_text("#!/bin/true\n")
    with open(src / "bin/huge", "wb") as f:
        f.truncate(1 << 40)
    tarball = release.tarball
    subprocess.run(["tar", "-cSJf", tarball, "-C", src, "."], check=True)
    signer = release_key.signer
    Path(f"{tarball}.asc").write_bytes(signer.detached(tarball.read_bytes()))
    contents = Path(f"{tarball}.CONTENTS.gz")
    Path(f"{tarball}.DIGESTS").write_bytes(signer.clearsign((digests_block(tarball) +
                                                            digests_block(contents)).encode()))
    release.latest.write_bytes(signer.clearsign(f"# ts=1\n{release.path} {tarball.stat().st_size}\n".encode()))
    with MirrorServer(release.mirror) as m:
        s = SlaveSetup(tmp_path / "slave", "http://127.0.0.1:9/", "t", m.url, str(release_key.key_file))
        r = s.run("fetch-stage3")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refusing entry './bin/huge': it is a sparse file" in r.stderr
    roots = tmp_path / "slave/cache/roots"
    assert not roots.exists() or not [p for p in roots.iterdir() if p.is_dir()]
