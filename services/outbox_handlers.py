"""Outbox topics and the handler that delivers each through its integration.

A payload is plain JSON; each handler turns it into the adapter's call and passes the message's
idempotency key, which the external system dedupes on. Features add their topics here.

Payloads hold no personal data in clear: the outbox table is read by operators (`python -m api
outbox stats`), kept for weeks and copied with every backup. An SMS names its recipient by
reference, `sms_to_person(...)`: `{"person_id", "template", "params"}`, and the handler decrypts
the person's phone when it sends. A recipient who is not a person in the register has the phone
encrypted into the payload instead (`sms_to_phone`: `{"phone_enc", ...}`). What the params hold
is the caller's to keep free of personal data (a sign-in code is the sign-in feature's to protect).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

from integrations.appointment_centre.base import AppointmentPush
from integrations.factory import Integrations
from services.models.registry import Person
from services.pii import PiiVault

logger = logging.getLogger("services.outbox")

Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any] | None]]

SMS_SEND = "sms.send"
BANK_NOTIFY_FILING = "banks.notify_filing"
ELICENSE_STORE = "elicense.store_license"
ELICENSE_REVOKE = "elicense.revoke_license"
CENTRE_PUSH = "appointment_centre.push_appointment"
CENTRE_CANCEL = "appointment_centre.cancel_appointment"
TAX_BOOK = "tax.book_appointment"
TAX_CANCEL = "tax.cancel_appointment"
TAX_DECLARE_TRANSFER = "tax.submit_transfer_declaration"
UTILITY_TRANSFER = "utilities.transfer_account"


def _plain(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    if is_dataclass(result) and not isinstance(result, type):
        return {
            k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in asdict(result).items()
        }
    return {"value": str(result)}


def sms_to_person(*, person_id: int, template: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The `sms.send` payload for a person in the register: the phone is looked up when sending."""
    return {"person_id": int(person_id), "template": template, "params": dict(params)}


def sms_to_phone(
    *, phone: str, template: str, params: Mapping[str, Any], vault: PiiVault
) -> dict[str, Any]:
    """The `sms.send` payload for a phone that belongs to no person row: encrypted, not clear."""
    return {"phone_enc": vault.encrypt_phone(phone), "template": template, "params": dict(params)}


NO_PHONE = {"skipped": "no_phone"}  # the result of an SMS to a person who has no phone (any more)


def build_handlers(integrations: Integrations, *, vault: PiiVault) -> dict[str, Handler]:
    i = integrations

    async def sms_send(p: dict[str, Any], key: str) -> dict[str, Any] | None:
        """A person who has no phone (removed since the message was written, or never had one)
        gets nothing: the message is delivered with the result `NO_PHONE`, not retried, because
        no retry will find a number. A person who no longer exists is the same case."""
        if "person_id" in p:
            phone_enc = await Person.filter(id=int(p["person_id"])).values_list("phone_enc", flat=True)
            if not phone_enc or not phone_enc[0]:
                logger.info(
                    "outbox: SMS %s not sent, person %s has no phone",
                    p.get("template"),
                    p["person_id"],
                    extra={"event": "sms_no_phone", "person_id": p["person_id"]},
                )
                return dict(NO_PHONE)
            phone = vault.decrypt_phone(str(phone_enc[0]))
        else:
            phone = vault.decrypt_phone(p["phone_enc"])
        return _plain(await i.sms.send(phone, p["template"], p.get("params", {}), idempotency_key=key))

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
        BANK_NOTIFY_FILING: bank_notify,
        ELICENSE_REVOKE: elicense_revoke,
        CENTRE_PUSH: centre_push,
        CENTRE_CANCEL: centre_cancel,
        TAX_BOOK: tax_book,
        TAX_CANCEL: tax_cancel,
        TAX_DECLARE_TRANSFER: tax_declare,
        UTILITY_TRANSFER: utility_transfer,
    }
