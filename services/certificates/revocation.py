"""Ending certificates, and keeping the e-licence library in step.

Invariant: a certificate moves from issued to revoked at most once (a conditional update on its
status), and every revocation is told to the holder (in-app message and SMS) and to the library
in the transaction that makes it. The library hears of a revocation only after it holds the
filing: the revocation's outbox message names the filing's message as its predecessor, so a
library that was down at issue time receives the document first and the revocation second.

`housing_acquired` is the one function a registration that gives someone housing calls, in its
own transaction (services/registry/changes/transfers.py today, first registration later). It
takes the same per-person locks as issuance (eligibility.py explains the race it closes).

Subjects across a profile switch: a certificate subject keeps only an ID number's blind index, and
`python -m api crypto switch-profile` cannot recompute the index of a household member with no
person row and no guardianship link at switch time (its `unmapped_subjects`); that row keeps the
index of the profile it was issued under. So once the database records a finished switch
(`crypto_state.updated_at`, written only by a switch's last transaction, with `switching_to`
cleared), revocation matches each person's index under the current profile and under the other
one, computed from the decrypted ID number, in one `IN` on `certificate_subject.id_number_index`.
There are two profiles, so every subject index is of the current profile or of the other one,
whichever way and however many times the database was switched (international -> national ->
international leaves subjects of the first switch on the current profile, those of the second on
the other): one legacy index per person is enough. With no finished switch only the current index
is used: an index of the other profile can then only be another number's, never this person's.
The per-person locks stay on the current indexes, the ones issuance takes (issuance never computes
a legacy index). Decrypting needs the vault, which the caller passes: the case workflow gives it
to the transfer registration (services/cases/transfers.py -> registry register_transfer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from integrations.elicense.base import ALREADY_REVOKED, ElicenseStore
from integrations.errors import RequestRejected
from services.certificates.eligibility import RESIDENTIAL, lock_persons
from services.certificates.models import ISSUED, REVOKED, Certificate
from services.certificates.topics import ELICENSE_REVOKE, RevokeLicense, store_key
from services.clock import SHANGHAI, Clock
from services.crypto.models import STATE_ID, CryptoState
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.outbox.models import OutboxMessage
from services.pii import PiiVault
from services.registry.models import Person, RealEstateUnit
from standards.crypto_profile import INTERNATIONAL, NATIONAL, ProfileName

REASON_HOUSING = "申请人或其家庭成员已登记取得住房"
LICENSE_TYPE = "no_housing_certificate"
SYSTEM_REGISTRATION = "system:registration"
_OTHER_PROFILE: dict[str, ProfileName] = {INTERNATIONAL: NATIONAL, NATIONAL: INTERNATIONAL}


class NotFiledYet(RuntimeError):
    """A revocation reached a worker before its filing was delivered; retried (should not happen:
    the outbox orders them)."""


async def housing_acquired(
    conn: BaseDBAsyncClient,
    *,
    unit: RealEstateUnit,
    person_ids: Sequence[int],
    clock: Clock,
    vault: PiiVault | None = None,
    reason: str = REASON_HOUSING,
) -> list[str]:
    """Revoke every valid certificate that counted one of `person_ids`, who now hold a right on
    `unit`; nothing when the unit is not housing. Returns the revoked serials.

    `vault` decrypts the persons' ID numbers to compute their legacy indexes after a profile
    switch (module docstring); without it only the current indexes are matched, and a subject the
    switch could not recompute is not found."""
    if unit.use != RESIDENTIAL or not person_ids:
        return []
    persons = (
        await Person.filter(id__in=list(person_ids))
        .using_db(conn)
        .values_list("id_number_index", "id_number_enc")
    )
    indexes = [str(index) for index, _ in persons]
    await lock_persons(conn, indexes)
    legacy = await legacy_profile(conn) if vault is not None else None
    if legacy is not None and vault is not None:
        indexes += [vault.blind_index(vault.decrypt(str(enc)), profile=legacy) for _, enc in persons]
    now = clock.now()
    affected = (
        await Certificate.filter(status=ISSUED, valid_until__gt=now, subjects__id_number_index__in=indexes)
        .using_db(conn)
        .distinct()
        .order_by("id")
    )
    revoked = []
    for cert in affected:
        if await revoke_in(conn, cert, reason=reason, by=SYSTEM_REGISTRATION, clock=clock):
            revoked.append(cert.serial)
    return revoked


async def legacy_profile(conn: BaseDBAsyncClient) -> ProfileName | None:
    """The profile a subject index the switch left unconverted is of: the one other than the
    recorded profile, once a switch has finished; None when none has (module docstring)."""
    state = await CryptoState.filter(id=STATE_ID).using_db(conn).first()
    if state is None or state.updated_at is None or state.switching_to is not None:
        return None
    return _OTHER_PROFILE.get(state.profile)


async def revoke_in(
    conn: BaseDBAsyncClient, cert: Certificate, *, reason: str, by: str, clock: Clock
) -> bool:
    """Revoke `cert` in the caller's transaction; False if it was not issued any more."""
    now = clock.now()
    changed = (
        await Certificate.filter(id=cert.id, status=ISSUED)
        .using_db(conn)
        .update(status=REVOKED, revoked_at=now, revoked_reason=reason[:200], revoked_by=by[:64])
    )
    if changed != 1:
        return False
    person_id: int = cert.person_id  # type: ignore[attr-defined]
    await post_message(
        person_id=person_id,
        kind="certificate",
        title="无房证明已撤销",
        body=f"您的无房证明（编号{cert.serial}）已于{_shown(now)}撤销。原因：{reason}",
        data={"serial": cert.serial, "event": "revoked"},
        clock=clock,
        connection=conn,
    )
    await enqueue(
        topic=SMS_SEND,
        payload=sms_to_person(
            person_id=person_id,
            template="certificate_revoked",
            params={"certificate": "无房证明", "number": cert.serial, "reason": reason},
        ),
        idempotency_key=f"sms.certificate_revoked:{cert.serial}",
        connection=conn,
        clock=clock,
    )
    filing = await OutboxMessage.filter(idempotency_key=store_key(cert.serial)).using_db(conn).first()
    await enqueue(
        topic=ELICENSE_REVOKE,
        payload=RevokeLicense(certificate_id=cert.id, reason=reason[:200]),
        idempotency_key=f"elicense.revoke:{cert.serial}",
        connection=conn,
        clock=clock,
        after=filing.id if filing is not None else None,
    )
    return True


