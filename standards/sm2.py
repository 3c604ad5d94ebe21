"""SM2 signatures (GB/T 32918.2) with SM3 and the default signer ID of GM/T 0009, over GmSSL.

The arithmetic is GmSSL's (the C library, through the `gmssl_pyx` extension); nothing here
computes on the curve. docs/decisions/0006-national-cryptography.md says why this library and
not OpenSSL through `cryptography` (which has no SM2) or a pure-Python package (slow, and the
most used one draws the signing nonce from `random`).

What this module owns, so that every layer encodes SM2 keys and signatures one way:
- Signatures are `r || s`, 32 bytes each, big-endian (like JOSE's ECDSA, RFC 7518 §3.4), the
  form certificate tokens carry. GmSSL and OpenSSL speak DER; `cryptography`'s
  `encode_dss_signature` / `decode_dss_signature` convert.
- The signer ID is always `1234567812345678` (GM/T 0009 §10), the one `openssl pkeyutl -pkeyopt
  distid:1234567812345678` uses. OpenSSL 3's own default is the empty ID: a signature made without
  that option does not verify here, and ours does not verify there without it.
- Keys on disk are the PEM OpenSSL writes and reads (`openssl genpkey -algorithm SM2`): PKCS#8
  for the private key, SubjectPublicKeyInfo for the public one, curve OID 1.2.156.10197.1.301.
  `cryptography` refuses that curve, so the two DER shapes (fixed lengths for a 256-bit curve) are
  written and parsed here, strictly: anything but exactly these bytes around the key is refused.
- A loaded private key is checked against its stored public key by signing and verifying once,
  so a file whose halves disagree never signs.
- Signing hashes here and signs the digest: e = SM3(Z || data), Z = SM3(ENTL || ID || a || b ||
  xG || yG || xA || yA), the standard's fixed pre-hash of the signer's identity (GB/T 32918.2
  §5.5 and §6.1, curve parameters from GB/T 32918.5), computed once per key with `cryptography`'s
  SM3. GmSSL's message-level `sm2_sign` computes the same Z but derives the public key from the
  private one on every call, a second scalar multiplication: 2.4 ms against 0.23 ms for
  `sm2_sign_sm3_digest` (bench/cpu.py). Verification stays GmSSL's message-level `sm2_verify`,
  which computes Z on its own, so every signature made here is checked by the other path (the
  pairwise check at load, and tests/unit/test_sm2.py against OpenSSL's command line).
"""

from __future__ import annotations

import base64
import binascii

import gmssl_pyx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

DEFAULT_SIGNER_ID = b"1234567812345678"
SIGNATURE_LENGTH = 64
POINT_LENGTH = 64  # x || y; the SEC1 uncompressed form adds a leading 0x04
CURVE_OID = "1.2.156.10197.1.301"
# DER of AlgorithmIdentifier { id-ecPublicKey, sm2 } and the fixed frames around the key bytes.
_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALGORITHM + bytes.fromhex("03420004")
_PKCS8_PREFIX = bytes.fromhex("308187020100") + _ALGORITHM + bytes.fromhex("046d306b0201010420")
_PKCS8_MIDDLE = bytes.fromhex("a14403420004")  # [1] publicKey BIT STRING, uncompressed point
_PRIVATE_PEM = "PRIVATE KEY"
_PUBLIC_PEM = "PUBLIC KEY"
_ORDER_BYTES = 32
# The recommended curve's a, b and base point G (GB/T 32918.5), as they enter Z.
_CURVE_ABG = bytes.fromhex(
    "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
    "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
    "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
)


class SM2KeyError(ValueError):
    """Not an SM2 key in the one encoding we read and write."""


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n").encode()


def _unpem(label: str, pem: bytes) -> bytes:
    text = pem.decode("ascii", errors="strict").strip()
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    if not (text.startswith(begin) and text.endswith(end)):
        raise SM2KeyError(f"not a PEM {label}")
    try:
        return base64.b64decode("".join(text[len(begin) : -len(end)].split()), validate=True)
    except binascii.Error as e:
        raise SM2KeyError(f"PEM {label} is not base64") from e


