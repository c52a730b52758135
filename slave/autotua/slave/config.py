"""The slave's TOML configuration (default ``/etc/autotua/slave.toml``), read with :mod:`tomllib`.

Every key has a default (docs/slave.md lists them); an unknown key or a value of the wrong type is
an error naming the file and the key, so a typo never silently means "the default".
"""

from __future__ import annotations

import os
import platform
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from autotua import AutotuaError
from autotua.signature import normalise_fingerprint
from autotua.srcuri import Mirrors

DEFAULT_PATH = "/etc/autotua/slave.toml"
GENTOO_RELEASE_KEY = "/usr/share/openpgp-keys/gentoo-release.asc"
#: Gentoo's snapshot signing key ("Gentoo ebuild repository signing key"), one of gentoo-release.asc's
GENTOO_SNAPSHOT_KEY = "DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D"

# uname -m -> Gentoo's keyword (the autobuilds directory name)
_ARCHES = {"x86_64": "amd64", "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "aarch64": "arm64",
           "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64", "ppc64": "ppc64", "riscv64": "riscv",
           "s390x": "s390", "loongarch64": "loong", "sparc64": "sparc", "alpha": "alpha", "m68k": "m68k"}
_SIZE_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
_FLAVOUR_RE = re.compile(r"\A[a-z0-9][a-z0-9_+-]*\Z")
NETWORK_MODES = ("outbound", "none", "host")


class ConfigError(AutotuaError):
    """The configuration file is missing, malformed, or has a bad value."""


def host_arch() -> str:
    machine = platform.machine()
    return _ARCHES.get(machine, machine)


def default_memory_limit() -> int:
    """Three quarters of the machine's memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4
    except (ValueError, OSError):
        return 8 * 1024**3


def parse_size(value: int | str) -> int:
    """Bytes from ``10737418240``, ``"10G"``, ``"512 MiB"``..."""
    if isinstance(value, int):
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (a number of bytes, or e.g. '10G', '512M')")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


@dataclass
class Config:
    master: str = ""
    token_file: str = "/etc/autotua/slave.token"
    name: str = field(default_factory=socket.gethostname)
    arch: str = field(default_factory=host_arch)
    flavours: list[str] = field(default_factory=lambda: ["openrc"])
    work_dir: str = "/var/tmp/autotua-slave"
    cache_dir: str = "/var/cache/autotua-slave"
    distfiles_dir: str = ""
    stage3_mirror: str = "https://distfiles.gentoo.org"
    release_key: str = GENTOO_RELEASE_KEY
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    mirrors_file: str = ""
    repository: str = "snapshot"
    snapshot_mirror: str = ""
    snapshot_key: str = GENTOO_RELEASE_KEY
    snapshot_key_fingerprint: str = GENTOO_SNAPSHOT_KEY
    keep_snapshots: int = 3
    binhost: str = ""  # opt-in: a signed binhost for dependencies (docs/slave.md, "Portage in the job")
    min_free_disk: int = 10 * 1024**3
    # the job container (docs/slave.md, "The job container")
    network: str = "outbound"
    subids: str = "autotua"
    idmapped_mounts: bool = True
    memory_limit: int = field(default_factory=lambda: default_memory_limit())
    pids_limit: int = 4096
    cpus: float = 0.0
    disk_limit: int = 8 * 1024**3
    trust: list[str] = field(default_factory=list)
    phase_timeout: int = 3600
    keep_failed_roots: bool = False
    max_poll_interval: int = 300
    retry_for: int = 600
    log_level: str = "info"
    syslog: bool = False
    source: str = ""  # the file it came from

    # -- derived paths --------------------------------------------------------------------------
    @property
    def distdir(self) -> Path:
        return Path(self.distfiles_dir or os.path.join(self.cache_dir, "distfiles"))

    @property
    def jobs_dir(self) -> Path:
        return Path(self.work_dir) / "jobs"

    @property
    def tmp_dir(self) -> Path:
        """The daemon's temporary files (throw-away keyrings, signatures being checked): below the work
        directory, so the next start removes what a crashed run left there."""
        return Path(self.work_dir) / "tmp"

    def mirror_list(self) -> Mirrors:
        """``mirror://`` names: the ``mirrors_file`` (thirdpartymirrors format), then ``[mirrors]``."""
        mapping: dict[str, list[str]] = {}
        if self.mirrors_file:
            for name, urls in Mirrors.load(self.mirrors_file).mapping.items():
                mapping.setdefault(name, []).extend(urls)
        for name, urls in self.mirrors.items():
            mapping.setdefault(name, []).extend(urls)
        return Mirrors(mapping)

    def token(self) -> str:
        try:
            with open(self.token_file) as f:
                token = f.read().strip()
        except FileNotFoundError:
            raise ConfigError(f"no token in {self.token_file}: run `autotua-slave register` first, or ask the "
                              "master's staff for one (autotua-master createslave)") from None
        if not token:
            raise ConfigError(f"{self.token_file} is empty")
        return token


_TYPES = {f.name: f.type for f in fields(Config)}


