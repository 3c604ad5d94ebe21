"""The two cryptography profiles: which hash, keyed index, AEAD and signature each layer uses.

`international`: SHA-256, HMAC-SHA256, AES-256-GCM, Ed25519 (JOSE `EdDSA`).
`national` (国密): SM3 (GB/T 32905), HMAC-SM3, SM4-GCM (GB/T 32907, 128-bit key), SM2 with SM3
and the GM/T 0009 default signer ID (GB/T 32918.2; JOSE `SM2SM3`, see below).

One profile name (`ESTATE_CRYPTO_PROFILE`) chooses all four, so no layer mixes them by accident.
What was written under one profile stays readable under the other: a signature key says its own
algorithm (`SigningKey.algorithm`, the JWK's `alg`), so verifiers pick by key, never by the
current profile. The setting only chooses what is *made* from now on.

No registered JOSE algorithm exists for SM2 (RFC 7518 and the IANA JOSE registry have none); we
name ours `SM2SM3` and publish its keys as `{"kty": "EC", "crv": "SM2", "x", "y"}` (coordinates
base64url, 32 bytes each, as RFC 7518 §6.2.1 does for the NIST curves). A token header's `alg`
must equal its key's algorithm, so a key of one algorithm is never used with the other.

SM3 and SM4 come from `cryptography` (OpenSSL); SM2 from `standards.sm2` (GmSSL).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from standards.sm2 import SM2KeyError, SM2PrivateKey, SM2PublicKey

ProfileName = Literal["international", "national"]
INTERNATIONAL: ProfileName = "international"
NATIONAL: ProfileName = "national"
PROFILES: frozenset[str] = frozenset({INTERNATIONAL, NATIONAL})
SignatureAlgorithm = Literal["EdDSA", "SM2SM3"]
EDDSA: SignatureAlgorithm = "EdDSA"
SM2SM3: SignatureAlgorithm = "SM2SM3"
_GCM_TAG = 16


class AeadInvalid(Exception):
    """A ciphertext that was altered, or sealed with another key, nonce or associated data."""


# --- hashes and keyed indexes ----------------------------------------------------------------------


def hash_bytes(profile: ProfileName, data: bytes) -> bytes:
    """SHA-256 or SM3 of `data` (32 bytes either way)."""
    digest = hashes.Hash(_hash_algorithm(profile))
    digest.update(data)
    return digest.finalize()


def keyed_index(profile: ProfileName, key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 or HMAC-SM3 (RFC 2104 over the profile's hash)."""
    return hmac.new(key, data, "sha256" if _checked(profile) == INTERNATIONAL else _hmac_sm3).digest()


def _hmac_sm3(data: bytes = b"") -> Any:
    """A hashlib-like SM3 object for `hmac` (hashlib's OpenSSL may not offer SM3)."""
    return _SM3Hashlib(data)


class _SM3Hashlib:
    digest_size = 32
    block_size = 64
    name = "sm3"

    def __init__(self, data: bytes = b"") -> None:
        self._h = hashes.Hash(hashes.SM3())
        self._h.update(data)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def copy(self) -> _SM3Hashlib:
        clone = _SM3Hashlib.__new__(_SM3Hashlib)
        clone._h = self._h.copy()
        return clone

    def digest(self) -> bytes:
        return self._h.copy().finalize()

    def hexdigest(self) -> str:
        return self.digest().hex()


def _checked(profile: str) -> ProfileName:
    if profile not in PROFILES:
        raise ValueError(f"unknown cryptography profile {profile!r}: international or national")
    return profile  # type: ignore[return-value]


def _hash_algorithm(profile: str) -> hashes.HashAlgorithm:
    return hashes.SHA256() if _checked(profile) == INTERNATIONAL else hashes.SM3()


# --- AEAD ------------------------------------------------------------------------------------------


class Aead(Protocol):
    key_length: int

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes: ...
    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes: ...


class _AesGcm:
    key_length = 32

    def __init__(self, key: bytes) -> None:
        if len(key) != self.key_length:
            raise ValueError("AES-256-GCM takes a 32-byte key")
        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, associated_data)
        except InvalidTag as e:
            raise AeadInvalid("AES-GCM tag mismatch") from e


