"""Outbox topic of sign-in: deliver a one-time code (look the phone up, make the challenge, send)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.outbox.topics import declare


@dataclass(frozen=True)
class OtpDelivery:
    """Phone and code encrypted by the vault (contexts "phone" and "otp"); `requested_at` starts
    the code's lifetime, so a code that waited out its lifetime in the queue is not sent."""

    phone_enc: str
    code_enc: str
    requested_at: datetime


OTP_DELIVER = declare("auth.sms_code", OtpDelivery)
