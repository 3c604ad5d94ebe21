"""Verifying a scanned certificate: for a clerk at a window, or anyone on the public page.

A verifier learns the verdict and only what a check needs: type, masked name, purpose, validity,
the register's as-of time, and when the status was last known (now, online; the list's issue
time, offline: certificates/offline.py). Never the ID number, never the holder's other data.

Verdicts: `forged` (not a token, or not signed by one of our keys, or not the token issued for
that serial), `unknown` (signed by us, but this register has no such serial: another
environment's), `revoked`, `expired` (the certificate, or a 亮证 presentation older than its few
minutes), `valid`. Every verification of a real certificate is a read of the holder's data and
goes to the access log, so the holder sees who checked it and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from certificates.keys import CertificateKeyring
from certificates.links import token_from_scan
from certificates.tokens import CertificateClaims, PresentationClaims, TokenInvalid
from services.audit import Reader, record_access
from services.certificates.issuance import display_status
from services.certificates.models import Certificate
from services.certificates.purposes import Catalogue
from services.clock import Clock
from services.ratelimit import RateLimiter, per_seconds

VERIFY_ACTION = "certificate.verify"
VERIFY_PURPOSE = "certificate_verification"
PUBLIC_READER = Reader(subject="public", role="public", display="扫码核验（公众）")


@dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    serial: str
    type: str
    type_label: str
    holder: str  # masked
    purpose: str
    purpose_label: str
    valid_from: datetime
    valid_until: datetime
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: str  # valid | expired | revoked | forged | unknown
    status_known_at: datetime
    certificate: VerifiedCertificate | None
    reason: str | None = None  # for forged and expired: malformed | bad_signature | presentation_expired ...
    presentation: bool = False


class CertificateVerifier:
    def __init__(
        self,
        *,
        keyring: CertificateKeyring,
        catalogue: Catalogue,
        limiter: RateLimiter,
        clock: Clock,
        public_per_minute: int = 30,
    ) -> None:
        self.keyring = keyring
        self.catalogue = catalogue
        self.limiter = limiter
        self.clock = clock
        self.public_per_minute = public_per_minute

    async def verify_public(self, qr: str, *, client_ip: str, request_id: str | None) -> Verification:
        await self.limiter.hit(per_seconds(self.public_per_minute, 60), "certificate-verify-ip", client_ip)
        return await self.verify(qr, reader=PUBLIC_READER, request_id=request_id)

    async def verify(self, qr: str, *, reader: Reader, request_id: str | None) -> Verification:
        now = self.clock.now()
        token = token_from_scan(qr)
        if token is None:
            return Verification("forged", now, None, reason="malformed")
        try:
            claims = self.keyring.verify_any(token)
        except TokenInvalid as exc:
            return Verification("forged", now, None, reason=exc.reason)
        presentation = isinstance(claims, PresentationClaims)
        cert = await Certificate.get_or_none(serial=claims.serial)
        if cert is None:
            return Verification("unknown", now, None, presentation=presentation)
        if isinstance(claims, CertificateClaims) and token != cert.token:
            return Verification("forged", now, None, reason="not_issued")
        await record_access(
            reader=reader,
            person_id=cert.person_id,  # type: ignore[attr-defined]
            action=VERIFY_ACTION,
            object_type="certificate",
            object_id=cert.serial,
            purpose=VERIFY_PURPOSE,
            clock=self.clock,
            request_id=request_id,
        )
        shown = self._shown(cert, claims)
        status = display_status(cert, now)
        if status == "valid" and presentation and now >= claims.expires_at:  # type: ignore[union-attr]
            return Verification("expired", now, shown, reason="presentation_expired", presentation=True)
        return Verification(status, now, shown, presentation=presentation)

    def _shown(
        self, cert: Certificate, claims: CertificateClaims | PresentationClaims
    ) -> VerifiedCertificate:
        purpose = self.catalogue.purposes.get(cert.purpose)
        holder = claims.holder if isinstance(claims, CertificateClaims) else _holder_of(cert, self.keyring)
        return VerifiedCertificate(
            serial=cert.serial,
            type=cert.cert_type,
            type_label=self.catalogue.title,
            holder=holder,
            purpose=cert.purpose,
            purpose_label=purpose.label if purpose else cert.purpose,
            valid_from=cert.issued_at,
            valid_until=cert.valid_until,
            as_of=cert.as_of,
        )


def _holder_of(cert: Certificate, keyring: CertificateKeyring) -> str:
    """The masked name as the certificate's own token states it (a presentation carries none)."""
    try:
        return keyring.verify_certificate(cert.token).holder
    except TokenInvalid:
        return ""