def _shown(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


# --- delivery to the e-licence library (outbox handlers; api/outbox_handlers.py wires them) ------


async def file_license(
    certificate_id: int, key: str, *, elicense: ElicenseStore, holder_id_number: str, pdf: bytes
) -> dict[str, str]:
    """File the rendered document; record the library's id on the certificate."""
    cert = await Certificate.get(id=certificate_id)
    if cert.license_id:
        return {"license_id": cert.license_id}
    # Our key is derived from the serial, so the library dedupes a retry; a LICENSE_EXISTS
    # refusal (filed under another key) is not retryable and leaves the message dead for an operator.
    stored = await elicense.store_license(
        key,
        LICENSE_TYPE,
        cert.serial,
        holder_id_number,
        cert.issued_at,
        cert.valid_until.astimezone(SHANGHAI).date(),
        hashlib.sha256(pdf).hexdigest(),
        pdf,
    )
    await Certificate.filter(id=cert.id, license_id=None).update(license_id=stored.license_id)
    return {"license_id": stored.license_id}


async def revoke_license(certificate_id: int, reason: str, key: str, *, elicense: ElicenseStore) -> None:
    cert = await Certificate.get(id=certificate_id)
    if not cert.license_id:
        raise NotFiledYet(f"certificate {cert.serial} has no licence id yet")
    try:
        await elicense.revoke_license(key, cert.license_id, reason)
    except RequestRejected as exc:
        if exc.code != ALREADY_REVOKED:
            raise
