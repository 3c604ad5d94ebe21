"""A slot's seats, kept in stripes: several counter rows per slot, so winning bookings commit in parallel.

Invariant (capacity): a slot never holds more active appointments and held waitlist offers than its
capacity. A slot's seats are split over `SlotStripe` rows (`min(capacity, STRIPES)` of them, the
seats spread evenly, made with the slot); each stripe's `booked <= capacity` is kept by the
database alone: a seat is taken by one conditional update on one stripe
(`UPDATE slot_stripe SET booked = booked + 1 WHERE slot_id = ? AND stripe = ? AND booked < capacity`)
whose row count says whether it was won, and given back to the stripe it came from
(`booked - 1 WHERE booked > 0`). The slot's seats are the sum of its stripes', so the sum can
never pass the sum of the capacities either. Nothing reads a count and writes it back.

Why stripes: with one counter row, every winner of a rush held that row's lock from its update to
its commit (a WAL flush on PostgreSQL), so the winners committed one after another and everyone
else queued behind them. A booking now tries the stripes that looked free in a random order (then
the others), so up to `STRIPES` winners hold different rows and PostgreSQL flushes their commits
together. "Full" is every stripe refusing.

Admin changes of a slot's capacity (`resize`: closing a day, reopening it) first lock every stripe
of the slot with a no-op update (`SET capacity = capacity`: a row lock on PostgreSQL, the write lock
on SQLite; `select_for_update` is not relied on, SQLite ignores it). Under that lock no seat is
taken or given back, so the stripes' `booked` can be read and the free seats of the new capacity
spread over them (`capacity = booked + extra`): no stripe ever has room beyond the new total, and a
capacity below what is booked is refused before anything is written. `Slot.capacity` is the sum of
its stripes' capacities, written in the same transaction; the slot row has no seat count of its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Subquery
from tortoise.functions import Sum
from tortoise.queryset import QuerySet

from services.appointments.models import Slot, SlotStripe
from services.errors import Conflict, SlotFull

STRIPES = 8  # at most this many stripes per slot (0009_slot_stripes uses its own copy: 8)


class CapacityBelowBooked(Conflict):
    """A slot's capacity cannot become smaller than the seats already taken in it."""

    code = "CAPACITY_BELOW_BOOKED"
    title_zh = "名额不能少于已预约人数"
    title_en = "The capacity cannot be below the seats already booked"


