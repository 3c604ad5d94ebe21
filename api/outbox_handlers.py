"""The outbox handler table: each topic a domain declares, wired to the integration that
delivers it. Built here, in the composition root, so that no domain module imports
`integrations.factory` (and with it every simulator and aiohttp's web server).

Each handler turns a payload into the adapter's call and passes the message's idempotency key,
which the external system dedupes on. `require_handlers` is called at start: a topic a domain
declares with no handler here stops the service at start, not at its first delivery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

from integrations.appointment_centre.base import AppointmentPush
from integrations.factory import Integrations
from services.appointments.topics import CENTRE_CANCEL, CENTRE_PUSH, TAX_BOOK, TAX_CANCEL
from services.cases.topics import TAX_DECLARE_TRANSFER, UTILITY_TRANSFER
from services.certificates.topics import ELICENSE_REVOKE, ELICENSE_STORE
from services.filings.topics import BANK_NOTIFY_FILING
from services.identity.auth import OTP_DELIVER, AuthService
from services.messages.sms import SMS_SEND, deliver_sms
from services.pii import PiiVault

Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any] | None]]

# Every topic a domain declares. A new topic goes here and into build_handlers.
DECLARED_TOPICS = (
    SMS_SEND,
    OTP_DELIVER,
    BANK_NOTIFY_FILING,
    ELICENSE_STORE,
    ELICENSE_REVOKE,
    CENTRE_PUSH,
    CENTRE_CANCEL,
    TAX_BOOK,
    TAX_CANCEL,
    TAX_DECLARE_TRANSFER,
    UTILITY_TRANSFER,
)
# Declared for a feature that has not landed yet, so nothing enqueues them: no handler needed.
AWAITING_FEATURE = frozenset({ELICENSE_STORE})


class MissingHandler(RuntimeError):
    """A declared topic has no handler: its messages would only fail at delivery."""


def require_handlers(handlers: dict[str, Handler], declared: Iterable[str] = DECLARED_TOPICS) -> None:
    missing = sorted(set(declared) - set(handlers) - AWAITING_FEATURE)
    if missing:
        raise MissingHandler(f"outbox topics without a handler: {', '.join(missing)}")


def _plain(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    if is_dataclass(result) and not isinstance(result, type):
        return {
            k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in asdict(result).items()
        }
    return {"value": str(result)}


def build_handlers(integrations: Integrations, *, vault: PiiVault, auth: AuthService) -> dict[str, Handler]:
    i = integrations

    async def sms_send(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        return await deliver_sms(p, key, sms=i.sms, vault=vault)

    async def bank_notify(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        return _plain(
            await i.banks.notify_filing(
                key,
                p["bank_code"],
                p["filing_ref"],
                p["status"],
                p.get("certificate_number"),
                p.get("detail", ""),
            )
        )

    async def elicense_revoke(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        await i.elicense.revoke_license(key, p["license_id"], p["reason"])
        return None

    async def centre_push(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        push = AppointmentPush(
            ref=p["ref"],
            office_code=p["office_code"],
            service=p["service"],
            slot_start=datetime.fromisoformat(p["slot_start"]),
            slot_end=datetime.fromisoformat(p["slot_end"]),
            applicant_ref=p["applicant_ref"],
            with_tax=bool(p.get("with_tax", False)),
        )
        return _plain(await i.appointment_centre.push_appointment(key, push))

    async def centre_cancel(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        await i.appointment_centre.cancel_appointment(key, p["centre_ref"])
        return None

    async def tax_book(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        return _plain(
            await i.tax.book_appointment(
                key,
                p["office_code"],
                datetime.fromisoformat(p["slot_start"]),
                p["applicant_ref"],
                p["case_ref"],
            )
        )

    async def tax_cancel(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        await i.tax.cancel_appointment(key, p["ref"])
        return None

    async def tax_declare(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        return _plain(
            await i.tax.submit_transfer_declaration(
                key, p["case_ref"], p["unit_number"], p["seller_refs"], p["buyer_refs"], int(p["price_fen"])
            )
        )

    async def utility_transfer(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        provider = i.utilities.provider(p["provider"])
        return _plain(
            await provider.transfer_account(
                key,
                p["account_no"],
                p["from_holder_ref"],
                p["to_holder_ref"],
                p["unit_number"],
                p["address"],
                date.fromisoformat(p["effective_date"]),
            )
        )

    return {
        SMS_SEND: sms_send,
        OTP_DELIVER: auth.deliver_sms_code,
        BANK_NOTIFY_FILING: bank_notify,
        ELICENSE_REVOKE: elicense_revoke,
        CENTRE_PUSH: centre_push,
        CENTRE_CANCEL: centre_cancel,
        TAX_BOOK: tax_book,
        TAX_CANCEL: tax_cancel,
        TAX_DECLARE_TRANSFER: tax_declare,
        UTILITY_TRANSFER: utility_transfer,
    }