class _Sm4Gcm:
    """SM4-GCM as GB/T 36624 / RFC 8998 use it: 12-byte nonce, 16-byte tag appended, like AESGCM."""

    key_length = 16

    def __init__(self, key: bytes) -> None:
        if len(key) != self.key_length:
            raise ValueError("SM4-GCM takes a 16-byte key")
        self._key = bytes(key)

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        if len(nonce) != 12:
            raise ValueError("SM4-GCM nonces are 12 bytes here")
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated_data)
        sealed = encryptor.update(plaintext) + encryptor.finalize()
        return sealed + encryptor.tag

    def decrypt(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
        if len(nonce) != 12 or len(sealed) < _GCM_TAG:
            raise AeadInvalid("SM4-GCM ciphertext too short or nonce not 12 bytes")
        body, tag = sealed[:-_GCM_TAG], sealed[-_GCM_TAG:]
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(associated_data)
        try:
            return decryptor.update(body) + decryptor.finalize()
        except InvalidTag as e:
            raise AeadInvalid("SM4-GCM tag mismatch") from e


def aead(profile: ProfileName, key: bytes) -> Aead:
    """AES-256-GCM (32-byte key) or SM4-GCM (16-byte key)."""
    return _AesGcm(key) if _checked(profile) == INTERNATIONAL else _Sm4Gcm(key)


# --- signatures ------------------------------------------------------------------------------------


class VerifyingKey(Protocol):
    @property
    def algorithm(self) -> SignatureAlgorithm: ...

    def verify(self, signature: bytes, data: bytes) -> bool: ...
    def identity(self) -> bytes: ...
    def pem(self) -> bytes: ...
    def jwk(self) -> dict[str, str]: ...


class SigningKey(Protocol):
    @property
    def algorithm(self) -> SignatureAlgorithm: ...

    def sign(self, data: bytes) -> bytes: ...
    def public_key(self) -> VerifyingKey: ...
    def pem(self) -> bytes: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(value: object, length: int, what: str) -> bytes:
    text = str(value)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as e:
        raise ValueError(f"{what} is not base64url") from e
    if len(raw) != length or _b64url(raw) != text:
        raise ValueError(f"{what} is not {length} bytes of canonical base64url")
    return raw


@dataclass(frozen=True)
class Ed25519Verifying:
    key: Ed25519PublicKey
    algorithm: SignatureAlgorithm = EDDSA

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def identity(self) -> bytes:
        """The raw 32-byte key: what a kid is derived from."""
        return self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(self.identity()), "alg": EDDSA}


@dataclass(frozen=True)
class Ed25519Signing:
    key: Ed25519PrivateKey
    algorithm: SignatureAlgorithm = EDDSA

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def public_key(self) -> Ed25519Verifying:
        return Ed25519Verifying(self.key.public_key())

    def pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class SM2Verifying:
    key: SM2PublicKey
    algorithm: SignatureAlgorithm = SM2SM3

    def verify(self, signature: bytes, data: bytes) -> bool:
        return self.key.verify(signature, data)

    def identity(self) -> bytes:
        """The uncompressed point 04 || x || y: what a kid is derived from."""
        return self.key.sec1()

    def pem(self) -> bytes:
        return self.key.pem()

    def jwk(self) -> dict[str, str]:
        return {"kty": "EC", "crv": "SM2", "x": _b64url(self.key.x), "y": _b64url(self.key.y), "alg": SM2SM3}


@dataclass(frozen=True)
class SM2Signing:
    key: SM2PrivateKey
    algorithm: SignatureAlgorithm = SM2SM3

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def public_key(self) -> SM2Verifying:
        return SM2Verifying(self.key.public_key())

    def pem(self) -> bytes:
        return self.key.pem()


def signature_algorithm(profile: ProfileName) -> SignatureAlgorithm:
    return EDDSA if _checked(profile) == INTERNATIONAL else SM2SM3


def generate_signing_key(algorithm: SignatureAlgorithm) -> SigningKey:
    if algorithm == EDDSA:
        return Ed25519Signing(Ed25519PrivateKey.generate())
    if algorithm == SM2SM3:
        return SM2Signing(SM2PrivateKey.generate())
    raise ValueError(f"unknown signature algorithm {algorithm!r}")


def load_signing_key(pem: bytes) -> SigningKey:
    """An Ed25519 or SM2 PKCS#8 PEM private key; ValueError for anything else."""
    try:
        return SM2Signing(SM2PrivateKey.from_pem(pem))
    except SM2KeyError:
        pass
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError("not an unencrypted PEM private key of Ed25519 or SM2") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("neither an Ed25519 nor an SM2 key")
    return Ed25519Signing(key)


def load_verifying_key(pem: bytes) -> VerifyingKey:
    """An Ed25519 or SM2 SubjectPublicKeyInfo PEM; ValueError for anything else."""
    try:
        return SM2Verifying(SM2PublicKey.from_pem(pem))
    except SM2KeyError:
        pass
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise ValueError("not a PEM public key of Ed25519 or SM2") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("neither an Ed25519 nor an SM2 key")
    return Ed25519Verifying(key)


def verifying_key_from_jwk(entry: Mapping[str, Any]) -> VerifyingKey:
    """The key of an `OKP`/`Ed25519` (alg `EdDSA`) or `EC`/`SM2` (alg `SM2SM3`) JWK; ValueError else.

    `alg` may be absent (older JWK Sets of ours had it on every key, but RFC 7517 makes it optional);
    if present it must be the key type's one algorithm."""
    kty, crv, alg = entry.get("kty"), entry.get("crv"), entry.get("alg")
    if kty == "OKP" and crv == "Ed25519" and alg in (None, EDDSA):
        raw = _unb64url(entry.get("x"), 32, "'x'")
        return Ed25519Verifying(Ed25519PublicKey.from_public_bytes(raw))
    if kty == "EC" and crv == "SM2" and alg in (None, SM2SM3):
        point = _unb64url(entry.get("x"), 32, "'x'") + _unb64url(entry.get("y"), 32, "'y'")
        try:
            return SM2Verifying(SM2PublicKey(point))
        except SM2KeyError as e:
            raise ValueError(str(e)) from e
    raise ValueError("not an OKP Ed25519 (EdDSA) or EC SM2 (SM2SM3) signature key")