def _sm3(*parts: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    for part in parts:
        digest.update(part)
    return digest.finalize()


def signer_digest(point: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
    """Z of GB/T 32918.2 §5.5 for the public key `point` (x || y) and `signer_id`."""
    entl = (len(signer_id) * 8).to_bytes(2, "big")
    return _sm3(entl, signer_id, _CURVE_ABG, point)


def _check_point(point: bytes) -> None:
    """GmSSL refuses a point that is not on the curve; a well-formed dummy signature asks it."""
    try:
        gmssl_pyx.sm2_verify(point, b"", encode_dss_signature(1, 1), signer_id=DEFAULT_SIGNER_ID)
    except gmssl_pyx.InvalidValueError as e:
        raise SM2KeyError("not a point of the SM2 curve") from e


class SM2PublicKey:
    __slots__ = ("_point",)

    def __init__(self, point: bytes) -> None:
        """`point` is x || y (64 bytes), as GmSSL holds it; checked to be on the curve."""
        if len(point) != POINT_LENGTH:
            raise SM2KeyError(f"an SM2 public key is {POINT_LENGTH} bytes, not {len(point)}")
        _check_point(point)
        self._point = bytes(point)

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        if len(der) != len(_SPKI_PREFIX) + POINT_LENGTH or not der.startswith(_SPKI_PREFIX):
            raise SM2KeyError("not a SubjectPublicKeyInfo of an SM2 key")
        return cls(der[len(_SPKI_PREFIX) :])

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PublicKey:
        return cls.from_der(_unpem(_PUBLIC_PEM, pem))

    @property
    def x(self) -> bytes:
        return self._point[:32]

    @property
    def y(self) -> bytes:
        return self._point[32:]

    def sec1(self) -> bytes:
        """The uncompressed point 0x04 || x || y."""
        return b"\x04" + self._point

    def der(self) -> bytes:
        return _SPKI_PREFIX + self._point

    def pem(self) -> bytes:
        return _pem(_PUBLIC_PEM, self.der())

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True only for a 64-byte r || s that GmSSL accepts for `data` under the default ID."""
        if len(signature) != SIGNATURE_LENGTH:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if r == 0 or s == 0:
            return False
        return bool(
            gmssl_pyx.sm2_verify(self._point, data, encode_dss_signature(r, s), signer_id=DEFAULT_SIGNER_ID)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)


class SM2PrivateKey:
    __slots__ = ("_private", "_public", "_z")

    def __init__(self, private: bytes, public: SM2PublicKey) -> None:
        if len(private) != _ORDER_BYTES:
            raise SM2KeyError("an SM2 private key is 32 bytes")
        self._private = bytes(private)
        self._public = public
        self._z = signer_digest(public._point)
        if not public.verify(self.sign(b"estate.sm2.pairwise-check"), b"estate.sm2.pairwise-check"):
            raise SM2KeyError("the private key does not match its public key")

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        point, private = gmssl_pyx.sm2_key_generate()
        return cls(private, SM2PublicKey(point))

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """PKCS#8 as `openssl genpkey -algorithm SM2` writes it (private key and public point)."""
        middle = len(_PKCS8_PREFIX) + _ORDER_BYTES
        if (
            len(der) != middle + len(_PKCS8_MIDDLE) + POINT_LENGTH
            or not der.startswith(_PKCS8_PREFIX)
            or der[middle : middle + len(_PKCS8_MIDDLE)] != _PKCS8_MIDDLE
        ):
            raise SM2KeyError("not a PKCS#8 SM2 private key with its public key")
        return cls(der[len(_PKCS8_PREFIX) : middle], SM2PublicKey(der[middle + len(_PKCS8_MIDDLE) :]))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PrivateKey:
        return cls.from_der(_unpem(_PRIVATE_PEM, pem))

    def public_key(self) -> SM2PublicKey:
        return self._public

    def der(self) -> bytes:
        return _PKCS8_PREFIX + self._private + _PKCS8_MIDDLE + self._public._point

    def pem(self) -> bytes:
        return _pem(_PRIVATE_PEM, self.der())

    def sign(self, data: bytes) -> bytes:
        """r || s over SM3(Z || data), Z from the default signer ID; a fresh GmSSL nonce each time."""
        der = gmssl_pyx.sm2_sign_sm3_digest(self._private, _sm3(self._z, data))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return "SM2PrivateKey(...)"
