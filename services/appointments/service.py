"""The appointments domain's one entry point for the API, built once in api/container.py.

Thin: it holds the dependencies and says which module owns each use case (booking.py, changes.py,
waitlist.py, calendar.py); the invariants are stated there.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.transactions import in_transaction

from integrations.tax.base import TaxSystem
from services.appointments import changes, waitlist
from services.appointments.booking import Booking, BookingRequest, TaxHold
from services.appointments.calendar import appointment_ics
from services.appointments.models import Appointment
from services.appointments.policy import AppointmentPolicy, new_ref
from services.appointments.views import AppointmentView, view_of
from services.appointments.waitlist import WaitlistView
from services.clock import Clock
from services.errors import NotFound

LIST_LIMIT = 100


class AppointmentService:
    def __init__(self, *, tax: TaxSystem, clock: Clock, policy: AppointmentPolicy) -> None:
        self.clock = clock
        self.policy = policy
        self.booking = Booking(tax=tax, clock=clock, policy=policy)

    # --- the citizen ------------------------------------------------------------------------------

    async def book(self, request: BookingRequest) -> AppointmentView:
        return await self.booking.book(request)

    async def list_for(self, person_id: int) -> list[AppointmentView]:
        """The person's appointments, the latest slot first (at most LIST_LIMIT)."""
        rows = (
            await Appointment.filter(person_id=person_id)
            .select_related("slot__office")
            .order_by("-slot__starts_at", "-id")
            .limit(LIST_LIMIT)
        )
        return [view_of(a) for a in rows]

    async def get_for(self, person_id: int, appointment_id: int) -> AppointmentView:
        row = (
            await Appointment.filter(id=appointment_id, person_id=person_id)
            .select_related("slot__office")
            .first()
        )
        if row is None:
            raise NotFound()
        return view_of(row)

    async def cancel(self, *, person_id: int, appointment_id: int) -> AppointmentView:
        return await changes.cancel(person_id=person_id, appointment_id=appointment_id, booking=self.booking)

    async def reschedule(self, *, person_id: int, appointment_id: int, slot_id: int) -> AppointmentView:
        return await changes.reschedule(
            person_id=person_id, appointment_id=appointment_id, slot_id=slot_id, booking=self.booking
        )

    async def calendar(self, person_id: int, appointment_id: int) -> tuple[str, bytes]:
        view = await self.get_for(person_id, appointment_id)
        return view.ref, appointment_ics(view, now=self.clock.now())

    # --- the waitlist -----------------------------------------------------------------------------

    async def join_waitlist(self, *, person_id: int, slot_id: int) -> WaitlistView:
        return await waitlist.join(person_id=person_id, slot_id=slot_id, clock=self.clock)

    async def accept_offer(self, *, person_id: int, entry_id: int) -> AppointmentView:
        """Book the seat held for the person (no seat is taken again: it is already theirs)."""
        now = self.clock.now()
        await self.booking.refuse_if_blocked(person_id, now)
        holds: list[TaxHold] = []
        try:
            async with in_transaction() as conn:
                entry = await waitlist.take_offer(conn, person_id=person_id, entry_id=entry_id, now=now)
                request = BookingRequest(
                    person_id=person_id,
                    slot_id=entry.slot_id,  # type: ignore[attr-defined]
                    service=entry.service,
                )
                appointment, slot = await self.booking.book_in(
                    conn,
                    request,
                    ref=new_ref(now),
                    now=now,
                    holds=holds,
                    seat_held=True,
                    held_stripe=entry.stripe,
                )
        except BaseException:
            for hold in holds:
                await self.booking.undo_tax(hold)
            raise
        appointment.slot = slot
        return view_of(appointment)

    # --- the office's clerks ----------------------------------------------------------------------

    async def office_day(self, *, office_code: str | None, day: datetime) -> list[AppointmentView]:
        return await changes.office_day(office_code=office_code, day=day)

    async def check_in(self, *, office_code: str | None, appointment_id: int) -> AppointmentView:
        return await changes.check_in(
            office_code=office_code, appointment_id=appointment_id, clock=self.clock
        )

    async def mark_no_show(self, *, office_code: str | None, appointment_id: int) -> AppointmentView:
        return await changes.mark_no_show(
            office_code=office_code, appointment_id=appointment_id, clock=self.clock
        )
