"""What the outbox workers do for appointments (api/outbox_handlers.py wires them to the adapters).

The centre's reference is written back on the appointment by a conditional update (only while it
has none), so a redelivered push changes nothing. A push that finds its appointment already
cancelled is not sent at all; the cancellation, which waits for the push message, then finds no
centre reference and has nothing to undo.
"""

from __future__ import annotations

from typing import Any

from integrations.appointment_centre.base import (
    CENTRE_APPOINTMENT_NOT_FOUND,
    AppointmentCentre,
    AppointmentPush,
)
from integrations.errors import RequestRejected
from integrations.tax.base import SLOT_FULL, SLOT_UNAVAILABLE, TaxSystem
from services.appointments.models import BOOKED, CANCELLED, Appointment
from services.appointments.topics import AppointmentReminder, CentreCancel, CentrePush, TaxRelease
from services.appointments.views import service_label, shown
from services.messages import sms_to_person
from services.messages.topics import SmsPayload

PUSHED = "pushed"
NOT_SENT = "not_sent"  # cancelled before the push went out


class NotPushedYet(RuntimeError):
    """A centre cancellation ran before its push was delivered; retried (the outbox orders them,
    so this means the push is dead and waits for an operator)."""


async def push_to_centre(p: CentrePush, key: str, *, centre: AppointmentCentre) -> dict[str, Any]:
    appointment = await Appointment.get(ref=p.ref)
    if appointment.centre_ref:
        return {"centre_ref": appointment.centre_ref}
    if appointment.status == CANCELLED:
        await Appointment.filter(id=appointment.id, centre_ref=None).update(centre_status=NOT_SENT)
        return {"outcome": NOT_SENT}
    receipt = await centre.push_appointment(
        key,
        AppointmentPush(
            ref=p.ref,
            office_code=p.office_code,
            service=p.service,
            slot_start=p.slot_start,
            slot_end=p.slot_end,
            applicant_ref=p.applicant_ref,
            with_tax=p.with_tax,
        ),
    )
    await Appointment.filter(id=appointment.id, centre_ref=None).update(
        centre_ref=receipt.centre_ref, centre_status=PUSHED
    )
    return {"centre_ref": receipt.centre_ref}


async def cancel_at_centre(p: CentreCancel, key: str, *, centre: AppointmentCentre) -> dict[str, Any]:
    appointment = await Appointment.get(ref=p.ref)
    if appointment.centre_ref is None:
        if appointment.centre_status == NOT_SENT:
            return {"outcome": NOT_SENT}
        raise NotPushedYet(f"appointment {p.ref} has no centre reference yet")
    try:
        await centre.cancel_appointment(key, appointment.centre_ref)
    except RequestRejected as exc:
        if exc.code != CENTRE_APPOINTMENT_NOT_FOUND:
            raise
    await Appointment.filter(id=appointment.id).update(centre_status=CANCELLED)
    return {"centre_ref": appointment.centre_ref, "outcome": CANCELLED}


async def release_tax(p: TaxRelease, key: str, *, tax: TaxSystem) -> dict[str, Any]:
    """Replay the unanswered booking under its own key (the tax office returns the booking it
    made, or makes it now), then cancel it; a refusal means there is nothing to cancel."""
    try:
        booking = await tax.book_appointment(
            p.booking_key, p.office_code, p.slot_start, p.applicant_ref, p.case_ref
        )
    except RequestRejected as exc:
        if exc.code in (SLOT_FULL, SLOT_UNAVAILABLE):
            return {"outcome": "nothing_booked", "code": exc.code}
        raise
    await tax.cancel_appointment(key, booking.ref)
    return {"outcome": CANCELLED, "ref": booking.ref}


async def reminder_sms(p: AppointmentReminder) -> SmsPayload | None:
    """The day-before SMS, or None if the appointment is no longer booked when it is due."""
    appointment = await Appointment.filter(id=p.appointment_id).select_related("slot__office").first()
    if appointment is None or appointment.status != BOOKED:
        return None
    slot = appointment.slot
    day, at = shown(slot.starts_at)
    return sms_to_person(
        person_id=appointment.person_id,  # type: ignore[attr-defined]
        template="appointment_reminder",
        params={
            "date": day,
            "time": at,
            "office": slot.office.name,
            "address": slot.office.address,
            "service": service_label(appointment.service),
            "ref": appointment.ref,
        },
    )
