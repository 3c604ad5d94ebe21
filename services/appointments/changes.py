"""Cancelling, rescheduling, and what the office's clerks record (check-in, no-show).

Every change is a conditional update on the appointment's status (`booked` -> the new status), so
of two concurrent changes of one appointment exactly one happens and the seat is given back once.
Cancelling frees `active_key` (the person may book again) and tells the centre and the tax office
through the outbox; the centre's cancellation waits for the push (`after=`), so a cancellation made
before the centre ever heard of the booking is delivered after it, never before.

A seat given back goes to the slot stripe it was taken from (`Appointment.stripe`, seats.py), or
stays taken and is held for the first person on the waitlist (waitlist.py).

A reschedule is one transaction: the old appointment is cancelled (seat given back) and a new one
booked in the new slot (seat taken); if the new slot is full nothing changes. The centre sees a
cancellation and a new push (the contract has no update operation).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from services.appointments.booking import (
    APPOINTMENT_MESSAGE,
    Booking,
    BookingRequest,
    TaxHold,
)
from services.appointments.models import BOOKED, CANCELLED, CHECKED_IN, NO_SHOW, Appointment
from services.appointments.policy import cutoff_passed, new_ref
from services.appointments.seats import give_back_seat
from services.appointments.topics import CENTRE_CANCEL, TAX_CANCEL, CentreCancel, TaxCancel
from services.appointments.views import AppointmentView, service_label, shown, view_of
from services.appointments.waitlist import offer_freed_seat
from services.clock import SHANGHAI, Clock
from services.errors import AppointmentNotActive, AppointmentNotStarted, CutoffPassed, NotFound
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.outbox.models import OutboxMessage


async def _own_booked(conn: BaseDBAsyncClient, person_id: int, appointment_id: int) -> Appointment:
    appointment = (
        await Appointment.filter(id=appointment_id, person_id=person_id)
        .using_db(conn)
        .select_related("slot__office")
        .first()
    )
    if appointment is None:
        raise NotFound()
    if appointment.status != BOOKED:
        raise AppointmentNotActive(status=appointment.status)
    return appointment


async def _end(conn: BaseDBAsyncClient, appointment: Appointment, status: str, **changes: object) -> None:
    """booked -> `status`, only if it still is booked."""
    changed = (
        await Appointment.filter(id=appointment.id, status=BOOKED)
        .using_db(conn)
        .update(status=status, active_key=None, **changes)
    )
    if changed != 1:
        raise AppointmentNotActive(status="changed")
    appointment.status = status
    appointment.active_key = None
    for name, value in changes.items():
        setattr(appointment, name, value)


async def cancel_in(
    conn: BaseDBAsyncClient, appointment: Appointment, *, booking: Booking, now: datetime, notify: bool = True
) -> None:
    """Cancel `appointment` (its slot and office fetched) in the caller's transaction."""
    clock = booking.clock
    await _end(conn, appointment, CANCELLED, cancelled_at=now)
    slot = appointment.slot
    if not await offer_freed_seat(conn, slot, appointment.stripe, policy=booking.policy, clock=clock):
        await give_back_seat(conn, slot.id, appointment.stripe)
        booking.admission.freed(slot.id)  # this process answers "full" no longer; others within ttl_s
    push = await OutboxMessage.filter(idempotency_key=f"centre.push:{appointment.ref}").using_db(conn).first()
    await enqueue(
        topic=CENTRE_CANCEL,
        payload=CentreCancel(ref=appointment.ref),
        idempotency_key=f"centre.cancel:{appointment.ref}",
        connection=conn,
        clock=clock,
        after=push.id if push is not None else None,
    )
    if appointment.tax_ref:
        await enqueue(
            topic=TAX_CANCEL,
            payload=TaxCancel(ref=appointment.tax_ref),
            idempotency_key=f"tax.cancel:{appointment.tax_ref}",
            connection=conn,
            clock=clock,
        )
    if notify:
        await _tell_cancelled(conn, appointment, clock=clock)


