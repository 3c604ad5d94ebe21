"""Issuing no-housing certificates, and what the holder does with them afterwards.

Issuance decides and writes in one transaction (eligibility.py says why that, plus the locks,
keeps a certificate from outliving the holder's housing-free state). In that same transaction
it posts the in-app message and enqueues the SMS and the filing in the e-licence library, so a
certificate exists if and only if all three will happen. The filing renders the document from
the row (`render`), so the PDF a holder downloads and the one the library keeps come from the
same signed token.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from certificates.keys import CertificateKeyring
from certificates.links import verification_url
from certificates.pdf import CertificateFonts, FontsMissing, NoHousingDocument, render_no_housing_pdf
from certificates.qr import qr_svg
from certificates.tokens import CertificateClaims, PresentationClaims
from integrations.civil_registry.base import CivilRegistry
from services.certificates.eligibility import (
    Subject,
    holding_housing,
    lock_persons,
    subjects_for,
)
from services.certificates.models import ISSUED, REVOKED, Certificate, CertificateSubject
from services.certificates.purposes import Catalogue, Purpose
from services.certificates.revocation import revoke_in
from services.certificates.topics import ELICENSE_STORE, StoreLicense, store_key
from services.clock import SHANGHAI, Clock
from services.errors import (
    CertificateNotCurrent,
    DocumentUnavailable,
    HolderHasHousing,
    NotFound,
    UnknownCertificatePurpose,
)
from services.identifiers import mask_id_number, mask_name
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.pii import PiiVault
from services.ratelimit import RateLimiter, per_day
from services.registry.models import Person

log = logging.getLogger("estate.certificates")

CERTIFICATE_MESSAGE = "certificate"
_SERIAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a window


@dataclass(frozen=True, slots=True)
class CertificatePolicy:
    public_base_url: str
    presentation_ttl_s: int = 120
    issues_per_day: int = 10


@dataclass(frozen=True, slots=True)
class CertificateView:
    """A certificate as its holder sees it."""

    serial: str
    type: str
    type_label: str
    purpose: str
    purpose_label: str
    status: str  # valid | expired | revoked
    as_of: datetime
    issued_at: datetime
    valid_until: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    qr_text: str
    filed: bool  # the e-licence library holds it


@dataclass(frozen=True, slots=True)
class Presentation:
    serial: str
    token: str
    qr_text: str
    qr_svg: str
    expires_at: datetime


def display_status(cert: Certificate, now: datetime) -> str:
    if cert.status == REVOKED:
        return "revoked"
    return "valid" if now < cert.valid_until else "expired"


def new_serial(now: datetime) -> str:
    tail = "".join(secrets.choice(_SERIAL_ALPHABET) for _ in range(10))  # 50 bits
    return f"WF{now.astimezone(SHANGHAI):%Y%m%d}{tail}"


class CertificateService:
    def __init__(
        self,
        *,
        keyring: CertificateKeyring,
        font_files: Sequence[Path] | None,
        catalogue: Catalogue,
        vault: PiiVault,
        civil_registry: CivilRegistry,
        limiter: RateLimiter,
        clock: Clock,
        policy: CertificatePolicy,
    ) -> None:
        self.keyring = keyring
        self.font_files = list(font_files) if font_files else None
        self.catalogue = catalogue
        self.vault = vault
        self.civil_registry = civil_registry
        self.limiter = limiter
        self.clock = clock
        self.policy = policy

    # --- issue ------------------------------------------------------------------------------

    def purpose(self, cert_type: str, code: str) -> Purpose:
        purpose = self.catalogue.purposes.get(code)
        if cert_type != self.catalogue.cert_type or purpose is None:
            raise UnknownCertificatePurpose(
                f"可申请的用途：{'、'.join(p.code for p in self.catalogue.purposes.values())}",
                f"Offered: type {self.catalogue.cert_type}, purposes {', '.join(self.catalogue.purposes)}",
                offered=sorted(self.catalogue.purposes),
            )
        return purpose

    async def issue(self, *, person_id: int, cert_type: str, purpose_code: str) -> CertificateView:
        purpose = self.purpose(cert_type, purpose_code)
        await self.limiter.hit(per_day(self.policy.issues_per_day), "certificate-issue", str(person_id))
        person = await Person.get_or_none(id=person_id)
        if person is None:
            raise NotFound("登记簿中没有您的记录", "You are not in the register")
        now = self.clock.now()
        subjects = await subjects_for(
            id_number=self.vault.decrypt(person.id_number_enc),
            name=person.name,
            counts_household=purpose.counts_household,
            civil_registry=self.civil_registry,
            vault=self.vault,
            today=now.astimezone(SHANGHAI).date(),
        )
        async with in_transaction() as conn:
            await lock_persons(conn, (s.id_number_index for s in subjects))
            as_of = self.clock.now()
            housed = await holding_housing(conn, [s.id_number_index for s in subjects])
            if housed:
                raise _refusal(next(s for s in subjects if s.id_number_index in housed))
            serial = new_serial(as_of)
            claims = CertificateClaims(
                serial=serial,
                cert_type=self.catalogue.cert_type,
                purpose=purpose.code,
                holder=mask_name(person.name),
                issued_at=as_of,
                valid_until=as_of + timedelta(days=purpose.validity_days),
                as_of=as_of,
            )
            cert = await Certificate.create(
                serial=serial,
                cert_type=claims.cert_type,
                purpose=purpose.code,
                household_rule=purpose.household,
                person_id=person.id,
                as_of=as_of,
                issued_at=as_of,
                valid_until=claims.valid_until,
                status=ISSUED,
                kid=self.keyring.signing_kid,
                token=self.keyring.sign_certificate(claims),
                using_db=conn,
            )
            await CertificateSubject.bulk_create(
                [
                    CertificateSubject(
                        certificate_id=cert.id, id_number_index=s.id_number_index, relation=s.relation
                    )
                    for s in subjects
                ],
                using_db=conn,
            )
            await self._announce(cert, purpose, conn)
        return self.view(cert)

    async def _announce(self, cert: Certificate, purpose: Purpose, conn: BaseDBAsyncClient) -> None:
        title = f"{self.catalogue.title}已出具"
        await post_message(
            person_id=cert.person_id,  # type: ignore[attr-defined]
            kind=CERTIFICATE_MESSAGE,
            title=title,
            body=(
                f"您申请的{self.catalogue.title}（用途：{purpose.label}，编号{cert.serial}）已出具，"
                f"有效期至{cert.valid_until.astimezone(SHANGHAI):%Y-%m-%d %H:%M}。"
            ),
            data={"serial": cert.serial, "event": "issued"},
            clock=self.clock,
            connection=conn,
        )
        await enqueue(
            topic=SMS_SEND,
            payload=sms_to_person(
                person_id=cert.person_id,  # type: ignore[attr-defined]
                template="certificate_issued",
                params={"certificate": self.catalogue.title, "number": cert.serial},
            ),
            idempotency_key=f"sms.certificate_issued:{cert.serial}",
            connection=conn,
            clock=self.clock,
        )
        await enqueue(
            topic=ELICENSE_STORE,
            payload=StoreLicense(certificate_id=cert.id),
            idempotency_key=store_key(cert.serial),
            connection=conn,
            clock=self.clock,
        )

    # --- the holder's certificates ------------------------------------------------------------

    def view(self, cert: Certificate) -> CertificateView:
        purpose = self.catalogue.purposes.get(cert.purpose)
        return CertificateView(
            serial=cert.serial,
            type=cert.cert_type,
            type_label=self.catalogue.title,
            purpose=cert.purpose,
            purpose_label=purpose.label if purpose else cert.purpose,
            status=display_status(cert, self.clock.now()),
            as_of=cert.as_of,
            issued_at=cert.issued_at,
            valid_until=cert.valid_until,
            revoked_at=cert.revoked_at,
            revoked_reason=cert.revoked_reason,
            qr_text=verification_url(self.policy.public_base_url, cert.token),
            filed=cert.license_id is not None,
        )

    async def list_for(self, person_id: int) -> list[CertificateView]:
        rows = await Certificate.filter(person_id=person_id).order_by("-issued_at", "-id").limit(200)
        return [self.view(row) for row in rows]

    async def owned(self, person_id: int, serial: str) -> Certificate:
        cert = await Certificate.get_or_none(serial=serial[:32], person_id=person_id)
        if cert is None:  # someone else's serial looks exactly like a missing one
            raise NotFound(serial=serial[:32])
        return cert

    async def pdf(self, person_id: int, serial: str) -> bytes:
        return await self.render(await self.owned(person_id, serial))

    async def render(self, cert: Certificate) -> bytes:
        person = await Person.get(id=cert.person_id)  # type: ignore[attr-defined]
        purpose = self.catalogue.purposes.get(cert.purpose)
        document = NoHousingDocument(
            serial=cert.serial,
            holder_name=person.name,
            holder_id_masked=mask_id_number(self.vault.decrypt(person.id_number_enc)),
            result_text=_result_text(cert.household_rule),
            purpose_label=purpose.label if purpose else cert.purpose,
            as_of=cert.as_of,
            valid_from=cert.issued_at,
            valid_until=cert.valid_until,
            authority=self.catalogue.authority,
            qr_text=verification_url(self.policy.public_base_url, cert.token),
        )
        try:  # registered once per process; the first load parses the font files off the loop
            fonts = await asyncio.to_thread(CertificateFonts.load, self.font_files)
        except FontsMissing as exc:
            log.error("certificate PDF not rendered: %s", exc)
            raise DocumentUnavailable(serial=cert.serial) from None
        return render_no_housing_pdf(document, fonts)

    async def present(self, person_id: int, serial: str) -> Presentation:
        """亮证: a token that goes stale in `presentation_ttl_s`, so a screenshot cannot stand in."""
        cert = await self.owned(person_id, serial)
        now = self.clock.now()
        status = display_status(cert, now)
        if status != "valid":
            raise CertificateNotCurrent(serial=cert.serial, status=status)
        expires = min(now + timedelta(seconds=self.policy.presentation_ttl_s), cert.valid_until)
        token = self.keyring.sign_presentation(
            PresentationClaims(
                serial=cert.serial, issued_at=now, expires_at=expires, nonce=secrets.token_urlsafe(6)
            )
        )
        url = verification_url(self.policy.public_base_url, token)
        return Presentation(
            serial=cert.serial, token=token, qr_text=url, qr_svg=qr_svg(url), expires_at=expires
        )

    # --- revocation --------------------------------------------------------------------------

    async def revoke(self, serial: str, *, reason: str, by: str) -> CertificateView:
        """An administrator's revocation, with a reason the holder is told."""
        async with in_transaction() as conn:
            cert = await Certificate.filter(serial=serial[:32]).using_db(conn).first()
            if cert is None:
                raise NotFound(serial=serial[:32])
            status = display_status(cert, self.clock.now())
            if status != "valid" or not await revoke_in(conn, cert, reason=reason, by=by, clock=self.clock):
                raise CertificateNotCurrent(serial=cert.serial, status=status)
            cert = await Certificate.filter(id=cert.id).using_db(conn).get()
        return self.view(cert)

    async def revocation_list(self) -> RevocationListView:
        """The signed list of revoked certificates still within their validity (offline verifiers)."""
        now = self.clock.now()
        serials = await Certificate.filter(status=REVOKED, valid_until__gt=now).values_list(
            "serial", flat=True
        )
        token = self.keyring.sign_revocations([str(s) for s in serials], now)
        return RevocationListView(
            token=token, issued_at=now, count=len(serials), kid=self.keyring.signing_kid
        )


@dataclass(frozen=True, slots=True)
class RevocationListView:
    token: str  # compact JWS, typ crl: certificates/offline.py verifies it
    issued_at: datetime
    count: int
    kid: str


def _result_text(household_rule: str) -> str:
    if household_rule == "household":
        return "经查询不动产登记簿，申请人及其配偶、未成年子女在本市无住房。"
    return "经查询不动产登记簿，申请人在本市无住房。"


def _refusal(subject: Subject) -> HolderHasHousing:
    who = {"self": "申请人本人", "spouse": "申请人配偶", "child": "申请人未成年子女"}[subject.relation]
    who_en = {"self": "the applicant", "spouse": "the applicant's spouse", "child": "a minor child"}[
        subject.relation
    ]
    masked = mask_name(subject.name)
    return HolderHasHousing(
        f"经查询，{who}（{masked}）名下有住房，不能出具无房证明",
        f"{who_en.capitalize()} ({masked}) holds housing in the city: no certificate can be issued",
        member={"relation": subject.relation, "name": masked},
    )
