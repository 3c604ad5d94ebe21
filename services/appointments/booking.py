"""Booking a registration appointment, alone or together with the tax appointment.

Invariant (capacity, see seats.py): a seat is taken only by `take_seat`, one conditional update of
one of the slot's stripes whose row count says whether it was won, inside the transaction that
inserts the appointment (which records the stripe, to give the seat back there); a
booking that fails after that rolls the whole transaction back, so the seat is never held without
its appointment. One active appointment per person, service and case: the unique `active_key`
refuses the appointment's INSERT, which comes before the seat is taken (so a repeat never touches
a stripe row), for a sequential repeat and for two parallel requests alike; its IntegrityError
aborts a transaction that is being rolled back anyway, so it is never caught and continued on
PostgreSQL.

Invariant (combined tax appointment): the registration seat and the tax seat are held together or
not at all. The tax seat is booked through the adapter while our transaction is open (holding the
seat); a refusal or an outage raises, and our transaction rolls back. A tax booking whose side of
ours then failed to commit is cancelled through the outbox in a separate transaction; one whose
answer never came (timeout) is released by replaying its key and cancelling (`TAX_RELEASE`).

Every booking is told, in its own transaction, to the appointment centre (outbox), the person (SMS
now, a reminder SMS the day before as a scheduled outbox message, an in-app message); the three
outbox rows go in with one INSERT. A winner's transaction is eight statements: the no-show
check, the slot, its stripes, the appointment, the outbox rows and their read-back, the in-app
message, the seat.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from integrations.errors import IntegrationError, RequestRejected
from integrations.tax.base import TaxSystem
from services.appointments.admission import SlotAdmission
from services.appointments.models import BOOKED, NO_SHOW, Appointment, Slot
from services.appointments.policy import (
    AppointmentPolicy,
    active_key,
    applicant_ref,
    blocked_until,
    new_ref,
    reminder_time,
    tax_slot_start,
)
from services.appointments.seats import free_looking, take_seat
from services.appointments.slots import default_catalogue
from services.appointments.topics import (
    APPOINTMENT_REMINDER,
    CENTRE_PUSH,
    TAX_CANCEL,
    TAX_RELEASE,
    AppointmentReminder,
    CentrePush,
    TaxCancel,
    TaxRelease,
)
from services.appointments.views import AppointmentView, service_label, shown, view_of
from services.clock import Clock
from services.errors import (
    AppointmentExists,
    NoShowBlocked,
    NotFound,
    SlotFull,
    SlotNotOpen,
    TaxAppointmentFailed,
    TaxAppointmentRefused,
    TaxNotOffered,
)
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import Outgoing, enqueue, enqueue_many

log = logging.getLogger("estate.appointments")

APPOINTMENT_MESSAGE = "appointment"
# Bookings of one slot running their transaction at once in one process (admission.py); more
# wait without a pooled connection. Eight: as many as a slot has seat stripes at most (seats.py).
BOOKINGS_PER_SLOT = 8


async def open_slot(
    conn: BaseDBAsyncClient, slot_id: int, service: str, now: datetime, *, with_tax: bool = False
) -> Slot:
    info = default_catalogue().get(service)  # UNKNOWN_SERVICE (422) for a code it does not list
    slot = await Slot.filter(id=slot_id).using_db(conn).select_related("office").first()
    if slot is None:
        raise NotFound(slot_id=slot_id)
    if with_tax and not info.tax:
        raise TaxNotOffered(service=service)
    if slot.service != service:
        raise SlotNotOpen("该时段不办理此事项", "The slot is for another service", slot_id=slot_id)
    if slot.released_at > now:
        raise SlotNotOpen(slot_id=slot_id, released_at=slot.released_at.isoformat())
    if slot.starts_at <= now:
        raise SlotNotOpen(slot_id=slot_id)
    return slot


# --- telling the centre and the person --------------------------------------------------------------


async def announce_booking(
    conn: BaseDBAsyncClient, appointment: Appointment, slot: Slot, *, policy: AppointmentPolicy, clock: Clock
) -> None:
    """Centre push, confirmation SMS, day-before reminder and in-app message, in `conn`'s transaction."""
    office = slot.office
    ref = appointment.ref
    person_id: int = appointment.person_id  # type: ignore[attr-defined]
    day, at = shown(slot.starts_at)
    calls: list[Outgoing[Any]] = [
        Outgoing(
            CENTRE_PUSH,
            CentrePush(
                ref=ref,
                office_code=office.code,
                service=appointment.service,
                slot_start=slot.starts_at,
                slot_end=slot.ends_at,
                applicant_ref=applicant_ref(person_id),
                with_tax=appointment.with_tax,
            ),
            f"centre.push:{ref}",
        ),
        Outgoing(
            SMS_SEND,
            sms_to_person(
                person_id=person_id,
                template="appointment_booked",
                params={
                    "date": day,
                    "time": at,
                    "office": office.name,
                    "service": service_label(appointment.service),
                    "ref": ref,
                },
            ),
            f"sms.appointment_booked:{ref}",
        ),
    ]
    remind_at = reminder_time(slot.starts_at, policy)
    if remind_at > clock.now():  # booked the day before or later: the confirmation is the reminder
        calls.append(
            Outgoing(
                APPOINTMENT_REMINDER,
                AppointmentReminder(appointment_id=appointment.id),
                f"sms.appointment_reminder:{ref}",
                not_before=remind_at,
            )
        )
    await enqueue_many(calls, connection=conn, clock=clock)  # one INSERT for the three
    tax_note = "，并已同时预约税务办理" if appointment.with_tax else ""
    await post_message(
        person_id=person_id,
        kind=APPOINTMENT_MESSAGE,
        title="预约成功",
        body=(
            f"您已预约{day} {at}在{office.name}（{office.address}）"
            f"办理{service_label(appointment.service)}{tax_note}。预约号{ref}。"
        ),
        data={"ref": ref, "event": "booked", "appointment_id": appointment.id},
        clock=clock,
        connection=conn,
    )