def _check(cfg: Config, where: str, need_master: bool = True) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {why}")

    if not cfg.master and need_master:
        raise bad("master", "the master's URL is required (e.g. master = \"https://autotua.example.org/\")")
    if cfg.master and not re.match(r"\Ahttps?://[^/\s]+", cfg.master):
        raise bad("master", f"{cfg.master!r} is not an http(s) URL")
    if not cfg.flavours or not all(isinstance(f, str) and _FLAVOUR_RE.match(f) for f in cfg.flavours):
        raise bad("flavours", "must be a non-empty list of stage3 flavours, e.g. [\"openrc\", \"systemd\"]")
    for key in ("work_dir", "cache_dir"):
        if not os.path.isabs(getattr(cfg, key)):
            raise bad(key, "must be an absolute path")
    if cfg.repository not in ("snapshot", "") and not os.path.isabs(cfg.repository):
        raise bad("repository", f"{cfg.repository!r}: \"snapshot\" (the job's pinned Gentoo snapshot), the absolute "
                                "path of the host's repository (e.g. \"/var/db/repos/gentoo\"), or \"\" for none")
    if cfg.snapshot_mirror and not re.match(r"\Ahttps?://[^/\s]+", cfg.snapshot_mirror):
        raise bad("snapshot_mirror", f"{cfg.snapshot_mirror!r} is not an http(s) URL")
    if cfg.snapshot_key_fingerprint:
        try:
            normalise_fingerprint(cfg.snapshot_key_fingerprint)
        except ValueError as e:
            raise bad("snapshot_key_fingerprint", f"{e}; \"\" accepts any key of snapshot_key") from None
    if cfg.binhost and not re.match(r"\Ahttps?://[^/\s]+\S*\Z", cfg.binhost):
        raise bad("binhost", f"{cfg.binhost!r} is not an http(s) URL (e.g. Gentoo's \"https://distfiles.gentoo"
                             ".org/releases/amd64/binpackages/23.0/x86-64\"), or \"\" for none")
    for key in ("phase_timeout", "max_poll_interval", "retry_for", "keep_snapshots"):
        if getattr(cfg, key) <= 0:
            raise bad(key, "must be a positive number" + (" of seconds" if key != "keep_snapshots" else ""))
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise bad("log_level", "must be one of debug, info, warning, error")
    for name, urls in cfg.mirrors.items():
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise bad(f"mirrors.{name}", "must be a list of base URLs")
    if cfg.network not in NETWORK_MODES:
        raise bad("network", f"must be one of {', '.join(NETWORK_MODES)} (outbound: the internet through a "
                             "user-mode stack; none: loopback only; host: the host's network)")
    if not (cfg.subids.isdigit() or re.match(r"\A[a-z_][a-z0-9_-]*\$?\Z", cfg.subids)):
        raise bad("subids", "must be a user name (its /etc/subuid and /etc/subgid entries) or a first host id")
    for key, least in (("memory_limit", 64 << 20), ("disk_limit", 64 << 20), ("pids_limit", 32)):
        if getattr(cfg, key) < least:
            raise bad(key, f"must be at least {least}")
    if cfg.cpus < 0:
        raise bad("cpus", "must be 0 (no quota) or a positive number of CPUs")
    for entry in cfg.trust:
        if not isinstance(entry, str) or not entry:
            raise bad("trust", "must be a list of fingerprints and keyring files")
        if not entry.startswith("/"):
            try:
                normalise_fingerprint(entry)
            except ValueError as e:
                raise bad("trust", f"{e}, nor an absolute path to an OpenPGP keyring file") from None


def load(path: str | os.PathLike | None = None, *, need_master: bool = True, **overrides) -> Config:
    """Read the file (``path``, else $AUTOTUA_SLAVE_CONFIG, else the default) and check it
    (``need_master=False``: a local run, ``autotua-jobuild run``, which talks to no master)."""
    path = str(path or os.environ.get("AUTOTUA_SLAVE_CONFIG") or DEFAULT_PATH)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (see docs/slave.md)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    data.update(overrides)
    return from_dict(data, path, need_master=need_master)


def from_dict(data: dict, source: str = "<config>", *, need_master: bool = True) -> Config:
    kwargs = {}
    for key, value in data.items():
        if key not in _TYPES or key == "source":
            raise ConfigError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(set(_TYPES) - {'source'}))})")
        want = _TYPES[key]
        try:
            if key in ("min_free_disk", "memory_limit", "disk_limit"):
                value = parse_size(value)
            elif key == "cpus" and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError("must be a number of CPUs")
            elif want == "bool" and not isinstance(value, bool):
                raise ValueError("must be true or false")
            elif want == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("must be a whole number")
            elif want == "str" and not isinstance(value, str):
                raise ValueError("must be a string")
            elif want.startswith("list") and not isinstance(value, list):
                raise ValueError("must be a list")
            elif want.startswith("dict") and not isinstance(value, dict):
                raise ValueError("must be a table")
        except ValueError as e:
            raise ConfigError(f"{source}: {key}: {e}") from None
        kwargs[key] = float(value) if key == "cpus" else value
    cfg = Config(**kwargs, source=source)
    _check(cfg, source, need_master)
    return cfg
