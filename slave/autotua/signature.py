"""OpenPGP signatures with python-gnupg over the gpg binary, pinned to maintainers' fingerprints.

A signature counts only when it verifies against a key whose primary fingerprint is the one the
caller trusts for that maintainer. Keys come from the tree (``<user>/<user>.asc``) but are imported
into a throw-away keyring, never the user's own, and the fingerprint is checked after import: a tree
that swaps in another key gains nothing. Each failure is its own exception class and message.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

import gnupg

from autotua import AutotuaError
from autotua.cache import DigestCache


class SignatureError(AutotuaError):
    """Base: a file whose signature does not make it trustworthy. ``kind`` names the fault."""

    kind = "signature"


class MissingSignature(SignatureError):
    kind = "missing-signature"


class BadSignature(SignatureError):
    kind = "bad-signature"


class WrongKey(SignatureError):
    kind = "wrong-key"


class ExpiredKey(SignatureError):
    kind = "expired-key"


class RevokedKey(SignatureError):
    kind = "revoked-key"


class UnknownMaintainer(SignatureError):
    kind = "unknown-maintainer"


class UntrustedKey(SignatureError):
    kind = "untrusted-key"


class GpgMissing(AutotuaError):
    """The gpg binary is not installed."""


_ERRORS = {c.kind: c for c in (MissingSignature, BadSignature, WrongKey, ExpiredKey, RevokedKey,
                                UnknownMaintainer, UntrustedKey)}


def normalise_fingerprint(fpr: str) -> str:
    """Upper-case hex without spaces; raises ValueError for anything that is not a v4/v5 fingerprint."""
    out = "".join(fpr.split()).upper()
    if out.startswith("0X"):
        out = out[2:]
    if len(out) not in (40, 64) or any(c not in "0123456789ABCDEF" for c in out):
        raise ValueError(f"{fpr!r} is not a full OpenPGP fingerprint (40 hex digits)")
    return out


@dataclass(frozen=True)
class Signed:
    """A verified signature: who made it and until when the key is valid (0: no expiry)."""

    fingerprint: str
    key_expires: int = 0


def _require_gpg() -> None:
    if not shutil.which("gpg"):
        raise GpgMissing("gpg is not installed (Debian: apt-get install gnupg; Gentoo: emerge app-crypt/gnupg)")


class Keyring:
    """A throw-away GnuPG home: created empty, removed on close."""

    def __init__(self):
        _require_gpg()
        self.home = tempfile.mkdtemp(prefix="autotua-gpg-")
        self.gpg = gnupg.GPG(gnupghome=self.home, options=["--no-autostart", "--trust-model", "always"])

    def import_key(self, key_data: bytes) -> dict[str, int]:
        """Import keys; returns primary fingerprint -> expiry (0 for none) of what is now held."""
        self.gpg.import_keys(key_data)
        return {k["fingerprint"]: int(k["expires"] or 0) for k in self.gpg.list_keys()}

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Keyring:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Verifier:
    """Verifies maintainers' files against the fingerprints the caller trusts.

    ``trusted`` maps maintainer -> fingerprint. Results are cached (optionally in a shared
    :class:`DigestCache`) by the digests of data, signature and key, so a warm validation runs no gpg
    at all; a cached good signature is still refused once its key has expired.
    """

    def __init__(self, trusted: Mapping[str, str], cache: DigestCache | None = None):
        self.trusted = {u: normalise_fingerprint(f) for u, f in trusted.items()}
        self.cache = cache or DigestCache()
        self._keyrings: dict[tuple[str, str], tuple[Keyring, dict[str, int]]] = {}

    def close(self) -> None:
        for ring, _ in self._keyrings.values():
            ring.close()
        self._keyrings.clear()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------------------
    def verify_detached(self, user: str, key_data: bytes | None, data: bytes, sig: bytes | None,
                        label: str) -> Signed:
        """Check ``sig`` (a detached ``.asc``) over ``data`` for maintainer ``user``."""
        if sig is None:
            raise MissingSignature(f"{label}: no signature ({label}.asc is missing)")
        return self._verify("detached", user, key_data, data, sig, label)[0]

    def verify_clearsigned(self, user: str, key_data: bytes | None, text: bytes, label: str) -> bytes:
        """Check a clearsigned file and return the body gpg vouches for (never our own parse)."""
        if b"-----BEGIN PGP SIGNED MESSAGE-----" not in text:
            raise MissingSignature(f"{label}: not clearsigned")
        return self._verify("clear", user, key_data, text, b"", label)[1]

    # -- the work ----------------------------------------------------------------------------------
    def _verify(self, mode: str, user: str, key_data: bytes | None, data: bytes, sig: bytes,
                label: str) -> tuple[Signed, bytes]:
        fpr = self.trusted.get(user)
        if fpr is None:
            raise UnknownMaintainer(f"{label}: no key fingerprint is recorded for maintainer {user!r}")
        if key_data is None:
            raise UntrustedKey(f"{label}: the tree has no key {user}/{user}.asc for maintainer {user!r}")
        cache_key = "|".join((mode, fpr, _sha(key_data), _sha(data), _sha(sig)))
        hit = self.cache.get("signature", cache_key)
        if hit is None:
            hit = self._run_gpg(mode, user, fpr, key_data, data, sig, label)
            self.cache.put("signature", cache_key, hit)
        if "error" in hit:
            raise _ERRORS[hit["error"]](hit["message"])
        if hit["expires"] and hit["expires"] < time.time():
            raise ExpiredKey(f"{label}: signed by {user}'s key {fpr}, which expired "
                             f"{time.strftime('%Y-%m-%d', time.gmtime(hit['expires']))}")
        return Signed(fpr, hit["expires"]), hit.get("body", "").encode("latin-1")

    def _keyring(self, user: str, key_data: bytes, label: str) -> tuple[Keyring, dict[str, int]]:
        k = (user, _sha(key_data))
        if k not in self._keyrings:
            ring = Keyring()
            self._keyrings[k] = (ring, ring.import_key(key_data))
        return self._keyrings[k]

    def _run_gpg(self, mode: str, user: str, fpr: str, key_data: bytes, data: bytes, sig: bytes,
                 label: str) -> dict:
        def error(cls, message: str) -> dict:
            return {"error": cls.kind, "message": f"{label}: {message}"}

        ring, held = self._keyring(user, key_data, label)
        if fpr not in held:
            found = ", ".join(sorted(held)) or "no usable key"
            return error(UntrustedKey, f"{user}/{user}.asc holds {found}, but the trusted key for {user!r} is {fpr}")
        if mode == "clear":
            result = ring.gpg.decrypt(data)
            body = bytes(result.data)
        else:
            with tempfile.NamedTemporaryFile(prefix="autotua-sig-") as sigfile:
                sigfile.write(sig)
                sigfile.flush()
                result = ring.gpg.verify_data(sigfile.name, data)
            body = b""
        fault = _judge(result, {fpr}, f"{user}'s key {fpr}")
        if fault:
            return error(*fault)
        # Clearsigned bodies are text; latin-1 round-trips any bytes through JSON.
        return {"expires": held[fpr], "body": body.decode("latin-1")}


def _judge(result, accepted: set[str], whose: str) -> tuple[type[SignatureError], str] | None:
    """Why gpg's ``result`` is not a good signature by one of the ``accepted`` primary keys, or None."""
    status = result.status or ""
    signer = result.pubkey_fingerprint
    if status == "no public key":
        return WrongKey, f"signed by key {result.key_id}, not by {whose}"
    if status == "signature bad":
        return BadSignature, "BAD signature: the file was changed after it was signed"
    if status != "signature valid" or not signer:
        return BadSignature, f"no valid signature ({status or 'gpg could not read it'})"
    if signer not in accepted:
        return WrongKey, f"signed by key {signer}, not by {whose}"
    if result.key_status == "signing key was revoked":
        return RevokedKey, f"signed by {whose}, which is revoked"
    if result.key_status == "signing key has expired":
        return ExpiredKey, f"signed by {whose}, which has expired"
    if result.key_status:
        return BadSignature, f"signature by {signer} not accepted: {result.key_status}"
    return None


