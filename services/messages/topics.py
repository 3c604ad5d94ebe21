"""Outbox topic of the messages domain: an SMS, sent after the change that caused it commits.

The payload holds no personal data in clear: the outbox table is read by operators (`python -m
api outbox stats`), kept for weeks and copied with every backup. An SMS names its recipient by
reference (`person_id`), and delivery decrypts the person's phone when it sends. A recipient who
is not a person in the register has the phone encrypted into the payload instead (`phone_enc`).
What `params` holds is the caller's to keep free of personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.outbox.topics import declare


@dataclass(frozen=True)
class SmsPayload:
    """Exactly one of `person_id` (a person in the register) and `phone_enc` (a vault-encrypted phone)."""

    template: str
    params: dict[str, str] = field(default_factory=dict)
    person_id: int | None = None
    phone_enc: str | None = None

    def __post_init__(self) -> None:
        if (self.person_id is None) == (self.phone_enc is None):
            raise ValueError("an SMS goes to a person_id or to a phone_enc, exactly one of them")


SMS_SEND = declare("sms.send", SmsPayload)
