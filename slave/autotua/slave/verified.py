"""Files from Gentoo's mirrors that are kept only once their signatures and digests verify.

The stage3s (``releases/<arch>/autobuilds/``) and the repository snapshots (``snapshots/``) are
fetched the same way, so this is their one copy of it: the key file loaded into a throw-away
keyring (a missing, empty or wrong file says how to get the right one); small files (pointers,
DIGESTS, signatures) fetched with a size cap; a big file downloaded with resume and progress
(:func:`autotua.fetch.fetch`), checked against its digests while it arrives and against its
detached signature once it is complete, and deleted when either fails; a ``.verified`` stamp
written beside it, under the entry's lock, only when both passed. So a file at its final name
with its stamp has always been verified, and a refused one leaves nothing but, at most, a
``.part`` to resume.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests

from autotua.fetch import FetchError, fetch
from autotua.manifest import DigestMismatch
from autotua.signature import KeyFileVerifier, KeyWords, SignatureError, Signed, normalise_fingerprint
from autotua.slave import SlaveError

log = logging.getLogger("autotua.slave.verified")
SMALL_LIMIT = 1 << 20  # pointers, DIGESTS, md5sums and signatures are a few KiB


def gentoo_key_words(name: str, config_key: str) -> KeyWords:
    """How a refusal names one of Gentoo's keys, and where a volunteer gets it anew."""
    return KeyWords(name, f"on Gentoo: emerge --oneshot sec-keys/openpgp-keys-gentoo-release; elsewhere: download "
                          f"the current gentoo-release.asc from https://www.gentoo.org/downloads/signatures/ "
                          f"and set {config_key} to it")


class SignedSource:
    """One kind of signed file on a mirror: its key file, the step its errors name, and a session.

    ``only`` restricts the key file to these primary fingerprints (Gentoo's gentoo-release.asc
    holds the release engineering key and the snapshot key; each kind is signed by its own).
    """

    def __init__(self, key_file: str | os.PathLike, *, step: str, name: str, config_key: str,
                 only: Iterable[str] = (), session: requests.Session | None = None):
        self.key_file = os.fspath(key_file)
        self.step = step
        self.config_key = config_key
        self.words = gentoo_key_words(name, config_key)
        self.only = frozenset(normalise_fingerprint(f) for f in only if f)
        self.session = session or requests.Session()

    def error(self, msg: str) -> SlaveError:
        return SlaveError(msg, self.step)

    def verifier(self) -> KeyFileVerifier:
        try:
            with open(self.key_file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise self.error(f"no {self.config_key.replace('_', ' ')}: {self.key_file} does not exist "
                             f"({self.words.update})") from None
        try:
            return KeyFileVerifier(data, self.key_file, only=self.only, words=self.words)
        except SignatureError as e:
            raise self.error(f"{e} ({self.words.update})") from None

    def small(self, url: str, what: str = "a pointer, digest or signature file") -> bytes:
        """A small file's bytes; more than :data:`SMALL_LIMIT` is refused (it is not what it claims)."""
        try:
            with self.session.get(url, stream=True, timeout=60) as r:
                r.raise_for_status()
                data = b""
                for chunk in r.iter_content(1 << 16):
                    data += chunk
                    if len(data) > SMALL_LIMIT:
                        raise self.error(f"{url}: larger than {SMALL_LIMIT} bytes; not {what}")
                return data
        except requests.RequestException as e:
            raise self.error(f"cannot fetch {url}: {e}") from None

    def clearsigned(self, verifier: KeyFileVerifier, text: bytes, label: str) -> str:
        """The body gpg vouches for, decoded."""
        try:
            return verifier.verify_clearsigned(text, label).decode("utf-8", errors="replace")
        except SignatureError as e:
            raise self.error(str(e)) from None

    def fetch_verified(self, urls: list[str], dest: Path, verifier: KeyFileVerifier, *, signature_suffix: str,
                       size: int | None = None, hashes: Mapping[str, str] | None = None, max_size: int | None = None,
                       digests_label: str = "the signed digests", check=None) -> Signed:
        """Download ``dest`` from the first of ``urls`` that works (resuming a ``.part``), check it
        against ``size``/``hashes`` while it arrives, then ``check(dest)`` (raises SlaveError: a
        digest of another kind) and its detached signature (``<url><signature_suffix>``, from the
        URL it came from). Deletes it on any failure; returns the verified signature."""
        label = dest.name
        try:
            fetch(urls, dest, size=size, hashes=hashes, session=self.session, max_size=max_size)
        except DigestMismatch as e:
            raise self.error(f"{digests_label} does not match {label} ({e}); the download was deleted") from None
        except FetchError as e:
            raise self.error(str(e)) from None
        try:
            if check is not None:
                check(dest)
            sig = None
            errors = []
            for url in urls:
                try:
                    sig = self.small(url + signature_suffix, "a signature")
                    break
                except SlaveError as e:
                    errors.append(str(e).removeprefix(f"{self.step}: "))
            if sig is None:
                raise self.error("; ".join(errors) or f"no URL for {label}{signature_suffix}")
            try:
                return verifier.verify_file(dest, sig, label)
            except SignatureError as e:
                raise self.error(str(e)) from None
        except SlaveError as e:
            dest.unlink(missing_ok=True)  # a file whose signature does not verify is not kept
            raise SlaveError(f"{e}; the download was deleted") from None


def stamp_path(dest: Path) -> Path:
    return Path(f"{dest}.verified")


def is_verified(dest: Path, size: int | None = None) -> bool:
    """Whether ``dest`` was kept after its checks (and still has the size they found)."""
    stamp = stamp_path(dest)
    if not (stamp.exists() and dest.exists()):
        return False
    return size is None or dest.stat().st_size == size


def write_stamp(dest: Path, facts: dict) -> None:
    stamp_path(dest).write_text(json.dumps(facts, sort_keys=True) + "\n")


def read_stamp(dest: Path) -> dict:
    try:
        return json.loads(stamp_path(dest).read_text())
    except (OSError, ValueError):
        return {}
