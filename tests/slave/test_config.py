"""The slave's TOML configuration: defaults, checks, clear errors."""

import os

import pytest

from autotua.demo.slaves import write_config
from autotua.slave.config import ConfigError, load, parse_size


def test_defaults_and_derived_paths(tmp_path):
    cfg = load(write_config(tmp_path / "s.toml", {"master": "https://m.example.org/"}))
    assert cfg.flavours == ["openrc"]
    assert cfg.work_dir == "/var/tmp/autotua-slave"
    assert str(cfg.distdir) == "/var/cache/autotua-slave/distfiles"
    assert cfg.release_key == "/usr/share/openpgp-keys/gentoo-release.asc"
    assert cfg.min_free_disk == 10 * 1024**3
    assert cfg.phase_timeout == 3600 and cfg.keep_failed_roots is False
    # the job container
    assert cfg.network == "outbound" and cfg.subids == "autotua" and cfg.idmapped_mounts is True
    assert cfg.disk_limit == 8 * 1024**3 and cfg.pids_limit == 4096 and cfg.cpus == 0.0 and cfg.trust == []
    assert 0 < cfg.memory_limit <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_container_settings(tmp_path):
    cfg = load(write_config(tmp_path / "s.toml", {"master": "http://m", "network": "none", "memory_limit": "2G",
                                                   "disk_limit": "20G", "cpus": 2, "pids_limit": 512,
                                                   "subids": "100000"}))
    assert (cfg.network, cfg.memory_limit, cfg.disk_limit, cfg.cpus, cfg.pids_limit, cfg.subids) == (
        "none", 2 << 30, 20 << 30, 2.0, 512, "100000")


def test_mirrors_table_and_file(tmp_path):
    (tmp_path / "thirdpartymirrors").write_text("samples http://a.example/ http://b.example/\n")
    cfg = load(write_config(tmp_path / "s.toml", {
        "master": "http://m", "mirrors_file": str(tmp_path / "thirdpartymirrors"),
        "mirrors": {"samples": ["http://c.example/"], "other": ["http://d.example"]}}))
    assert cfg.mirror_list().resolve("mirror://samples/x.tar.gz") == [
        "http://a.example/x.tar.gz", "http://b.example/x.tar.gz", "http://c.example/x.tar.gz"]


@pytest.mark.parametrize("values, error", [
    ({}, "master: the master's URL is required"),
    ({"master": "ftp://x"}, "is not an http"),
    ({"master": "http://m", "phase_timout": 5}, "unknown key 'phase_timout'"),
    ({"master": "http://m", "phase_timeout": "1h"}, "phase_timeout: must be a whole number"),
    ({"master": "http://m", "keep_failed_roots": 1}, "keep_failed_roots: must be true or false"),
    ({"master": "http://m", "flavours": []}, "flavours: must be a non-empty list"),
    ({"master": "http://m", "work_dir": "relative"}, "work_dir: must be an absolute path"),
    ({"master": "http://m", "min_free_disk": "lots"}, "is not a size"),
    ({"master": "http://m", "log_level": "chatty"}, "log_level"),
    ({"master": "http://m", "network": "bridge"}, "network: must be one of outbound, none, host"),
    ({"master": "http://m", "disk_limit": "1M"}, "disk_limit: must be at least"),
    ({"master": "http://m", "pids_limit": 3}, "pids_limit: must be at least 32"),
    ({"master": "http://m", "cpus": "all"}, "cpus: must be a number of CPUs"),
    ({"master": "http://m", "subids": "Not A User"}, "subids: must be a user name"),
    ({"master": "http://m", "trust": ["DEADBEEF"]}, "trust: 'DEADBEEF' is not a full OpenPGP fingerprint"),
    ({"master": "http://m", "trust": "alice"}, "trust: must be a list"),
    ({"master": "http://m", "binhost": "distfiles.gentoo.org/binpackages"}, "binhost: .* is not an http"),
])
@pytest.mark.bad_input('slave', 'the configuration {values!r}', 'ConfigError: {error}')
def test_bad_values_are_named(tmp_path, values, error):
    with pytest.raises(ConfigError, match=error):
        load(write_config(tmp_path / "s.toml", values))


@pytest.mark.bad_input('slave', 'a missing or malformed slave.toml', 'ConfigError naming the file')
def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("master = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path / "bad.toml")


def test_sizes():
    assert parse_size("10G") == 10 * 1024**3
    assert parse_size("512 MiB") == 512 * 1024**2
    assert parse_size(1234) == 1234


def test_token(tmp_path):
    cfg = load(write_config(tmp_path / "s.toml", {"master": "http://m", "token_file": str(tmp_path / "tok")}))
    with pytest.raises(ConfigError, match="run `autotua-slave register` first"):
        cfg.token()
    (tmp_path / "tok").write_text("s7_secret\n")
    assert cfg.token() == "s7_secret"
