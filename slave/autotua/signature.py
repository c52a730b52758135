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
import re
import shutil
import subprocess
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
class KeyInfo:
    """One key or subkey of a keyring, as gpg lists it: enough to say why a signature by it fails."""

    fingerprint: str
    primary: str  # the primary key's fingerprint (the key's own, for a primary key)
    expires: int = 0  # 0: never
    revoked: bool = False

    @property
    def is_subkey(self) -> bool:
        return self.fingerprint != self.primary


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@dataclass(frozen=True)
class Signed:
    """A verified signature: who made it, until when the key is valid (0: no expiry), and when the
    signature was made (0: not known)."""

    fingerprint: str
    key_expires: int = 0
    created: int = 0


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
        self._keys = None
        return {k["fingerprint"]: int(k["expires"] or 0) for k in self.gpg.list_keys()}

    def keys(self) -> dict[str, KeyInfo]:
        """Every key and subkey held, by fingerprint and by long key id (what gpg's status lines name)."""
        if getattr(self, "_keys", None) is None:
            out: dict[str, KeyInfo] = {}
            for k in self.gpg.list_keys():
                primary = k["fingerprint"]
                infos = [(k["keyid"], KeyInfo(primary, primary, int(k["expires"] or 0), k.get("trust") == "r"))]
                for keyid, sub in (k.get("subkey_info") or {}).items():
                    infos.append((keyid, KeyInfo(sub.get("fingerprint") or keyid, primary,
                                                 int(sub.get("expires") or 0), sub.get("trust") == "r")))
                for keyid, info in infos:
                    out[keyid] = out[info.fingerprint] = info
            self._keys = out
        return self._keys

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
            raise ExpiredKey(f"{label}: signed by {user}'s key {fpr}, which expired {_day(hit['expires'])}: "
                             f"{user} must extend it and publish {user}/{user}.asc again")
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
        fault = _judge(result, ring.keys(), {fpr}, f"{user}'s key {fpr}", _MaintainerKeyWords(user))
        if fault:
            return error(*fault)
        # Clearsigned bodies are text; latin-1 round-trips any bytes through JSON.
        return {"expires": _expiry(ring.keys(), result), "body": body.decode("latin-1")}


class KeyWords:
    """How a refusal names a key and says what to do about it: the release key file's words."""

    def __init__(self, name: str = "the release key", update: str = "replace the key file with its current version"):
        self.name = name
        self.update = update

    def expired(self, key: KeyInfo, when: int) -> str:
        sub = f" (its signing subkey {key.fingerprint})" if key.is_subkey else ""
        return f"{self.name} {key.primary} expired on {_day(when)}{sub}: update it ({self.update})"

    def revoked(self, key: KeyInfo) -> str:
        sub = f" (its signing subkey {key.fingerprint})" if key.is_subkey else ""
        return (f"{self.name} {key.primary} is revoked{sub}: what it signed is not trusted; update the key file "
                f"({self.update})")


class _MaintainerKeyWords(KeyWords):
    def __init__(self, user: str):
        super().__init__(f"{user}'s key", f"{user} must publish {user}/{user}.asc again with a valid key")


def _expiry(keys: dict[str, KeyInfo], result) -> int:
    """When the key that made ``result``'s signature stops being valid: the earlier of its primary key's
    and its signing subkey's expiry (0: never)."""
    key = keys.get(result.fingerprint or "") or keys.get(result.key_id or "")
    dates = [k.expires for k in (key, keys.get(key.primary) if key else None) if k and k.expires]
    return min(dates, default=0)


