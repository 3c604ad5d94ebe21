"""A waitlist per slot: a freed seat goes to the first person waiting, who has a short time to take it.

Invariant: a seat freed while someone waits is not given back to the slot but held for the person
offered it (its stripe's `booked` stays, and the entry keeps the stripe, seats.py), so a rush of
bookers cannot take it from under them. The hold ends one of two ways, each a conditional update
on the entry's status (`offered` -> `accepted` or `expired`), so exactly one happens: the person
books it (`accept`, no seat is taken again: the appointment gets the entry's stripe), or the offer
expires and passes to the next in line with the same stripe, or, when nobody else waits, the seat
goes back to that stripe.
Expiry is a scheduled outbox message (`not_before` = the offer's end), so no extra poller is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services.appointments.models import Slot, WaitlistEntry
from services.appointments.policy import AppointmentPolicy
from services.appointments.seats import give_back_seat
from services.appointments.topics import WAITLIST_EXPIRE, WaitlistExpiry
from services.clock import SHANGHAI, Clock
from services.errors import NotFound, NoWaitlistOffer, SlotNotOpen
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue

WAITING = "waiting"
OFFERED = "offered"
ACCEPTED = "accepted"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class WaitlistView:
    id: int
    slot_id: int
    service: str
    status: str  # waiting | offered | accepted | expired
    offered_until: datetime | None
    created_at: datetime


def waitlist_view(entry: WaitlistEntry) -> WaitlistView:
    return WaitlistView(
        id=entry.id,
        slot_id=entry.slot_id,  # type: ignore[attr-defined]
        service=entry.service,
        status=entry.status,
        offered_until=entry.offered_until,
        created_at=entry.created_at,
    )


async def join(*, person_id: int, slot_id: int, clock: Clock) -> WaitlistView:
    """Wait for a seat in `slot_id`; joining twice returns the same entry."""
    now = clock.now()
    slot = await Slot.get_or_none(id=slot_id)
    if slot is None:
        raise NotFound(slot_id=slot_id)
    if slot.starts_at <= now or slot.released_at > now:
        raise SlotNotOpen(slot_id=slot_id)
    try:
        entry = await WaitlistEntry.create(
            slot_id=slot_id, person_id=person_id, service=slot.service, status=WAITING, created_at=now
        )
    except IntegrityError:
        entry = await WaitlistEntry.get(slot_id=slot_id, person_id=person_id)
    return waitlist_view(entry)


async def offer_freed_seat(
    conn: BaseDBAsyncClient, slot: Slot, stripe: int | None, *, policy: AppointmentPolicy, clock: Clock
) -> bool:
    """Hold the seat just freed in `slot`'s `stripe` for the first person waiting; False if nobody
    waits (the caller gives the seat back)."""
    now = clock.now()
    if slot.starts_at <= now:
        return False
    candidates = (
        await WaitlistEntry.filter(slot_id=slot.id, status=WAITING).using_db(conn).order_by("id").limit(5)
    )
    until = now + timedelta(seconds=policy.waitlist_offer_ttl_s)
    for entry in candidates:
        taken = (
            await WaitlistEntry.filter(id=entry.id, status=WAITING)
            .using_db(conn)
            .update(status=OFFERED, offered_until=until, stripe=stripe)
        )
        if taken == 1:
            await _tell_offer(conn, entry, slot, until=until, policy=policy, clock=clock)
            return True
    return False


async def _tell_offer(
    conn: BaseDBAsyncClient,
    entry: WaitlistEntry,
    slot: Slot,
    *,
    until: datetime,
    policy: AppointmentPolicy,
    clock: Clock,
) -> None:
    person_id: int = entry.person_id  # type: ignore[attr-defined]
    local = slot.starts_at.astimezone(SHANGHAI)
    office = slot.office  # fetched by the caller (select_related)
    params = {
        "date": f"{local:%Y-%m-%d}",
        "time": f"{local:%H:%M}",
        "office": office.name,
        "minutes": str(max(1, policy.waitlist_offer_ttl_s // 60)),
    }
    await enqueue(
        topic=SMS_SEND,
        payload=sms_to_person(person_id=person_id, template="waitlist_offer", params=params),
        idempotency_key=f"sms.waitlist_offer:{entry.id}",
        connection=conn,
        clock=clock,
    )
    await post_message(
        person_id=person_id,
        kind="appointment",
        title="候补名额待确认",
        body=(
            f"您候补的{params['date']} {params['time']}{office.name}预约有空位了，"
            f"请在{params['minutes']}分钟内确认。"
        ),
        data={"event": "waitlist_offer", "waitlist_id": entry.id, "slot_id": slot.id},
        clock=clock,
        connection=conn,
    )
    await enqueue(
        topic=WAITLIST_EXPIRE,
        payload=WaitlistExpiry(entry_id=entry.id, offered_until=until),
        idempotency_key=f"waitlist.expire:{entry.id}",
        connection=conn,
        clock=clock,
        not_before=until,
    )


async def take_offer(
    conn: BaseDBAsyncClient, *, person_id: int, entry_id: int, now: datetime
) -> WaitlistEntry:
    """offered -> accepted, in the caller's transaction (which books the held seat)."""
    entry = await WaitlistEntry.filter(id=entry_id, person_id=person_id).using_db(conn).first()
    if entry is None:
        raise NotFound()
    taken = (
        await WaitlistEntry.filter(id=entry_id, status=OFFERED, offered_until__gt=now)
        .using_db(conn)
        .update(status=ACCEPTED)
    )
    if taken != 1:
        raise NoWaitlistOffer(status=entry.status)
    entry.status = ACCEPTED
    return entry


async def expire_offer(p: WaitlistExpiry, *, policy: AppointmentPolicy, clock: Clock) -> dict[str, str]:
    """The outbox handler of WAITLIST_EXPIRE: an offer still open passes to the next person, or
    its seat goes back to the slot."""
    async with in_transaction() as conn:
        entry = (
            await WaitlistEntry.filter(id=p.entry_id).using_db(conn).select_related("slot__office").first()
        )
        if entry is None:
            return {"outcome": "gone"}
        expired = (
            await WaitlistEntry.filter(id=p.entry_id, status=OFFERED, offered_until__lte=clock.now())
            .using_db(conn)
            .update(status=EXPIRED)
        )
        if expired != 1:
            return {"outcome": entry.status}
        if not await offer_freed_seat(conn, entry.slot, entry.stripe, policy=policy, clock=clock):
            await give_back_seat(conn, entry.slot.id, entry.stripe)
        return {"outcome": EXPIRED}