def spread(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible, the larger shares first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def stripe_count(capacity: int, limit: int = STRIPES) -> int:
    """How many stripes a slot of `capacity` seats gets: one per seat up to `limit`, never none."""
    return max(1, min(capacity, limit))


def new_stripes(slot_id: int, capacity: int) -> list[SlotStripe]:
    return [
        SlotStripe(slot_id=slot_id, stripe=i, capacity=seats, booked=0)
        for i, seats in enumerate(spread(capacity, stripe_count(capacity)))
    ]


async def add_stripes(conn: BaseDBAsyncClient, slots: Iterable[tuple[int, int]]) -> None:
    """The stripes of new slots, given as (slot id, capacity). Idempotent: a stripe that exists
    already is left as it is (unique slot_id, stripe), so parallel releasers may both call it."""
    rows = [stripe for slot_id, capacity in slots for stripe in new_stripes(slot_id, capacity)]
    if rows:
        await SlotStripe.bulk_create(rows, ignore_conflicts=True, batch_size=1000, using_db=conn)


# --- taking and giving back ------------------------------------------------------------------------


async def free_looking(conn: BaseDBAsyncClient, slot_id: int) -> tuple[list[int], list[int]]:
    """(stripes with room, the others) as a plain read: a hint for the order in which `take_seat`
    tries them, and the cheap "full" answer in a rush. It guarantees nothing."""
    rows = await SlotStripe.filter(slot_id=slot_id).using_db(conn).values_list("stripe", "capacity", "booked")
    free = [s for s, capacity, booked in rows if booked < capacity]
    full = [s for s, capacity, booked in rows if booked >= capacity]
    return free, full


async def take_seat(
    conn: BaseDBAsyncClient,
    slot_id: int,
    free: Sequence[int],
    *,
    first: int | None = None,
) -> int:
    """Take one seat: stripe `first` (else one of `free`), one conditional update, until one is
    won; its number is returned. After a refusal the stripes are read again (a plain read of what
    is committed, no lock) and one that still has room and was not tried is next; SlotFull when
    none is left. So a loser in a rush queues on the lock of a stripe only while that stripe may
    still have a seat, not on every stripe the slot has."""
    tried: set[int] = set()
    candidate = first if first is not None else (random.choice(free) if free else None)
    while candidate is not None:
        taken = (
            await SlotStripe.filter(slot_id=slot_id, stripe=candidate, booked__lt=F("capacity"))
            .using_db(conn)
            .update(booked=F("booked") + 1)
        )
        if taken == 1:
            return candidate
        tried.add(candidate)
        room, _ = await free_looking(conn, slot_id)
        untried = [s for s in room if s not in tried]
        candidate = random.choice(untried) if untried else None  # spreading load, not a secret
    raise SlotFull(slot_id=slot_id)


async def give_back_seat(conn: BaseDBAsyncClient, slot_id: int, stripe: int | None) -> None:
    """Back to the stripe the seat came from. A seat without a stripe (none should be left after
    0009) goes back to the first stripe that has one taken."""
    if stripe is not None:
        await (
            SlotStripe.filter(slot_id=slot_id, stripe=stripe, booked__gt=0)
            .using_db(conn)
            .update(booked=F("booked") - 1)
        )
        return
    taken = SlotStripe.filter(slot_id=slot_id, booked__gt=0).using_db(conn)
    for number in await taken.order_by("stripe").values_list("stripe", flat=True):
        if await taken.filter(stripe=number).update(booked=F("booked") - 1):
            return


# --- reading what is free ----------------------------------------------------------------------------


def with_free_seat(query: QuerySet[Slot]) -> QuerySet[Slot]:
    """`query` narrowed to slots that have a stripe with room."""
    return query.filter(id__in=Subquery(SlotStripe.filter(booked__lt=F("capacity")).values("slot_id")))


async def seats_of(slot_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """slot id -> (capacity, seats free), summed over the stripes, in one grouped query."""
    if not slot_ids:
        return {}
    rows = (
        await SlotStripe.filter(slot_id__in=list(slot_ids))
        .annotate(seats=Sum("capacity"), taken=Sum("booked"))
        .group_by("slot_id")
        .values_list("slot_id", "seats", "taken")
    )
    return {int(s): (int(c or 0), int(c or 0) - int(t or 0)) for s, c, t in rows}


# --- admin changes of capacity -------------------------------------------------------------------------


async def resize(conn: BaseDBAsyncClient, slot_id: int, capacity: int | None) -> tuple[int, int]:
    """Give the slot `capacity` seats, or, with None, exactly the seats taken (closing it); in
    `conn`'s transaction. Returns (seats booked, the capacity before). CapacityBelowBooked, with
    nothing changed, if `capacity` is below the seats booked (module docstring)."""
    if capacity is not None:  # a slot grown past its stripes gets more, up to STRIPES
        have = await SlotStripe.filter(slot_id=slot_id).using_db(conn).count()
        wanted = stripe_count(capacity)
        if have < wanted:
            await SlotStripe.bulk_create(
                [SlotStripe(slot_id=slot_id, stripe=i, capacity=0, booked=0) for i in range(have, wanted)],
                ignore_conflicts=True,
                using_db=conn,
            )
    # The lock: from here to the commit no seat of this slot is taken or given back.
    await SlotStripe.filter(slot_id=slot_id).using_db(conn).update(capacity=F("capacity"))
    rows = (
        await SlotStripe.filter(slot_id=slot_id)
        .using_db(conn)
        .order_by("booked", "stripe")
        .values_list("stripe", "capacity", "booked")
    )
    booked = sum(int(b) for _, _, b in rows)
    before = sum(int(c) for _, c, _ in rows)
    target = booked if capacity is None else capacity
    if target < booked:
        raise CapacityBelowBooked(slot_id=slot_id, capacity=target, booked=booked)
    # The free seats spread evenly, the larger shares to the least booked stripes.
    extra = spread(target - booked, len(rows)) if rows else []
    by_extra: dict[int, list[int]] = {}
    for (stripe, _, _), seats in zip(rows, extra, strict=True):
        by_extra.setdefault(seats, []).append(int(stripe))
    for seats, stripes in by_extra.items():
        await (
            SlotStripe.filter(slot_id=slot_id, stripe__in=stripes)
            .using_db(conn)
            .update(capacity=F("booked") + seats)
        )
    await Slot.filter(id=slot_id).using_db(conn).update(capacity=target)
    return booked, before
