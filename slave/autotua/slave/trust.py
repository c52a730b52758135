"""Whose code this slave runs: the volunteer's ``trust`` setting.

``trust`` in slave.toml lists fingerprints and OpenPGP keyring files (Gentoo's developer keyring,
``/usr/share/openpgp-keys/gentoo-developers.asc`` on Gentoo, for example: every primary key in a
file counts). Empty, the slave runs the jobs of every maintainer the master records. The set goes
with every claim (``"trust"``, upper-case, sorted) so that the master hands out only jobs whose every
jobuild is signed by one of them, and :func:`check` looks again at the claimed job before anything
of it is fetched or run: a master that ignores the setting gets its job back as an error.
"""

from __future__ import annotations

from autotua.signature import Keyring, normalise_fingerprint
from autotua.slave import SlaveError
from autotua.slave.config import Config, ConfigError


def load(cfg: Config) -> frozenset[str]:
    """The fingerprints ``cfg.trust`` names (directly, or as the primary keys of keyring files)."""
    out: set[str] = set()
    for entry in cfg.trust:
        if not entry.startswith("/"):
            out.add(normalise_fingerprint(entry))
            continue
        try:
            with open(entry, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError(f"{cfg.source}: trust: cannot read the keyring {entry}: {e.strerror}") from None
        with Keyring() as ring:
            held = ring.import_key(data)
        if not held:
            raise ConfigError(f"{cfg.source}: trust: {entry} holds no OpenPGP key")
        out.update(normalise_fingerprint(f) for f in held)
    return frozenset(out)


def claim_field(trusted: frozenset[str]) -> dict:
    """What a claim says of it: nothing when every recorded maintainer is trusted."""
    return {"trust": sorted(trusted)} if trusted else {}


def check(trusted: frozenset[str], maintainers: dict[str, str]) -> None:
    """Refuse a job signed by a maintainer this slave does not trust (``maintainers``: user ->
    fingerprint, as the claim has them)."""
    if not trusted:
        return
    for user, fpr in sorted(maintainers.items()):
        try:
            key = normalise_fingerprint(fpr)
        except ValueError:
            key = fpr
        if key not in trusted:
            raise SlaveError(f"this slave does not trust {user} (key {key}): the job's jobuilds are signed by "
                             "someone its trust setting leaves out, so none of it runs here", "trust")
