"""The outbox handler table: each topic a domain declares, wired to the integration that
delivers it. Built here, in the composition root, so that no domain module imports
`integrations.factory` (and with it every simulator and aiohttp's web server).

Each handler receives its topic's payload dataclass and passes the message's idempotency key,
which the external system dedupes on. `api/container.py:start_services` builds the table once and
registers it (`services.outbox.register_handlers`): from then on `enqueue` refuses any topic that
is not in it. A topic a domain declares without a handler here can therefore not be enqueued at
all, instead of failing at delivery.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

from integrations.factory import Integrations
from services.appointments import (
    AppointmentService,
    cancel_at_centre,
    expire_offer,
    push_to_centre,
    release_tax,
    reminder_sms,
)
from services.appointments.topics import (
    APPOINTMENT_REMINDER,
    CENTRE_CANCEL,
    CENTRE_PUSH,
    TAX_BOOK,
    TAX_CANCEL,
    TAX_RELEASE,
    WAITLIST_EXPIRE,
    AppointmentReminder,
    CentreCancel,
    CentrePush,
    TaxBooking,
    TaxCancel,
    TaxRelease,
    WaitlistExpiry,
)
from services.cases import CaseService, check_transfer, deliver_transfer
from services.cases.topics import (
    TAX_CLEARANCE,
    TAX_DECLARE_TRANSFER,
    UTILITY_CHECK,
    UTILITY_TRANSFER,
    ClearanceRequest,
    TransferDeclaration,
    UtilityAccountTransfer,
    UtilityTransferCheck,
)
from services.certificates import CertificateService, file_license, revoke_license
from services.certificates.models import Certificate
from services.certificates.topics import ELICENSE_REVOKE, ELICENSE_STORE, RevokeLicense, StoreLicense
from services.filings.topics import BANK_NOTIFY_FILING, FilingNotice
from services.identity.auth import OTP_DELIVER, AuthService
from services.messages.sms import SMS_SEND, SmsPayload, deliver_sms
from services.outbox.handlers import HandlerTable, route
from services.pii import PiiVault

Result = dict[str, Any] | None


def _plain(result: Any) -> Result:
    if result is None:
        return None
    if is_dataclass(result) and not isinstance(result, type):
        return {
            k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in asdict(result).items()
        }
    return {"value": str(result)}


def build_handlers(
    integrations: Integrations,
    *,
    vault: PiiVault,
    auth: AuthService,
    certificates: CertificateService,
    appointments: AppointmentService,
    cases: CaseService,
) -> HandlerTable:
    i = integrations

    async def sms_send(p: SmsPayload, key: str) -> Result:
        return await deliver_sms(p, key, sms=i.sms, vault=vault)

    async def bank_notify(p: FilingNotice, key: str) -> Result:
        return _plain(
            await i.banks.notify_filing(
                key, p.bank_code, p.filing_ref, p.status, p.certificate_number, p.detail
            )
        )

    async def elicense_store(p: StoreLicense, key: str) -> Result:
        cert = await Certificate.get(id=p.certificate_id).select_related("person")
        return await file_license(
            p.certificate_id,
            key,
            elicense=i.elicense,
            holder_id_number=vault.decrypt(cert.person.id_number_enc),
            pdf=await certificates.render(cert),
        )

    async def elicense_revoke(p: RevokeLicense, key: str) -> Result:
        await revoke_license(p.certificate_id, p.reason, key, elicense=i.elicense)
        return None

    async def centre_push(p: CentrePush, key: str) -> Result:
        return await push_to_centre(p, key, centre=i.appointment_centre)

    async def centre_cancel(p: CentreCancel, key: str) -> Result:
        return await cancel_at_centre(p, key, centre=i.appointment_centre)

    async def tax_release(p: TaxRelease, key: str) -> Result:
        return await release_tax(p, key, tax=i.tax)

    async def appointment_reminder(p: AppointmentReminder, key: str) -> Result:
        sms = await reminder_sms(p)
        if sms is None:  # cancelled or done meanwhile
            return {"outcome": "not_sent"}
        return await deliver_sms(sms, key, sms=i.sms, vault=vault)

    async def waitlist_expire(p: WaitlistExpiry, key: str) -> Result:
        return await expire_offer(p, policy=appointments.policy, clock=appointments.clock)

    async def tax_book(p: TaxBooking, key: str) -> Result:
        return _plain(
            await i.tax.book_appointment(key, p.office_code, p.slot_start, p.applicant_ref, p.case_ref)
        )

    async def tax_cancel(p: TaxCancel, key: str) -> Result:
        await i.tax.cancel_appointment(key, p.ref)
        return None

    async def tax_declare(p: TransferDeclaration, key: str) -> Result:
        declaration = await i.tax.submit_transfer_declaration(
            key, p.case_ref, p.unit_number, p.seller_refs, p.buyer_refs, p.price_fen
        )
        await cases.declaration_filed(
            case_number=p.case_ref, ref=declaration.ref, status=declaration.status.value
        )
        return _plain(declaration)

    async def tax_clearance(p: ClearanceRequest, key: str) -> Result:
        clearance = await i.tax.confirm_tax_clearance(key, p.case_ref, p.taxpayer_ref, p.unit_numbers)
        await cases.clearance_answered(
            case_number=p.case_ref, ref=clearance.ref, status=clearance.status.value, reason=clearance.reason
        )
        return _plain(clearance)

    async def utility_transfer(p: UtilityAccountTransfer, key: str) -> Result:
        return await deliver_transfer(
            p, key, router=i.utilities, clock=cases.clock, poll_s=cases.policy.utility_poll_s
        )

    async def utility_check(p: UtilityTransferCheck, key: str) -> Result:
        return await check_transfer(
            p, key, router=i.utilities, clock=cases.clock, poll_s=cases.policy.utility_poll_s
        )

    return HandlerTable(
        route(SMS_SEND, sms_send),
        route(OTP_DELIVER, auth.deliver_sms_code),
        route(BANK_NOTIFY_FILING, bank_notify),
        route(ELICENSE_STORE, elicense_store),
        route(ELICENSE_REVOKE, elicense_revoke),
        route(CENTRE_PUSH, centre_push),
        route(CENTRE_CANCEL, centre_cancel),
        route(TAX_BOOK, tax_book),
        route(TAX_CANCEL, tax_cancel),
        route(TAX_RELEASE, tax_release),
        route(APPOINTMENT_REMINDER, appointment_reminder),
        route(WAITLIST_EXPIRE, waitlist_expire),
        route(TAX_DECLARE_TRANSFER, tax_declare),
        route(TAX_CLEARANCE, tax_clearance),
        route(UTILITY_TRANSFER, utility_transfer),
        route(UTILITY_CHECK, utility_check),
    )
