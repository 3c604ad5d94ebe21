"""Outbox topics of the appointments domain: the city's appointment centre and the tax office."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.outbox.topics import declare


@dataclass(frozen=True)
class CentrePush:
    ref: str  # our appointment reference
    office_code: str
    service: str
    slot_start: datetime
    slot_end: datetime
    applicant_ref: str
    with_tax: bool = False


@dataclass(frozen=True)
class CentreCancel:
    centre_ref: str


@dataclass(frozen=True)
class TaxBooking:
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str


@dataclass(frozen=True)
class TaxCancel:
    ref: str


CENTRE_PUSH = declare("appointment_centre.push_appointment", CentrePush)
CENTRE_CANCEL = declare("appointment_centre.cancel_appointment", CentreCancel)
TAX_BOOK = declare("tax.book_appointment", TaxBooking)
TAX_CANCEL = declare("tax.cancel_appointment", TaxCancel)
