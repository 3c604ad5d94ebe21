"""Access tokens: short-lived JWTs with a `kid`, signed EdDSA (Ed25519) or SM2SM3, verified strictly.

The cryptography profile (`ESTATE_CRYPTO_PROFILE`, standards/crypto_profile.py) chooses the
algorithm of the key that signs: `international` Ed25519 (JOSE `EdDSA`), `national` SM2 with SM3
(`SM2SM3`, our name; no JOSE algorithm is registered for SM2). PyJWT knows no SM2, so both
algorithms are registered on a PyJWS instance of this signer's own (`access_token_jws`, under a
PyJWT of its own that checks the claims), backed by the profile module's keys; PyJWT's global
functions are left as they are, so nothing else in the process accepts `SM2SM3`, and this
instance accepts nothing but the two (no `none`, no HS256).

Invariant: the header's `alg` must equal the algorithm of the key its `kid` names, and the key
is handed to PyJWS for that algorithm only (which checks it again), so a token is never checked
with another algorithm than the one its key was made for (no algorithm confusion, RFC 8725 §2.1).
Keys of either algorithm may verify: after a profile switch the old key, listed as a previous
public key, keeps verifying what it signed until those tokens expire.

The private key comes from a PEM file: in production the one configured, which must be of the
profile's algorithm (a configured key of the other one is refused at start, in any profile); in
the embedded profile, unless one is configured, a random key made for this install on first
start and kept under `key_dir` with owner-only permissions (services/identity/install_keys.py
`jwt_keys`, which also retires the key of the other algorithm when the profile changed). No key
is ever derived from a value written in the source: anyone could then sign an admin token for
every install. Previous public keys stay accepted during a rotation, and all are published at
/.well-known/jwks.json, each with its `alg`.

A token's lifetime (`exp - iat`) may not exceed the configured one: a token minted with a long
life by a leaked key or a bug would otherwise outlive every revocation horizon.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import Algorithm

from config.settings import ConfigurationError
from services.clock import Clock
from services.errors import TokenInvalid
from services.identity import install_keys as install_keys
from standards.crypto_profile import (
    EDDSA,
    SM2SM3,
    Ed25519Signing,
    Ed25519Verifying,
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    load_signing_key,
    load_verifying_key,
    signature_algorithm,
    verifying_key_from_jwk,
)

ALGORITHMS: frozenset[str] = frozenset({EDDSA, SM2SM3})
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "jti"]
LEEWAY_S = 5
_VERIFIED_CACHE_SIZE = 20_000


class _ProfileKeyAlgorithm(Algorithm):
    """One JOSE algorithm (`EdDSA` or `SM2SM3`) over standards.crypto_profile's keys: signs with a
    SigningKey and verifies with a VerifyingKey of that algorithm only."""

    def __init__(self, name: SignatureAlgorithm) -> None:
        self.name = name

    def prepare_key(self, key: Any) -> Any:
        usable = hasattr(key, "sign") or hasattr(key, "verify")
        if getattr(key, "algorithm", None) != self.name or not usable:
            raise jwt.InvalidKeyError(f"not a {self.name} key of standards.crypto_profile")
        return key

    def sign(self, msg: bytes, key: Any) -> bytes:
        if _public(key):
            raise jwt.InvalidKeyError("a public key cannot sign")
        signature: bytes = key.sign(msg)
        return signature

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        public = key if _public(key) else key.public_key()
        return bool(public.verify(sig, msg))

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        public = key_obj if _public(key_obj) else key_obj.public_key()
        entry = public.jwk()
        return entry if as_dict else json.dumps(entry)

    @staticmethod
    def from_jwk(jwk: str | dict[str, Any]) -> VerifyingKey:
        return verifying_key_from_jwk(json.loads(jwk) if isinstance(jwk, str) else jwk)


def _public(key: Any) -> bool:
    return hasattr(key, "verify") and not hasattr(key, "sign")


def access_token_jws() -> jwt.PyJWS:
    """A PyJWS that knows `EdDSA` and `SM2SM3` over our keys, and no other algorithm."""
    jws = jwt.PyJWS(algorithms=[])
    for name in (EDDSA, SM2SM3):
        jws.register_algorithm(name, _ProfileKeyAlgorithm(name))
    return jws


def _access_token_jwt() -> jwt.PyJWT:
    """PyJWT's claims handling (encoding, required claims, audience, issuer, `sub` and `jti`
    types) over `access_token_jws()`. PyJWT takes no JWS as an argument; it holds one as `_jws`,
    which is how its own module-level object is wired to the global PyJWS (jwt/api_jwt.py)."""
    token_jwt = jwt.PyJWT()
    token_jwt._jws = access_token_jws()
    return token_jwt


def kid_of(public_key: VerifyingKey) -> str:
    """SHA-256 of the raw key (Ed25519: 32 bytes; SM2: 04 || x || y), 16 hex digits. A name, not a
    security function, so SHA-256 under both profiles: an Ed25519 key keeps the kid it always had."""
    return hashlib.sha256(public_key.identity()).hexdigest()[:16]


def _signing(key: SigningKey | Ed25519PrivateKey) -> SigningKey:
    return Ed25519Signing(key) if isinstance(key, Ed25519PrivateKey) else key


def _verifying(key: VerifyingKey | Ed25519PublicKey) -> VerifyingKey:
    return Ed25519Verifying(key) if isinstance(key, Ed25519PublicKey) else key


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
        private_key: SigningKey | Ed25519PrivateKey,
        issuer: str,
        audience: str,
        ttl_s: int,
        clock: Clock,
        previous_public_keys: Sequence[VerifyingKey | Ed25519PublicKey] = (),
    ) -> None:
        self._private_key = _signing(private_key)
        self._issuer = issuer
        self._audience = audience
        self._ttl = timedelta(seconds=ttl_s)
        self._clock = clock
        self._jwt = _access_token_jwt()
        public = self._private_key.public_key()
        self.kid = kid_of(public)
        self._public_keys: dict[str, VerifyingKey] = {}
        for key in previous_public_keys:
            verifying = _verifying(key)
            self._public_keys[kid_of(verifying)] = verifying
        self._public_keys[self.kid] = public
        self._verified: dict[str, tuple[Principal, int]] = {}

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock) -> TokenSigner:
        """The configured key, which must be of the cryptography profile's algorithm (production
        and embedded alike: a configured file is never changed here), or, unconfigured (the
        embedded profile; production refuses to start without one, config/settings.py), this
        install's own key of the profile's algorithm (install_keys.jwt_keys)."""
        algorithm = signature_algorithm(settings.crypto_profile)
        previous: list[VerifyingKey] = []
        if settings.jwt_private_key_file:
            key_file = Path(settings.jwt_private_key_file)
            try:
                private_key = load_signing_key(key_file.read_bytes())
            except ValueError as exc:
                raise ConfigurationError(
                    f"the access-token key {key_file} must be a PEM private key of Ed25519 or SM2: {exc}"
                ) from exc
            if private_key.algorithm != algorithm:
                raise ConfigurationError(
                    f"refusing to start: the access-token key {key_file} (ESTATE_JWT_PRIVATE_KEY_FILE) "
                    f"is {private_key.algorithm}, but ESTATE_CRYPTO_PROFILE={settings.crypto_profile} "
                    f"signs access tokens with {algorithm}. Configure a key of {algorithm} "
                    f"(`openssl genpkey -algorithm {'SM2' if algorithm == SM2SM3 else 'ED25519'}`), and "
                    f"list the old key's public half in ESTATE_JWT_PREVIOUS_PUBLIC_KEY_FILES so the "
                    f"tokens it signed stay valid until they expire"
                )
        else:
            private_key, previous = install_keys.jwt_keys(Path(settings.key_dir), algorithm)
        for path in settings.jwt_previous_public_key_files:
            try:
                previous.append(load_verifying_key(Path(path).read_bytes()))
            except ValueError as exc:
                raise ConfigurationError(
                    f"the previous access-token key {path} must be a PEM public key of Ed25519 or SM2: {exc}"
                ) from exc
        return cls(
            private_key=private_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
            clock=clock,
            previous_public_keys=previous,
        )

    @property
    def algorithm(self) -> SignatureAlgorithm:
        """What this signer signs with (the keys it verifies may be of either algorithm)."""
        return self._private_key.algorithm

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
        return self._encode(payload), exp

    def _encode(self, payload: dict[str, Any]) -> str:
        """The claims as they are, signed with the current key."""
        key: Any = self._private_key  # PyJWT types name cryptography's keys; ours go to our Algorithm
        return self._jwt.encode(payload, key, algorithm=self.algorithm, headers={"kid": self.kid})

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
            header = jwt.get_unverified_header(token)  # parsing only: no algorithm is involved
        except jwt.PyJWTError as exc:
            raise TokenInvalid(reason="malformed") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenInvalid(reason="algorithm")
        key = self._public_keys.get(str(header.get("kid")))
        if key is None:
            raise TokenInvalid(reason="unknown_kid")
        if alg != key.algorithm:
            raise TokenInvalid(reason="algorithm")
        try:
            claims = self._jwt.decode(
                token,
                cast(Any, key),
                algorithms=[key.algorithm],
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
        except (jwt.PyJWTError, ValueError, RecursionError) as exc:
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
        """RFC 7517 JWK Set of every key that verifies, the current one first, each with its `alg`."""
        order = sorted(self._public_keys, key=lambda kid: (kid != self.kid, kid))
        return {"keys": [{**self._public_keys[kid].jwk(), "kid": kid, "use": "sig"} for kid in order]}
