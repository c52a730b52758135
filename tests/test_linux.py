import os

import pytest

from autotua import linux


def test_mountinfo_parses_this_process():
    mounts = linux.mountinfo()
    assert any(m.mount_point == "/" for m in mounts)
    assert all(m.mount_id > 0 for m in mounts)


def test_unescape_octal():
    assert linux._unescape(r"/mnt/with\040space\011tab") == "/mnt/with space\ttab"
    assert linux._unescape("/a\\") == "/a\\"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_mount_and_mounts_under(tmp_path):
    target = tmp_path / "with space"
    target.mkdir()
    inner = target / "inner"
    linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID, "size=1m")
    try:
        inner.mkdir()
        linux.mount("tmpfs", inner, "tmpfs", 0, "size=1m")
        assert linux.mounts_under(tmp_path) == [str(target), str(inner)]
        with pytest.raises(OSError, match="busy"):
            linux.umount(target)
        linux.umount(inner)
    finally:
        linux.umount(target, linux.MNT_DETACH)
    assert linux.mounts_under(tmp_path) == []
    with pytest.raises(OSError, match="umount"):
        linux.umount(target)