# --- the use case -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookingRequest:
    person_id: int
    slot_id: int
    service: str
    right_id: int | None = None
    case_ref: str | None = None
    with_tax: bool = False


class _StillFull(Exception):
    """The slot was found full again (RecentlyFull) once the booking had a connection."""


@dataclass
class TaxHold:
    """What the tax side holds for a booking in flight, to undo it if ours does not commit."""

    key: str
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str
    ref: str | None = None  # the tax office's booking number, once it answered
    uncertain: bool = False  # asked, no answer: it may exist


class Booking:
    """Books seats; built once in the composition root (api/container.py)."""

    def __init__(self, *, tax: TaxSystem, clock: Clock, policy: AppointmentPolicy) -> None:
        self.tax = tax
        self.clock = clock
        self.policy = policy
        self.admission = SlotAdmission(per_slot=BOOKINGS_PER_SLOT)

    async def refuse_if_blocked(
        self, person_id: int, now: datetime, conn: BaseDBAsyncClient | None = None
    ) -> None:
        days = self.policy.no_show_window_days + self.policy.no_show_block_days
        since = (now - timedelta(days=days)).astimezone(UTC)  # UTC: SQLite compares datetimes as text
        starts = (
            await Appointment.filter(person_id=person_id, status=NO_SHOW, slot__starts_at__gte=since)
            .using_db(conn)
            .values_list("slot__starts_at", flat=True)
        )
        until = blocked_until(list(starts), now, self.policy)  # type: ignore[arg-type]
        if until is not None:
            day, at = shown(until)
            raise NoShowBlocked(
                f"因多次预约未到，{day} {at}前不能在线预约",
                f"Online booking is suspended until {until.isoformat()}",
                blocked_until=until.isoformat(),
            )

    async def book(self, request: BookingRequest) -> AppointmentView:
        now = self.clock.now()
        holds: list[TaxHold] = []
        async with self.admission.admitted(request.slot_id):  # SlotFull at once if known full
            try:
                async with in_transaction() as conn:
                    # The wait for a pooled connection can outlast the slot's last seat: asked
                    # again once there is one, the answer costs no statement.
                    if self.admission.full.recently(request.slot_id):
                        raise _StillFull()
                    await self.refuse_if_blocked(request.person_id, now, conn)
                    appointment, slot = await self.book_in(
                        conn, request, ref=new_ref(now), now=now, holds=holds
                    )
            except _StillFull:
                raise SlotFull(slot_id=request.slot_id) from None
            except SlotFull:
                self.admission.found_full(request.slot_id)
                for hold in holds:
                    await self.undo_tax(hold)
                raise
            except BaseException:
                for hold in holds:
                    await self.undo_tax(hold)
                raise
        appointment.slot = slot
        return view_of(appointment)

    async def book_in(
        self,
        conn: BaseDBAsyncClient,
        request: BookingRequest,
        *,
        ref: str,
        now: datetime,
        holds: list[TaxHold],
        rescheduled_from: int | None = None,
        seat_held: bool = False,
        held_stripe: int | None = None,
    ) -> tuple[Appointment, Slot]:
        """Row, tax seat, announcements and the seat in the caller's transaction. A tax booking that
        was attempted is appended to `holds`: the caller undoes it if the transaction does not
        commit (also when the seat went to someone else meanwhile: SlotFull after the tax call).
        `seat_held`: a waitlist offer already holds a seat, in `held_stripe` (waitlist.py), so no
        seat is taken again."""
        slot = await open_slot(conn, request.slot_id, request.service, now, with_tax=request.with_tax)
        key = active_key(
            request.person_id, request.service, case_ref=request.case_ref, right_id=request.right_id
        )
        free: list[int] = []
        stripe = held_stripe
        if not seat_held:
            # A plain read: in a rush most callers are turned away here without a write, and the
            # others try the stripes that looked free first. The conditional update at the end is
            # what guarantees the capacity, not this (seats.py). The stripe to try first is picked
            # now and stored with the row, so the usual winner writes nothing more under the lock.
            free, _ = await free_looking(conn, slot.id)
            if not free:
                raise SlotFull(slot_id=slot.id)
            stripe = random.choice(free)  # spreading load, not a secret
        try:
            appointment = await Appointment.create(
                ref=ref,
                person_id=request.person_id,
                slot_id=slot.id,
                office_code=slot.office.code,
                service=request.service,
                right_id=request.right_id,
                case_ref=request.case_ref,
                status=BOOKED,
                stripe=stripe,
                active_key=key,
                with_tax=request.with_tax,
                created_at=now,
                rescheduled_from=rescheduled_from,
                using_db=conn,
            )
        except IntegrityError as exc:  # a parallel request of the same person committed first
            raise AppointmentExists(service=request.service) from exc
        if request.with_tax:
            hold = await self.hold_tax(appointment, slot, holds)
            appointment.tax_ref = hold.ref
            appointment.tax_slot_start = hold.slot_start
            await appointment.save(using_db=conn, update_fields=["tax_ref", "tax_slot_start"])
        await announce_booking(conn, appointment, slot, policy=self.policy, clock=self.clock)
        if not seat_held:  # a waitlist offer holds its seat already (waitlist.py)
            # Last, right before the commit: on PostgreSQL the stripe's row stays locked from this
            # update to the commit, and the other bookers of that stripe queue on the lock.
            won = await take_seat(conn, slot.id, free, first=stripe)
            if won != stripe:  # the first choice filled meanwhile
                appointment.stripe = won
                await Appointment.filter(id=appointment.id).using_db(conn).update(stripe=won)
        return appointment, slot

    async def hold_tax(self, appointment: Appointment, slot: Slot, holds: list[TaxHold]) -> TaxHold:
        hold = TaxHold(
            key=f"tax.book:{appointment.ref}",
            office_code=slot.office.code,
            slot_start=tax_slot_start(slot.starts_at),
            applicant_ref=applicant_ref(appointment.person_id),  # type: ignore[attr-defined]
            case_ref=appointment.case_ref or appointment.ref,
        )
        try:
            booked = await self.tax.book_appointment(
                hold.key, hold.office_code, hold.slot_start, hold.applicant_ref, hold.case_ref
            )
        except RequestRejected as exc:  # refused: nothing was booked, nothing to undo
            raise TaxAppointmentRefused(tax_code=exc.code) from exc
        except IntegrationError as exc:  # unreachable or unreadable: it may have been booked
            hold.uncertain = True
            holds.append(hold)
            raise TaxAppointmentFailed() from exc
        hold.ref = booked.ref
        holds.append(hold)
        return hold

    async def undo_tax(self, hold: TaxHold) -> None:
        """Our transaction did not commit: cancel (or, if unanswered, release) the tax booking,
        through the outbox in a transaction of its own."""
        async with in_transaction() as conn:
            if hold.ref is not None:
                await enqueue(
                    topic=TAX_CANCEL,
                    payload=TaxCancel(ref=hold.ref),
                    idempotency_key=f"tax.cancel:{hold.ref}",
                    connection=conn,
                    clock=self.clock,
                )
            elif hold.uncertain:
                await enqueue(
                    topic=TAX_RELEASE,
                    payload=TaxRelease(
                        booking_key=hold.key,
                        office_code=hold.office_code,
                        slot_start=hold.slot_start,
                        applicant_ref=hold.applicant_ref,
                        case_ref=hold.case_ref,
                    ),
                    idempotency_key=f"tax.release:{hold.key}",
                    connection=conn,
                    clock=self.clock,
                )
        log.warning(
            "appointment: tax booking %s undone (ours did not commit)",
            hold.ref or hold.key,
            extra={"event": "tax_booking_undone", "uncertain": hold.uncertain},
        )
