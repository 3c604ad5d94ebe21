"""The `sms.send` outbox topic: an SMS to a person, sent after the change that caused it commits.

Payloads hold no personal data in clear: the outbox table is read by operators (`python -m api
outbox stats`), kept for weeks and copied with every backup. An SMS names its recipient by
reference, `sms_to_person(...)`: `{"person_id", "template", "params"}`, and delivery decrypts the
person's phone when it sends. A recipient who is not a person in the register has the phone
encrypted into the payload instead (`sms_to_phone`: `{"phone_enc", ...}`). What the params hold
is the caller's to keep free of personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from integrations.sms.base import SmsGateway
from services.pii import PiiVault
from services.registry.models import Person

logger = logging.getLogger("services.messages.sms")

SMS_SEND = "sms.send"
NO_PHONE = {"skipped": "no_phone"}  # the result of an SMS to a person who has no phone (any more)


def sms_to_person(*, person_id: int, template: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The `sms.send` payload for a person in the register: the phone is looked up when sending."""
    return {"person_id": int(person_id), "template": template, "params": dict(params)}


def sms_to_phone(
    *, phone: str, template: str, params: Mapping[str, Any], vault: PiiVault
) -> dict[str, Any]:
    """The `sms.send` payload for a phone that belongs to no person row: encrypted, not clear."""
    return {"phone_enc": vault.encrypt_phone(phone), "template": template, "params": dict(params)}


async def deliver_sms(
    payload: dict[str, Any], key: str, *, sms: SmsGateway, vault: PiiVault
) -> dict[str, Any] | None:
    """Send one `sms.send` message under the message's idempotency key.

    A person who has no phone (removed since the message was written, or never had one) gets
    nothing: the message is delivered with the result `NO_PHONE`, not retried, because no retry
    will find a number. A person who no longer exists is the same case."""
    if "person_id" in payload:
        phone_enc = await Person.filter(id=int(payload["person_id"])).values_list("phone_enc", flat=True)
        if not phone_enc or not phone_enc[0]:
            logger.info(
                "outbox: SMS %s not sent, person %s has no phone",
                payload.get("template"),
                payload["person_id"],
                extra={"event": "sms_no_phone", "person_id": payload["person_id"]},
            )
            return dict(NO_PHONE)
        phone = vault.decrypt_phone(str(phone_enc[0]))
    else:
        phone = vault.decrypt_phone(payload["phone_enc"])
    receipt = await sms.send(phone, payload["template"], payload.get("params", {}), idempotency_key=key)
    return {"message_id": receipt.message_id}
