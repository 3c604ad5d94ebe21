"""Delivering the `sms.send` outbox topic (declared, with its payload, in `topics.py`).

Payloads name their recipient by reference, `sms_to_person(...)`, and delivery decrypts the
person's phone when it sends. A recipient who is not a person in the register has the phone
encrypted into the payload instead (`sms_to_phone`). See `services/messages/topics.py` for why
the outbox holds no phone in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from integrations.sms.base import SmsGateway
from services.messages.topics import SMS_SEND, SmsPayload
from services.pii import PiiVault
from services.registry.models import Person

__all__ = ["NO_PHONE", "SMS_SEND", "SmsPayload", "deliver_sms", "sms_to_person", "sms_to_phone"]

logger = logging.getLogger("services.messages.sms")

NO_PHONE = {"skipped": "no_phone"}  # the result of an SMS to a person who has no phone (any more)


def sms_to_person(*, person_id: int, template: str, params: Mapping[str, Any]) -> SmsPayload:
    """The `sms.send` payload for a person in the register: the phone is looked up when sending."""
    return SmsPayload(person_id=int(person_id), template=template, params=_texts(params))


def sms_to_phone(*, phone: str, template: str, params: Mapping[str, Any], vault: PiiVault) -> SmsPayload:
    """The `sms.send` payload for a phone that belongs to no person row: encrypted, not clear."""
    return SmsPayload(phone_enc=vault.encrypt_phone(phone), template=template, params=_texts(params))


def _texts(params: Mapping[str, Any]) -> dict[str, str]:
    """Template parameters are text on the wire (the gateway sends strings); say so in the row."""
    return {str(k): str(v) for k, v in params.items()}


async def deliver_sms(
    payload: SmsPayload, key: str, *, sms: SmsGateway, vault: PiiVault
) -> dict[str, Any] | None:
    """Send one `sms.send` message under the message's idempotency key.

    A person who has no phone (removed since the message was written, or never had one) gets
    nothing: the message is delivered with the result `NO_PHONE`, not retried, because no retry
    will find a number. A person who no longer exists is the same case."""
    if payload.person_id is not None:
        phone_enc = await Person.filter(id=payload.person_id).values_list("phone_enc", flat=True)
        if not phone_enc or not phone_enc[0]:
            logger.info(
                "outbox: SMS %s not sent, person %s has no phone",
                payload.template,
                payload.person_id,
                extra={"event": "sms_no_phone", "person_id": payload.person_id},
            )
            return dict(NO_PHONE)
        phone = vault.decrypt_phone(str(phone_enc[0]))
    else:
        assert payload.phone_enc is not None  # SmsPayload holds exactly one of the two
        phone = vault.decrypt_phone(payload.phone_enc)
    receipt = await sms.send(phone, payload.template, payload.params, idempotency_key=key)
    return {"message_id": receipt.message_id}
