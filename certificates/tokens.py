"""The signed token format of no-housing certificates: compact JWS, EdDSA or SM2SM3, short claims.

Modelled on the EU Digital COVID Certificate: the QR carries a payload signed by one of our
certificate keys, named by `kid` in the protected header, so anyone holding the published JWK Set
can verify it offline (`certificates.offline`).

Invariants
- Three kinds of token exist and the kind is part of what is signed (the protected header's
  `typ`, RFC 8725 §3.11 explicit typing): `nhc` certificate, `nhp` presentation (亮证), `crl`
  revocation list. A verifier for one kind rejects the others (`wrong_kind`), so a presentation
  token can never be replayed as a certificate or a revocation list, nor the other way round.
- Tokens are canonical: base64url without padding, nothing but `[A-Za-z0-9_-]` and two dots.
  PyJWT also re-encodes every segment and compares, so changing any character of a token either
  changes the signed bytes or fails to decode: a given certificate has exactly one token string.
- The algorithm is the key's: the header's `alg` must be the algorithm of the key its `kid`
  names (`EdDSA` for Ed25519, `SM2SM3` for SM2 with SM3 and the GM/T 0009 signer ID;
  standards/crypto_profile.py), so a token can never be checked with another algorithm than
  the one its key was made for. Both signatures are 64 bytes (SM2 as r || s).
- Verification never looks at time. We serialise the compact JWS ourselves, byte for byte as
  PyJWT's `PyJWS.encode` does (sorted header keys, no spaces; a test compares), because PyJWT
  knows no SM2; nothing here compares claims with a clock. The caller decides `expired` with its
  own injected clock, so an expired certificate still reads as ours.

What it does not cover: a stolen signing key (rotate, and drop the key from the JWK Set), and a
certificate that was valid but has been revoked (the caller checks the revocation list).

Serialisation: UTF-8 JSON with the fewest bytes (no spaces, non-ASCII as UTF-8, not `\\uXXXX`),
times as integer epoch seconds (UTC), sub-second precision dropped.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from standards.crypto_profile import EDDSA, SM2SM3, SigningKey, VerifyingKey

ALGORITHM = EDDSA  # the international profile's; see ALGORITHMS
ALGORITHMS: frozenset[str] = frozenset({EDDSA, SM2SM3})
Kind = Literal["nhc", "nhp", "crl"]
CERTIFICATE: Kind = "nhc"
PRESENTATION: Kind = "nhp"
REVOCATIONS: Kind = "crl"
KINDS: frozenset[str] = frozenset({CERTIFICATE, PRESENTATION, REVOCATIONS})
MAX_TOKEN_LENGTH = 2048  # certificates and presentations: a QR at error correction M holds ~2.3 KB
MAX_REVOCATIONS_LENGTH = 64 * 1024 * 1024  # a file, not a QR: about 3 million serials
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class TokenInvalid(Exception):
    """Not a token signed by one of our keys, or not of the kind asked for.

    `reason` is one of `malformed`, `unknown_key`, `bad_signature`, `wrong_kind`."""

    REASONS = frozenset({"malformed", "unknown_key", "bad_signature", "wrong_kind"})

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in self.REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class CertificateClaims:
    """What a no-housing certificate asserts. `holder` is the masked name (e.g. "张*")."""

    serial: str
    cert_type: str
    purpose: str
    holder: str
    issued_at: datetime
    valid_until: datetime
    as_of: datetime


@dataclass(frozen=True)
class PresentationClaims:
    """亮证: a fresh short-lived token the phone shows, so a screenshot goes stale."""

    serial: str
    issued_at: datetime
    expires_at: datetime
    nonce: str


@dataclass(frozen=True)
class RevocationList:
    """Revoked serials as of `issued_at`, signed by the key `kid`."""

    issued_at: datetime
    serials: frozenset[str]
    kid: str


# --- claims <-> JSON ------------------------------------------------------------------------------


def _epoch(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: certificate times must be timezone-aware")
    return int(value.timestamp() // 1)


def _time(value: Any) -> datetime:
    if type(value) is not int:
        raise TokenInvalid("malformed", "time claim is not an integer")
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TokenInvalid("malformed", "text claim is not a string")
    return value


def certificate_payload(c: CertificateClaims) -> dict[str, Any]:
    return {
        "s": c.serial,
        "ct": c.cert_type,
        "p": c.purpose,
        "h": c.holder,
        "iat": _epoch(c.issued_at),
        "exp": _epoch(c.valid_until),
        "aof": _epoch(c.as_of),
    }


def certificate_claims(p: Mapping[str, Any]) -> CertificateClaims:
    return CertificateClaims(
        serial=_text(p.get("s")),
        cert_type=_text(p.get("ct")),
        purpose=_text(p.get("p")),
        holder=_text(p.get("h")),
        issued_at=_time(p.get("iat")),
        valid_until=_time(p.get("exp")),
        as_of=_time(p.get("aof")),
    )


def presentation_payload(c: PresentationClaims) -> dict[str, Any]:
    return {"s": c.serial, "iat": _epoch(c.issued_at), "exp": _epoch(c.expires_at), "n": c.nonce}


def presentation_claims(p: Mapping[str, Any]) -> PresentationClaims:
    return PresentationClaims(
        serial=_text(p.get("s")),
        issued_at=_time(p.get("iat")),
        expires_at=_time(p.get("exp")),
        nonce=_text(p.get("n")),
    )


def revocations_payload(serials: frozenset[str], issued_at: datetime) -> dict[str, Any]:
    return {"iat": _epoch(issued_at), "r": sorted(serials)}


def revocation_list(p: Mapping[str, Any], kid: str) -> RevocationList:
    serials = p.get("r")
    if not isinstance(serials, list):
        raise TokenInvalid("malformed", "revocations are not a list")
    return RevocationList(
        issued_at=_time(p.get("iat")), serials=frozenset(_text(s) for s in serials), kid=kid
    )


# --- JWS ------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(kind: Kind, payload: Mapping[str, Any], key: SigningKey, kid: str) -> str:
    header = {"alg": key.algorithm, "kid": kid, "typ": kind}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode()) + "." + _b64url(body)
    )
    token = signing_input + "." + _b64url(key.sign(signing_input.encode("ascii")))
    if kind != REVOCATIONS and len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"token of {len(token)} characters does not fit a QR code")
    return token


def _segment(segment: str) -> bytes:
    """Strict base64url: no padding, and the canonical encoding of what it decodes to."""
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii"):
        raise TokenInvalid("malformed", "non-canonical base64url")
    return raw


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_segment(segment))
    except ValueError as e:  # binascii.Error, UnicodeDecodeError and JSONDecodeError included
        raise TokenInvalid("malformed", f"{what} is not base64url JSON") from e
    if not isinstance(value, dict):
        raise TokenInvalid("malformed", f"{what} is not an object")
    return value


def verify(
    token: str, public_key: Callable[[str], VerifyingKey | None], max_length: int = MAX_TOKEN_LENGTH
) -> tuple[Kind, dict[str, Any], str]:
    """Check shape, header, key and signature; returns (kind, payload, kid). Never looks at time.

    Parsing is ours, the signature check is the key's (cryptography for Ed25519, GmSSL for SM2).
    For EdDSA, `PyJWS.decode_complete` would do the same checks, but decodes each segment through a
    per-character Python loop and, to pick the key by `kid`, the header twice: a third of the
    CPU of a verification, which the offline target (5,000 a second on one core) cannot spare.
    Our rules are stricter than PyJWS's: one alphabet checked by a regex, no padding, canonical
    segments, and a header of exactly `alg`, `kid` and `typ` (so no `crit`, no `b64`, no `jwk`).
    tests/unit/test_certificate_tokens.py checks that PyJWS accepts what we accept.
    """
    if not isinstance(token, str) or len(token) > max_length or not _TOKEN_SHAPE.fullmatch(token):
        raise TokenInvalid("malformed", "not a compact JWS")
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _json_object(header_segment, "header")
    kid, kind = header.get("kid"), header.get("typ")
    alg = header.get("alg")
    if header.keys() != {"alg", "kid", "typ"} or alg not in ALGORITHMS or not isinstance(kid, str):
        raise TokenInvalid("malformed", "unexpected protected header")
    if kind not in KINDS:
        raise TokenInvalid("malformed", f"not one of our token types: {kind!r}")
    key = public_key(kid)
    if key is None:
        raise TokenInvalid("unknown_key", f"no key {kid!r}")
    if key.algorithm != alg:
        raise TokenInvalid("malformed", f"key {kid!r} is {key.algorithm}, the header says {alg}")
    signing_input = token[: len(header_segment) + 1 + len(payload_segment)].encode("ascii")
    try:
        signature = _segment(signature_segment)
    except ValueError as e:
        raise TokenInvalid("malformed", "signature is not base64url") from e
    if not key.verify(signature, signing_input):
        raise TokenInvalid("bad_signature")
    return kind, _json_object(payload_segment, "payload"), kid


def expect_kind(kind: Kind, wanted: Kind) -> None:
    if kind != wanted:
        raise TokenInvalid("wrong_kind", f"a {kind} token where a {wanted} token was expected")
