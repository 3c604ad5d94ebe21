"""Access tokens: short-lived EdDSA (Ed25519) JWTs with a `kid`, verified strictly.

The private key comes from a PEM file: in production the one configured; in the embedded profile,
unless one is configured, a random key made for this install on first start and kept under
`key_dir` with owner-only permissions (services/identity/install_keys.py). No key is ever derived from a
value written in the source: anyone could then sign an admin token for every install. Previous
public keys stay accepted during a rotation, and all are published at /.well-known/jwks.json.

A token's lifetime (`exp - iat`) may not exceed the configured one: a token minted with a long
life by a leaked key or a bug would otherwise outlive every revocation horizon.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.clock import Clock
from services.errors import TokenInvalid
from services.identity import install_keys as install_keys

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "jti"]
LEEWAY_S = 5
_VERIFIED_CACHE_SIZE = 20_000


def _kid(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the verified access token says."""

    subject: str  # "person:42", "staff:7", "client:icbc-sh-app"
    role: str  # citizen | clerk | admin | bank | organisation
    token_id: str
    expires_at: int
    person_id: int | None = None
    office_code: str | None = None
    organisation_id: int | None = None  # banks and organisations (their staff and clients)
    bank_code: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    session_id: str | None = None  # the refresh-token family a sign-in started; None for banks


class TokenSigner:
    def __init__(
        self,
        *,
        private_key: Ed25519PrivateKey,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Clock,
        previous_public_keys: list[Ed25519PublicKey] | None = None,
    ) -> None:
        self._private_key = private_key
        self._issuer = issuer
        self._audience = audience
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock
        public = private_key.public_key()
        self.kid = _kid(public)
        self._public_keys: dict[str, Ed25519PublicKey] = {self.kid: public}
        self._verified: dict[str, tuple[Principal, int]] = {}
        for key in previous_public_keys or []:
            self._public_keys[_kid(key)] = key

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock) -> TokenSigner:
        if settings.jwt_private_key_file:
            key_file = Path(settings.jwt_private_key_file)
        else:
            # Production refuses to start without a configured key (config/settings.py).
            key_file = install_keys.ensure_private_key(
                Path(settings.key_dir) / install_keys.JWT_KEY_FILE,
                lambda: Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        loaded = serialization.load_pem_private_key(key_file.read_bytes(), None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"the JWT private key in {key_file} must be an Ed25519 key")
        private_key = loaded
        previous = []
        for path in settings.jwt_previous_public_key_files:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
            if isinstance(key, Ed25519PublicKey):
                previous.append(key)
        return cls(
            private_key=private_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
            clock=clock,
            previous_public_keys=previous,
        )

    @property
    def ttl_s(self) -> int:
        return int(self._ttl.total_seconds())

    def issue(self, *, subject: str, role: str, claims: dict[str, Any] | None = None) -> tuple[str, int]:
        now = self._clock.now()
        exp = int((now + self._ttl).timestamp())
        payload = {
            **(claims or {}),
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "role": role,
            "iat": int(now.timestamp()),
            "exp": exp,
            "jti": secrets.token_urlsafe(12),
        }
        token = jwt.encode(payload, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, exp

    def verify(self, token: str) -> Principal:
        """Check signature, audience, issuer and times. A token seen before skips the signature
        and parsing (the expensive part) but never the time checks."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, iat = cached
            self._check_times(exp=principal.expires_at, iat=iat)
            return principal
        principal, iat = self._verify_uncached(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first
        self._verified[token] = (principal, iat)
        return principal

    def _check_times(self, *, exp: int, iat: int) -> None:
        if exp - iat > self.ttl_s + LEEWAY_S:
            raise TokenInvalid(reason="lifetime")
        now = int(self._clock.now().timestamp())
        if exp <= now - LEEWAY_S:
            raise TokenInvalid(reason="expired")
        if iat > now + LEEWAY_S:
            raise TokenInvalid(reason="not_yet_valid")

    def _verify_uncached(self, token: str) -> tuple[Principal, int]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(reason="malformed") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid(reason="algorithm")
        key = self._public_keys.get(str(header.get("kid")))
        if key is None:
            raise TokenInvalid(reason="unknown_kid")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # Time claims are checked below against the injected clock, not the wall clock.
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(reason="invalid") from exc
        if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int):
            raise TokenInvalid(reason="invalid")
        self._check_times(exp=claims["exp"], iat=claims["iat"])
        principal = Principal(
            subject=claims["sub"],
            role=claims.get("role", ""),
            token_id=claims["jti"],
            expires_at=claims["exp"],
            person_id=claims.get("pid"),
            office_code=claims.get("office"),
            organisation_id=claims.get("org"),
            bank_code=claims.get("bank"),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            session_id=claims.get("sid"),
        )
        return principal, claims["iat"]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._public_keys.items():
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            keys.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url(raw),
                    "kid": kid,
                    "alg": ALGORITHM,
                    "use": "sig",
                }
            )
        return {"keys": keys}
