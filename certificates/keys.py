"""Certificate signing keys: one current key signs, retired keys still verify.

These keys sign no-housing certificates only; the access-token key is a different key in a
different place, so a leak of one does not let anyone forge the other.

A key is Ed25519 (JOSE `EdDSA`, the `international` cryptography profile) or SM2 with SM3
(`SM2SM3`, the `national` profile; standards/crypto_profile.py). The profile chooses the
algorithm of the keys `ensure` and `rotate` *make*; every key verifies with its own algorithm, so
a directory or JWK Set may hold both, and a rotation from one profile to the other keeps what the
old key signed verifiable.

Key directory (one file per key, named by kid):
- `<kid>.key.pem`: the current private key, PKCS#8 PEM, mode 0600. Exactly one.
- `<kid>.pub.pem`: a retired key, public only (SubjectPublicKeyInfo PEM). Any number.
The directory is 0700. `load` refuses an empty directory, a private key file other users can
read or anyone but the owner can write (0640 is accepted for mounted secrets; 0644 is not), an
unreadable file, a file whose name is not its kid, more than one private key, and (when asked
for an algorithm) a current key of the other algorithm.

Invariants
- Rotation never invalidates what an older key signed: the old key stays as `<kid>.pub.pem`,
  and verification accepts every key in the directory (or in the published JWK Set).
- A retired key can no longer sign: its private half is deleted once its public half is on disk.
  Rotation writes the retired public key first, then the new private key, then deletes the old
  private key. A crash in between leaves two private keys, which `load` refuses, naming both
  files: nothing is lost, an operator deletes the older one (its `.pub.pem` is already there).
  Rotation takes no lock: run it from one place (a deploy step), not from every worker.

`kid` = base64url (no padding) of the first 8 bytes of SHA-256 of the raw public key (Ed25519:
the 32 key bytes; SM2: the uncompressed point 04 || x || y), as the DCC derives its kid from the
signer certificate. The kid is a name, not a security function, so it is SHA-256 under both
profiles and a key keeps its kid across a profile change.
To withdraw a compromised key, delete its file (and it leaves the JWK Set with it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from certificates import tokens
from certificates.tokens import CertificateClaims, PresentationClaims, RevocationList
from standards.crypto_profile import (
    EDDSA,
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    generate_signing_key,
    load_signing_key,
    load_verifying_key,
    verifying_key_from_jwk,
)

PRIVATE_SUFFIX = ".key.pem"
PUBLIC_SUFFIX = ".pub.pem"
_FORBIDDEN_PRIVATE_BITS = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP


class KeyringError(Exception):
    """The key directory or JWK Set cannot be used as it is; the message says what to fix."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def kid_of(public_key: VerifyingKey) -> str:
    return _b64url(hashlib.sha256(public_key.identity()).digest()[:8])


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask, and ignored if it existed
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _write_public(path: Path, key: VerifyingKey) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(key.pem())
    tmp.chmod(0o644)
    tmp.replace(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyringError(f"cannot read certificate key {path}: {e.strerror}") from e


def _load_private(path: Path) -> SigningKey:
    mode = path.stat().st_mode
    if mode & _FORBIDDEN_PRIVATE_BITS:
        raise KeyringError(
            f"certificate signing key {path} has mode {stat.S_IMODE(mode):04o}: other users can read "
            f"or change it. Run `chmod 600 {path}` (0640 is accepted for a group-mounted secret)."
        )
    try:
        return load_signing_key(_read(path))
    except ValueError as e:
        raise KeyringError(f"{path} is not a PEM private key of Ed25519 or SM2: {e}") from e


def _load_public(path: Path) -> VerifyingKey:
    try:
        return load_verifying_key(_read(path))
    except ValueError as e:
        raise KeyringError(f"{path} is not a PEM public key of Ed25519 or SM2: {e}") from e


def _named(path: Path, suffix: str, key: VerifyingKey) -> str:
    kid = kid_of(key)
    if path.name != kid + suffix:
        raise KeyringError(f"{path} holds key {kid!r}; its file must be named {kid}{suffix}")
    return kid


class CertificateKeyring:
    """The keys that sign and verify certificates. Build it with `load`, `ensure` or `from_jwks`."""

    def __init__(self, verifying: Mapping[str, VerifyingKey], signing: tuple[str, SigningKey] | None) -> None:
        self._verifying = dict(verifying)
        self._signing = signing
        self._published_current: str | None = None
        if signing is not None:
            self._verifying[signing[0]] = signing[1].public_key()
        if not self._verifying:
            raise KeyringError("a certificate keyring needs at least one key")

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, algorithm: SignatureAlgorithm | None = None) -> CertificateKeyring:
        """Read the directory; with `algorithm`, refuse a current key of another algorithm."""
        directory = Path(directory)
        if not directory.is_dir():
            raise KeyringError(f"certificate key directory {directory} does not exist")
        private = sorted(directory.glob("*" + PRIVATE_SUFFIX))
        public = sorted(directory.glob("*" + PUBLIC_SUFFIX))
        if not private:
            what = "only retired keys" if public else "no keys"
            raise KeyringError(
                f"certificate key directory {directory} has {what}: no current signing key "
                f"(*{PRIVATE_SUFFIX}). Create one with CertificateKeyring.rotate or ensure."
            )
        if len(private) > 1:
            names = ", ".join(p.name for p in private)
            raise KeyringError(
                f"certificate key directory {directory} has {len(private)} current signing keys "
                f"({names}); exactly one may sign. An interrupted rotation leaves two: delete the "
                f"older one once its {PUBLIC_SUFFIX} file is there."
            )
        verifying = {}
        for path in public:
            key = _load_public(path)
            verifying[_named(path, PUBLIC_SUFFIX, key)] = key
        signing_key = _load_private(private[0])
        kid = _named(private[0], PRIVATE_SUFFIX, signing_key.public_key())
        if algorithm is not None and signing_key.algorithm != algorithm:
            raise KeyringError(
                f"the current certificate key {private[0].name} is {signing_key.algorithm}, but the "
                f"cryptography profile signs with {algorithm}: run `python -m api certificate-keys "
                f"rotate` (the old key keeps verifying what it signed)"
            )
        return cls(verifying, (kid, signing_key))

    @classmethod
    def ensure(cls, directory: Path, algorithm: SignatureAlgorithm = EDDSA) -> CertificateKeyring:
        """Load the directory, making it (0700) and a key of `algorithm` (0600) if it has none.

        If the current key is of the other algorithm (the install's profile changed), rotate to a
        key of `algorithm`: the old one stays as a verifying key. Only for an install's own key
        directory; production keys are `load`ed and rotated by an operator."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not any(directory.glob("*.pem")):
            directory.chmod(0o700)
            cls.rotate(directory, algorithm)
        keyring = cls.load(directory)
        if keyring.signing_algorithm != algorithm:
            cls.rotate(directory, algorithm)
            keyring = cls.load(directory, algorithm)
        return keyring

    @classmethod
    def rotate(cls, directory: Path, algorithm: SignatureAlgorithm = EDDSA) -> str:
        """Make a new key of `algorithm` current, keep the previous one public only; returns its kid."""
        directory = Path(directory)
        current = sorted(directory.glob("*" + PRIVATE_SUFFIX))
        if len(current) > 1:
            cls.load(directory)  # raises, naming the files
        new_key = generate_signing_key(algorithm)
        new_kid = kid_of(new_key.public_key())
        for path in current:
            old = _load_private(path).public_key()
            _write_public(directory / (kid_of(old) + PUBLIC_SUFFIX), old)
        _write_private(directory / (new_kid + PRIVATE_SUFFIX), new_key.pem())
        for path in current:
            path.unlink()
        return new_kid

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> CertificateKeyring:
        """A verify-only keyring from a published JWK Set (what offline verifiers hold)."""
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list) or not entries:
            raise KeyringError("a JWK Set needs a non-empty list under 'keys'")
        verifying = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise KeyringError("every certificate key must be a JWK object")
            if entry.get("use", "sig") != "sig":
                raise KeyringError(f"key {entry.get('kid')!r} is not a signature key")
            try:
                key = verifying_key_from_jwk(entry)
            except ValueError as e:
                raise KeyringError(f"key {entry.get('kid')!r}: {e}") from e
            kid = kid_of(key)
            if entry.get("kid") != kid:
                raise KeyringError(f"key {entry.get('kid')!r}: its kid must be {kid!r} (SHA-256 of the key)")
            verifying[kid] = key
        keyring = cls(verifying, None)
        current = [e["kid"] for e in entries if e.get("status") == "current"]
        keyring._published_current = current[0] if len(current) == 1 else None
        return keyring

    # --- signing ---------------------------------------------------------------------------------

    @property
    def signing_kid(self) -> str:
        return self._signer()[0]

    @property
    def can_sign(self) -> bool:
        return self._signing is not None

    @property
    def signing_algorithm(self) -> SignatureAlgorithm:
        return self._signer()[1].algorithm

    def _signer(self) -> tuple[str, SigningKey]:
        if self._signing is None:
            raise KeyringError("this keyring was built from a published JWK Set: it can verify, not sign")
        return self._signing

    def sign_certificate(self, claims: CertificateClaims) -> str:
        kid, key = self._signer()
        return tokens.sign(tokens.CERTIFICATE, tokens.certificate_payload(claims), key, kid)

    def sign_presentation(self, claims: PresentationClaims) -> str:
        kid, key = self._signer()
        return tokens.sign(tokens.PRESENTATION, tokens.presentation_payload(claims), key, kid)

    def sign_revocations(self, serials: Iterable[str], issued_at: datetime) -> str:
        kid, key = self._signer()
        payload = tokens.revocations_payload(frozenset(serials), issued_at)
        return tokens.sign(tokens.REVOCATIONS, payload, key, kid)

    # --- verification (never looks at time: the caller decides `expired`) -----------------------

    def verify_certificate(self, token: str) -> CertificateClaims:
        kind, payload, _ = tokens.verify(token, self._verifying.get)
        tokens.expect_kind(kind, tokens.CERTIFICATE)
        return tokens.certificate_claims(payload)

    def verify_presentation(self, token: str) -> PresentationClaims:
        kind, payload, _ = tokens.verify(token, self._verifying.get)
        tokens.expect_kind(kind, tokens.PRESENTATION)
        return tokens.presentation_claims(payload)

    def verify_any(self, token: str) -> CertificateClaims | PresentationClaims:
        """A certificate or a presentation token (what a scanned QR may hold); never a list."""
        kind, payload, _ = tokens.verify(token, self._verifying.get)
        if kind == tokens.CERTIFICATE:
            return tokens.certificate_claims(payload)
        tokens.expect_kind(kind, tokens.PRESENTATION)
        return tokens.presentation_claims(payload)

    def verify_revocations(self, token: str) -> RevocationList:
        kind, payload, kid = tokens.verify(token, self._verifying.get, tokens.MAX_REVOCATIONS_LENGTH)
        tokens.expect_kind(kind, tokens.REVOCATIONS)
        return tokens.revocation_list(payload, kid)

    # --- publication -----------------------------------------------------------------------------

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._verifying)

    def jwks(self) -> dict[str, Any]:
        """RFC 7517 JWK Set of every key that verifies, the current one first."""
        current = self._signing[0] if self._signing else self._published_current
        order = sorted(self._verifying, key=lambda kid: (kid != current, kid))
        return {
            "keys": [
                {
                    **self._verifying[kid].jwk(),
                    "kid": kid,
                    "use": "sig",
                    "status": "current" if kid == current else "retired",
                }
                for kid in order
            ]
        }
