"""Slots made directly in tests, with their seat stripes, and seats taken through the real
conditional update (services/appointments/seats.py): tests never write a seat count themselves."""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from services.appointments.models import Slot, SlotStripe
from services.appointments.seats import add_stripes, take_seat
from services.errors import SlotFull


async def create_slot(**fields: Any) -> Slot:
    """A Slot row and its stripes, as `release_due_slots` makes them."""
    async with in_transaction() as conn:
        slot = await Slot.create(using_db=conn, **fields)
        await add_stripes(conn, [(slot.id, slot.capacity)])
    return slot


async def take_seats(slot_id: int, count: int | None = None) -> int:
    """Take `count` seats of the slot (None: until it is full); how many were taken."""
    taken = 0
    async with in_transaction() as conn:
        stripes = await SlotStripe.filter(slot_id=slot_id).using_db(conn).values_list("stripe", flat=True)
        while count is None or taken < count:
            try:
                await take_seat(conn, slot_id, stripes)  # type: ignore[arg-type]
            except SlotFull:
                if count is None:
                    break
                raise
            taken += 1
    return taken


async def stripes_of(slot_id: int) -> list[tuple[int, int, int]]:
    """(stripe, capacity, booked) of every stripe of the slot, by stripe."""
    rows = (
        await SlotStripe.filter(slot_id=slot_id)
        .order_by("stripe")
        .values_list("stripe", "capacity", "booked")
    )
    return [(int(s), int(c), int(b)) for s, c, b in rows]


async def booked_seats(slot_id: int) -> int:
    return sum(b for _, _, b in await stripes_of(slot_id))
