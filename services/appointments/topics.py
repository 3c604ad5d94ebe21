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
    """Our reference: the centre's is read when the message is delivered, after the push it waits
    for (`enqueue(after=...)`), so a cancellation made before the push went out is not lost."""

    ref: str


@dataclass(frozen=True)
class TaxBooking:
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str


@dataclass(frozen=True)
class TaxCancel:
    ref: str


@dataclass(frozen=True)
class TaxRelease:
    """Undo a tax booking whose answer never came (a timeout): replay the booking under its key,
    which returns the booking if it was made, and cancel it."""

    booking_key: str
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str


@dataclass(frozen=True)
class AppointmentReminder:
    """The day-before SMS; sent only if the appointment is still booked when it is due."""

    appointment_id: int


@dataclass(frozen=True)
class WaitlistExpiry:
    """Due when a waitlist offer ends: pass the held seat on if it was not taken."""

    entry_id: int
    offered_until: datetime


CENTRE_PUSH = declare("appointment_centre.push_appointment", CentrePush)
CENTRE_CANCEL = declare("appointment_centre.cancel_appointment", CentreCancel)
TAX_BOOK = declare("tax.book_appointment", TaxBooking)
TAX_CANCEL = declare("tax.cancel_appointment", TaxCancel)
TAX_RELEASE = declare("tax.release_appointment", TaxRelease)
APPOINTMENT_REMINDER = declare("sms.appointment_reminder", AppointmentReminder)
WAITLIST_EXPIRE = declare("appointments.waitlist_expiry", WaitlistExpiry)