async def _tell_cancelled(conn: BaseDBAsyncClient, appointment: Appointment, *, clock: Clock) -> None:
    slot = appointment.slot
    day, at = shown(slot.starts_at)
    person_id: int = appointment.person_id  # type: ignore[attr-defined]
    label = service_label(appointment.service)
    params = {"date": day, "time": at, "office": slot.office.name, "service": label}
    await enqueue(
        topic=SMS_SEND,
        payload=sms_to_person(
            person_id=person_id, template="appointment_cancelled", params={**params, "ref": appointment.ref}
        ),
        idempotency_key=f"sms.appointment_cancelled:{appointment.ref}",
        connection=conn,
        clock=clock,
    )
    await post_message(
        person_id=person_id,
        kind=APPOINTMENT_MESSAGE,
        title="预约已取消",
        body=f"您{day} {at}在{slot.office.name}办理{label}的预约（{appointment.ref}）已取消。",
        data={"ref": appointment.ref, "event": "cancelled", "appointment_id": appointment.id},
        clock=clock,
        connection=conn,
    )


async def cancel(*, person_id: int, appointment_id: int, booking: Booking) -> AppointmentView:
    now = booking.clock.now()
    async with in_transaction() as conn:
        appointment = await _own_booked(conn, person_id, appointment_id)
        if cutoff_passed(appointment.slot.starts_at, now, booking.policy):
            raise CutoffPassed(cutoff_h=booking.policy.cutoff_h)
        await cancel_in(conn, appointment, booking=booking, now=now)
    return view_of(appointment)


async def reschedule(
    *, person_id: int, appointment_id: int, slot_id: int, booking: Booking
) -> AppointmentView:
    """The new appointment (a new row and reference, `rescheduled_from` the old one)."""
    now = booking.clock.now()
    holds: list[TaxHold] = []
    try:
        async with in_transaction() as conn:
            old = await _own_booked(conn, person_id, appointment_id)
            if cutoff_passed(old.slot.starts_at, now, booking.policy):
                raise CutoffPassed(cutoff_h=booking.policy.cutoff_h)
            await cancel_in(conn, old, booking=booking, now=now, notify=False)
            request = BookingRequest(
                person_id=person_id,
                slot_id=slot_id,
                service=old.service,
                right_id=old.right_id,
                case_ref=old.case_ref,
                with_tax=old.with_tax,
            )
            new, slot = await booking.book_in(
                conn, request, ref=new_ref(now), now=now, holds=holds, rescheduled_from=old.id
            )
    except BaseException:
        for hold in holds:
            await booking.undo_tax(hold)
        raise
    new.slot = slot
    return view_of(new)


# --- the office's clerks ----------------------------------------------------------------------------


async def office_day(*, office_code: str | None, day: datetime) -> list[AppointmentView]:
    """The office's appointments on the Shanghai day that `day` falls in, by time."""
    if office_code is None:
        return []
    # Compared in UTC: SQLite compares datetimes as text, right only with one offset.
    start = day.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    rows = (
        await Appointment.filter(
            office_code=office_code, slot__starts_at__gte=start, slot__starts_at__lt=start + timedelta(days=1)
        )
        .select_related("slot__office")
        .order_by("slot__starts_at", "id")
    )
    return [view_of(a) for a in rows]


async def _at_office(conn: BaseDBAsyncClient, office_code: str | None, appointment_id: int) -> Appointment:
    """Another office's appointment is not found, as an id that does not exist."""
    appointment = (
        await Appointment.filter(id=appointment_id, office_code=office_code or "\x00")
        .using_db(conn)
        .select_related("slot__office")
        .first()
    )
    if appointment is None:
        raise NotFound()
    if appointment.status != BOOKED:
        raise AppointmentNotActive(status=appointment.status)
    return appointment


async def check_in(*, office_code: str | None, appointment_id: int, clock: Clock) -> AppointmentView:
    now = clock.now()
    async with in_transaction() as conn:
        appointment = await _at_office(conn, office_code, appointment_id)
        await _end(conn, appointment, CHECKED_IN, checked_in_at=now)
    return view_of(appointment)


async def mark_no_show(*, office_code: str | None, appointment_id: int, clock: Clock) -> AppointmentView:
    """Only once the slot has started; the seat stays taken (the time has passed)."""
    now = clock.now()
    async with in_transaction() as conn:
        appointment = await _at_office(conn, office_code, appointment_id)
        if appointment.slot.starts_at > now:
            raise AppointmentNotStarted(starts_at=appointment.slot.starts_at.isoformat())
        await _end(conn, appointment, NO_SHOW)
    return view_of(appointment)