class KeyFileVerifier:
    """Verifies files signed by any primary key of one key file: a distribution's release keys.

    Gentoo ships its release keys as ``/usr/share/openpgp-keys/gentoo-release.asc``; the file is
    the trust anchor (it comes from the system's package manager), so every key in it is accepted,
    and nothing else. Big files are verified as a stream, never read into memory.
    """

    def __init__(self, key_data: bytes, source: str = "the release key file"):
        self.source = source
        self.ring = Keyring()
        self.held = self.ring.import_key(key_data)
        if not self.held:
            self.ring.close()
            raise UntrustedKey(f"{source} holds no usable OpenPGP key")

    def close(self) -> None:
        self.ring.close()

    def __enter__(self) -> KeyFileVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, result, label: str) -> str:
        fault = _judge(result, set(self.held), f"a key of {self.source}")
        if fault:
            cls, message = fault
            raise cls(f"{label}: {message}")
        expires = self.held[result.pubkey_fingerprint]
        if expires and expires < time.time():
            raise ExpiredKey(f"{label}: signed by {result.pubkey_fingerprint}, which expired "
                             f"{time.strftime('%Y-%m-%d', time.gmtime(expires))}")
        return result.pubkey_fingerprint

    def verify_file(self, path: str | os.PathLike, sig: bytes | None, label: str) -> Signed:
        """Check a detached signature over the file at ``path``, read as a stream by gpg."""
        if not sig:
            raise MissingSignature(f"{label}: no signature ({label}.asc is missing)")
        # gpg reads the data file itself: nothing of it passes through Python
        result = self.ring.gpg.verify_file(io.BytesIO(sig), os.fspath(path))
        fpr = self._check(result, label)
        return Signed(fpr, self.held[fpr])

    def verify_clearsigned(self, text: bytes, label: str) -> bytes:
        """Check a clearsigned file and return the body gpg vouches for."""
        if b"-----BEGIN PGP SIGNED MESSAGE-----" not in text:
            raise MissingSignature(f"{label}: not clearsigned")
        result = self.ring.gpg.decrypt(text)
        self._check(result, label)
        return bytes(result.data)


class Signer:
    """Signs with the maintainer's own GnuPG home (``$GNUPGHOME`` or ``~/.gnupg``)."""

    def __init__(self, local_user: str | None = None, gnupghome: str | None = None):
        _require_gpg()
        self.gpg = gnupg.GPG(gnupghome=gnupghome or os.environ.get("GNUPGHOME"))
        self.local_user = local_user

    def _sign(self, data: bytes, **kw) -> bytes:
        result = self.gpg.sign(data, keyid=self.local_user, **kw)
        if not result.data:
            who = self.local_user or "the default key"
            raise SignatureError(f"gpg could not sign with {who}: {result.status or result.stderr.strip()}")
        return bytes(result.data)

    def detached(self, data: bytes) -> bytes:
        return self._sign(data, detach=True)

    def clearsign(self, data: bytes) -> bytes:
        return self._sign(data, clearsign=True)

    def export_public(self, fingerprint: str) -> bytes:
        out = self.gpg.export_keys(fingerprint)
        if not out:
            raise SignatureError(f"no public key {fingerprint} in the keyring")
        return out.encode() if isinstance(out, str) else out
