"""The volunteer's ``trust`` setting: fingerprints and keyring files, what a claim says of it, and
the slave's own check of a claimed job (the refusal end to end is in tests/slave/test_e2e.py)."""

from __future__ import annotations

import pytest

from autotua.demo.slaves import write_config
from autotua.signature import Signer
from autotua.slave import SlaveError
from autotua.slave.claim import claim_payload
from autotua.slave.config import ConfigError, load
from autotua.slave.trust import check, claim_field
from autotua.slave.trust import load as load_trust


def _cfg(tmp_path, trust):
    return load(write_config(tmp_path / "s.toml", {"master": "http://m", "work_dir": str(tmp_path / "w"),
                                                   "trust": trust}))


def test_fingerprints_and_a_keyring_file(tmp_path, gnupghome, keys):
    ring = tmp_path / "developers.asc"
    ring.write_bytes(Signer(keys["alice"], str(gnupghome)).export_public(keys["alice"]) +
                     Signer(keys["carol"], str(gnupghome)).export_public(keys["carol"]))
    bob = " ".join(keys["bob"][i:i + 4] for i in range(0, 40, 4)).lower()  # as people write them
    trusted = load_trust(_cfg(tmp_path, [bob, str(ring)]))
    assert trusted == {keys["alice"], keys["bob"], keys["carol"]}
    assert claim_field(trusted) == {"trust": sorted(trusted)}
    assert "trust" not in claim_payload(_cfg(tmp_path, []), "r-1")  # no setting, no "trust" at all
    assert claim_payload(_cfg(tmp_path, [bob]), "r-1", frozenset({keys["bob"]}))["trust"] == [keys["bob"]]


@pytest.mark.bad_input("slave", "a trust keyring file that is missing or holds no key", "ConfigError naming it")
def test_a_bad_keyring_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"trust: cannot read the keyring /nonexistent.asc"):
        load_trust(_cfg(tmp_path, ["/nonexistent.asc"]))
    (tmp_path / "empty.asc").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"empty.asc holds no OpenPGP key"):
        load_trust(_cfg(tmp_path, [str(tmp_path / "empty.asc")]))


def test_a_job_of_someone_untrusted_is_refused(keys):
    trusted = frozenset({keys["alice"]})
    check(trusted, {"alice": keys["alice"]})
    check(frozenset(), {"mallory": keys["mallory"]})  # no setting: every maintainer the master records
    with pytest.raises(SlaveError, match=rf"trust: this slave does not trust bob \(key {keys['bob']}\)"):
        check(trusted, {"alice": keys["alice"], "bob": keys["bob"]})