def _judge(result, keys: dict[str, KeyInfo], accepted: set[str], whose: str,
           words: KeyWords) -> tuple[type[SignatureError], str] | None:
    """Why gpg's ``result`` is not a good signature by one of the ``accepted`` primary keys, or None.

    A signature that is good but made by an expired or revoked key (or subkey: Gentoo signs with
    subkeys, and a key file that is not updated holds an expired one) is said to be that, with the
    date and what to do, never "bad signature": gpg reports it as EXPKEYSIG/REVKEYSIG, then (for a
    clearsigned file) lets KEYEXPIRED overwrite the status.
    """
    status = result.status or ""
    if status == "signature bad":
        return BadSignature, "BAD signature: the file was changed after it was signed"
    if result.key_status in ("signing key has expired", "signing key was revoked"):
        key = keys.get(result.fingerprint or "") or keys.get(result.key_id or "")
        if key is None or key.primary not in accepted:
            return WrongKey, f"signed by key {result.key_id}, not by {whose}"
        primary = keys.get(key.primary, key)
        if result.key_status == "signing key was revoked" or key.revoked or primary.revoked:
            return RevokedKey, words.revoked(primary if primary.revoked and not key.revoked else key)
        now = time.time()
        lapsed = [(k.expires, k) for k in (key, primary) if k.expires and k.expires < now]
        when, which = min(lapsed, key=lambda t: t[0]) if lapsed else (key.expires or primary.expires, key)
        return ExpiredKey, words.expired(which, when)
    signer = result.pubkey_fingerprint
    if status == "no public key":
        return WrongKey, f"signed by key {result.key_id}, not by {whose}"
    if status != "signature valid" or not signer:
        return BadSignature, f"no valid signature ({status or 'gpg could not read it'})"
    if signer not in accepted:
        return WrongKey, f"signed by key {signer}, not by {whose}"
    if result.key_status:
        return BadSignature, f"signature by {signer} not accepted: {result.key_status}"
    return None


class KeyFileVerifier:
    """Verifies files signed by a primary key of one key file: a distribution's release keys.

    Gentoo ships its release keys as ``/usr/share/openpgp-keys/gentoo-release.asc``; the file is
    the trust anchor (it comes from the system's package manager), so every key in it is accepted
    (or, with ``only``, those of these fingerprints: the snapshot key alone for a repository
    snapshot), and nothing else. Big files are verified as a stream, never read into memory.
    ``words`` names the key in refusals (an expired key says when, and how to update it).
    """

    def __init__(self, key_data: bytes, source: str = "the release key file", *,
                 only: set[str] | frozenset[str] = frozenset(), words: KeyWords | None = None):
        self.source = source
        self.words = words or KeyWords()
        self.only = frozenset(only)
        self.ring = Keyring()
        self.held = self.ring.import_key(key_data)
        if not self.held:
            self.ring.close()
            raise UntrustedKey(f"{source} holds no usable OpenPGP key")
        if only:
            self.held = {f: e for f, e in self.held.items() if f in only}
            if not self.held:
                self.ring.close()
                raise UntrustedKey(f"{source} does not hold the key {', '.join(sorted(only))}")

    def close(self) -> None:
        self.ring.close()

    def __enter__(self) -> KeyFileVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, result, label: str) -> str:
        whose = f"{self.words.name} {', '.join(sorted(self.only))}" if self.only else f"a key of {self.source}"
        fault = _judge(result, self.ring.keys(), set(self.held), whose, self.words)
        if fault:
            cls, message = fault
            raise cls(f"{label}: {message}")
        return result.pubkey_fingerprint

    def verify_file(self, path: str | os.PathLike, sig: bytes | None, label: str) -> Signed:
        """Check a detached signature over the file at ``path``, read as a stream by gpg."""
        if not sig:
            raise MissingSignature(f"{label}: no signature ({label}.asc is missing)")
        # gpg reads the data file itself: nothing of it passes through Python
        result = self.ring.gpg.verify_file(io.BytesIO(sig), os.fspath(path))
        fpr = self._check(result, label)
        created = int(result.sig_timestamp) if str(result.sig_timestamp or "").isdigit() else 0
        return Signed(fpr, _expiry(self.ring.keys(), result), created)

    def verify_clearsigned(self, text: bytes, label: str) -> bytes:
        """Check a clearsigned file and return the body gpg vouches for."""
        if b"-----BEGIN PGP SIGNED MESSAGE-----" not in text:
            raise MissingSignature(f"{label}: not clearsigned")
        result = self.ring.gpg.decrypt(text)
        self._check(result, label)
        return bytes(result.data)


def signature_created(sig: bytes) -> int:
    """When a detached signature says it was made (epoch seconds), read with ``gpg --list-packets``:
    nothing is verified (no key is needed), so use it only where a wrong answer is harmless (the
    master dating ``gentoo-latest``; the slave verifies what it fetches). ValueError if unreadable."""
    _require_gpg()
    home = tempfile.mkdtemp(prefix="autotua-gpg-")
    try:
        proc = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-autostart", "--list-packets"], input=sig,
                              capture_output=True, timeout=30)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    text = proc.stdout.decode("utf-8", errors="replace")
    if ":signature packet:" not in text:
        raise ValueError("not an OpenPGP signature")
    m = re.search(r"\bcreated (\d+)", text.split(":signature packet:", 1)[1])
    if not m:
        raise ValueError("the signature has no creation time")
    return int(m[1])


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
