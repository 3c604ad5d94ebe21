"""Verifying a scanned certificate without a network: published keys plus a signed revocation list.

An offline verifier (a bank counter, a school office) holds two files it fetched earlier: the JWK
Set and the latest revocation list. It never trusts stale data silently: every verdict says how
old the list is (`revocations_age`) and whether that exceeds `max_age` (`stale`); a stale list
does not change the verdict, the person at the counter decides what to do with it.

Verdicts, in order of precedence:
- `forged`: not a token signed by one of the published keys (or not a certificate/presentation);
- `revoked`: the serial is on the list (even if also expired: revocation says more);
- `expired`: `now` is after the certificate's `valid_until` or the presentation's `expires_at`;
- `valid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from certificates.keys import CertificateKeyring
from certificates.links import token_from_scan
from certificates.tokens import CertificateClaims, PresentationClaims, TokenInvalid

Verdict = Literal["valid", "expired", "revoked", "forged"]
DEFAULT_MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class OfflineVerdict:
    verdict: Verdict
    claims: CertificateClaims | PresentationClaims | None
    revocations_issued_at: datetime
    revocations_age: timedelta
    stale: bool
    reason: str | None = None  # why `forged`: a TokenInvalid reason, or `not_a_token`

    def to_json(self) -> dict[str, Any]:
        claims: dict[str, Any] | None = None
        if self.claims is not None:
            kind = "certificate" if isinstance(self.claims, CertificateClaims) else "presentation"
            claims = {"kind": kind}
            for name, value in vars(self.claims).items():
                claims[name] = value.isoformat() if isinstance(value, datetime) else value
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "claims": claims,
            "revocations_issued_at": self.revocations_issued_at.isoformat(),
            "revocations_age_seconds": int(self.revocations_age.total_seconds()),
            "stale": self.stale,
        }


class OfflineVerifier:
    """Raises `TokenInvalid` / `KeyringError` at construction if the list or keys are not ours."""

    def __init__(
        self, jwks: dict[str, Any], revocations_token: str, max_age: timedelta = DEFAULT_MAX_AGE
    ) -> None:
        self._keyring = CertificateKeyring.from_jwks(jwks)
        self.revocations = self._keyring.verify_revocations(revocations_token)
        self.max_age = max_age

    def verify(self, scan_text: str, now: datetime) -> OfflineVerdict:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        issued_at = self.revocations.issued_at
        age = now - issued_at

        def verdict(
            v: Verdict, claims: CertificateClaims | PresentationClaims | None, reason: str | None = None
        ) -> OfflineVerdict:
            return OfflineVerdict(v, claims, issued_at, age, age > self.max_age, reason)

        token = token_from_scan(scan_text)
        if token is None:
            return verdict("forged", None, "not_a_token")
        try:
            claims = self._keyring.verify_any(token)
        except TokenInvalid as e:
            return verdict("forged", None, e.reason)
        if claims.serial in self.revocations.serials:
            return verdict("revoked", claims)
        ends = claims.valid_until if isinstance(claims, CertificateClaims) else claims.expires_at
        return verdict("expired" if now > ends else "valid", claims)
