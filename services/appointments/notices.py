"""What people already booked are told when their appointment cannot happen as booked."""

from __future__ import annotations

from datetime import date, datetime

from services.appointments.models import BOOKED, Appointment
from services.clock import SHANGHAI, Clock
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.registry.models import Office


async def tell_booked_of_closure(
    office: Office, *, day: date, reason: str, start: datetime, end: datetime, clock: Clock
) -> int:
    """Everyone already booked at the office that day is told, in the closure's transaction, by
    in-app message and SMS (`appointment_office_closed`), to reschedule or cancel: their booking
    is kept (a cancellation is theirs to make, and keeps their seat count honest), the office
    is not open to serve it. Idempotent per appointment and day."""
    appointments = await Appointment.filter(
        office_code=office.code, status=BOOKED, slot__starts_at__gte=start, slot__starts_at__lt=end
    ).select_related("slot")
    for appointment in appointments:
        when = appointment.slot.starts_at.astimezone(SHANGHAI)
        await post_message(
            person_id=appointment.person_id,  # type: ignore[attr-defined]
            kind="appointment",
            title="预约日闭馆",
            body=(
                f"{office.name}{day:%Y-%m-%d}闭馆（{reason}）。您{when:%H:%M}的预约（{appointment.ref}）"
                "无法办理，请改约或取消。"
            ),
            data={"ref": appointment.ref, "event": "office_closed", "day": day.isoformat()},
            clock=clock,
        )
        await enqueue(
            topic=SMS_SEND,
            payload=sms_to_person(
                person_id=appointment.person_id,  # type: ignore[attr-defined]
                template="appointment_office_closed",
                params={
                    "office": office.name,
                    "date": f"{day:%Y-%m-%d}",
                    "reason": reason,
                    "ref": appointment.ref,
                },
            ),
            idempotency_key=f"sms.office_closed:{appointment.ref}:{day.isoformat()}",
            clock=clock,
        )
    return len(appointments)
