"""Booking, changing and keeping appointments (issue 11): the capacity invariant under a rush, the
combined tax appointment, the appointment centre through the outbox, cut-off, no-show policy,
the .ics file, the clerks' office scoping and the waitlist. Real database, simulators over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from icalendar import Calendar
from tortoise.transactions import in_transaction

from services.appointments.models import NO_SHOW, Appointment, Slot, WaitlistEntry
from services.appointments.seats import CapacityBelowBooked, resize
from services.clock import SHANGHAI
from services.outbox.models import OutboxMessage
from services.registry.models import Office, Person
from tests.factories import create_office, create_person
from tests.integration.citizen_support import citizen_headers
from tests.integration.test_clerk_queries import staff_headers
from tests.support.seats import booked_seats, create_slot, stripes_of, take_seats

SERVICE = "transfer"


# --- helpers ---------------------------------------------------------------------------------------


def _half_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)  # stored in UTC, as the services store times
    return moment.replace(minute=0 if moment.minute < 30 else 30, second=0, microsecond=0)


async def make_slot(
    app: Any,
    *,
    office: Office | None = None,
    capacity: int = 5,
    starts_in: timedelta = timedelta(days=3),
    released: bool = True,
    service: str = SERVICE,
) -> Slot:
    """A slot created directly (the release machinery is tested with offices and slots)."""
    office = office or await create_office()
    now = app.services.clock.now()
    starts = _half_hour(now + starts_in)
    return await create_slot(
        office=office,
        service=service,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        capacity=capacity,
        released_at=now - timedelta(hours=1) if released else now + timedelta(days=1),
    )


async def book(
    client: httpx.AsyncClient, headers: dict[str, str], slot: Slot, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/me/appointments",
        json={"slot_id": slot.id, "service": slot.service, **extra},
        headers=headers,
    )


async def seats(slot: Slot) -> tuple[int, int]:
    """(seats taken in the slot's stripes, booked appointment rows) for `slot`."""
    rows = await Appointment.filter(slot_id=slot.id, status="booked").count()
    return await booked_seats(slot.id), rows


async def wait_for(predicate: Any, *, timeout_s: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _payload(message: OutboxMessage) -> dict[str, Any]:
    value = message.payload
    return json.loads(value) if isinstance(value, str | bytes) else value


async def delivered(key: str) -> OutboxMessage | None:
    return await OutboxMessage.filter(idempotency_key=key, status="delivered").first()


# --- capacity -------------------------------------------------------------------------------------


async def test_a_rush_of_150_for_5_seats_confirms_exactly_5_and_refuses_the_rest_cleanly(app, vault):
    slot = await make_slot(app, capacity=5)
    people = [await create_person(vault=vault) for _ in range(150)]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=60, limits=limits) as client:
        answers = await asyncio.gather(*(book(client, citizen_headers(app, p), slot) for p in people))
    statuses = [r.status_code for r in answers]
    assert statuses.count(201) == 5, statuses
    refused = [r for r in answers if r.status_code != 201]
    assert all(r.status_code == 409 and r.json()["code"] == "SLOT_FULL" for r in refused), {
        (r.status_code, r.text[:120]) for r in refused
    }
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in refused)
    assert await seats(slot) == (5, 5)
    assert await Appointment.filter(slot_id=slot.id).count() == 5


async def test_a_rush_of_160_for_36_seats_over_8_stripes_confirms_exactly_36(app, vault):
    slot = await make_slot(app, capacity=36)  # 8 stripes: four of 5 seats, four of 4
    assert [c for _, c, _ in await stripes_of(slot.id)] == [5, 5, 5, 5, 4, 4, 4, 4]
    people = [await create_person(vault=vault) for _ in range(160)]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=60, limits=limits) as client:
        answers = await asyncio.gather(*(book(client, citizen_headers(app, p), slot) for p in people))
    statuses = [r.status_code for r in answers]
    assert statuses.count(201) == 36, statuses
    assert {r.json()["code"] for r in answers if r.status_code != 201} == {"SLOT_FULL"}
    stripes = await stripes_of(slot.id)
    assert all(booked == capacity for _, capacity, booked in stripes), stripes  # full, none over
    assert await seats(slot) == (36, 36)
    # Every appointment names the stripe its seat came from, as many per stripe as it has taken.
    held = await Appointment.filter(slot_id=slot.id, status="booked").values_list("stripe", flat=True)
    assert sorted(held) == sorted(s for s, _, booked in stripes for _ in range(booked))


async def test_a_cancellation_gives_the_seat_back_to_its_own_stripe(client, app, vault):
    slot = await make_slot(app, capacity=16)  # 8 stripes of 2
    people = [await create_person(vault=vault) for _ in range(5)]
    booked = [(await book(client, citizen_headers(app, p), slot)).json() for p in people]
    before = {s: b for s, _, b in await stripes_of(slot.id)}
    assert sum(before.values()) == 5
    gone = await Appointment.get(id=booked[2]["id"])
    assert gone.stripe is not None and before[gone.stripe] >= 1
    r = await client.delete(f"/api/v1/me/appointments/{gone.id}", headers=citizen_headers(app, people[2]))
    assert r.status_code == 200, r.text
    after = {s: b for s, _, b in await stripes_of(slot.id)}
    assert after == {**before, gone.stripe: before[gone.stripe] - 1}
    assert await seats(slot) == (4, 4)


async def test_the_same_person_twenty_times_at_once_gets_one_booking(app, vault):
    slot = await make_slot(app, capacity=50)
    person = await create_person(vault=vault)
    headers = citizen_headers(app, person)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=60) as client:
        answers = await asyncio.gather(*(book(client, headers, slot, case_ref="C-TWENTY") for _ in range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 1, [(r.status_code, r.text[:100]) for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code != 201} == {"APPOINTMENT_EXISTS"}
    assert await seats(slot) == (1, 1)


async def test_an_idempotent_retry_returns_the_same_booking_and_another_body_is_422(client, app, vault):
    slot = await make_slot(app, capacity=3)
    other = await make_slot(app, capacity=3)
    person = await create_person(vault=vault)
    headers = {**citizen_headers(app, person), "Idempotency-Key": f"book-{uuid.uuid4()}"}
    first = await book(client, headers, slot)
    again = await book(client, headers, slot)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and again.json()["ref"] == first.json()["ref"]
    assert await seats(slot) == (1, 1)
    changed = await book(client, headers, other)
    assert changed.status_code == 422, changed.text
    assert await seats(other) == (0, 0)


async def test_a_slot_not_released_or_past_or_of_another_service_is_not_open(client, app, vault):
    headers = citizen_headers(app, await create_person(vault=vault))
    for slot in (
        await make_slot(app, released=False),
        await make_slot(app, starts_in=timedelta(hours=-1)),
    ):
        r = await book(client, headers, slot)
        assert r.status_code == 409 and r.json()["code"] == "SLOT_NOT_OPEN", r.text
        assert await seats(slot) == (0, 0)
    slot = await make_slot(app)
    r = await client.post(
        "/api/v1/me/appointments", json={"slot_id": slot.id, "service": "mortgage"}, headers=headers
    )
    assert r.status_code == 409 and r.json()["code"] == "SLOT_NOT_OPEN"
    r = await client.post(
        "/api/v1/me/appointments", json={"slot_id": slot.id, "service": "haircut"}, headers=headers
    )
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_SERVICE"
    mortgage = await make_slot(app, service="mortgage")
    r = await book(client, headers, mortgage, with_tax=True)  # the catalogue books no tax with it
    assert r.status_code == 422 and r.json()["code"] == "TAX_NOT_OFFERED"
    assert await seats(mortgage) == (0, 0)
    r = await client.post(
        "/api/v1/me/appointments", json={"slot_id": 2**62, "service": SERVICE}, headers=headers
    )
    assert r.status_code == 404


# --- the person is told; the centre hears -------------------------------------------------------------


async def test_a_booking_is_confirmed_by_sms_reminded_the_day_before_and_reaches_the_centre(
    client, app, vault
):
    slot = await make_slot(app, starts_in=timedelta(days=4))
    person = await create_person(vault=vault)
    r = await book(client, citizen_headers(app, person), slot)
    assert r.status_code == 201, r.text
    body = r.json()
    ref = body["ref"]
    assert body["status"] == "booked" and body["office_address"] and body["service_label"] == "转移登记"
    reminder = await OutboxMessage.get(idempotency_key=f"sms.appointment_reminder:{ref}")
    local_start = slot.starts_at.astimezone(SHANGHAI)
    expected = datetime.combine(local_start.date() - timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    assert reminder.next_attempt_at == (expected + timedelta(hours=10)).astimezone(UTC)
    assert reminder.status == "pending"
    await wait_for(lambda: delivered(f"sms.appointment_booked:{ref}"), what="the confirmation SMS")
    row = await wait_for(
        lambda: Appointment.filter(ref=ref, centre_ref__isnull=False).first(), what="the centre reference"
    )
    assert row.centre_status == "pushed"
    centre = app.services.simulators.appointment_centre
    assert centre.appointments[row.centre_ref]["source_ref"] == ref


async def test_a_centre_outage_loses_nothing_and_a_cancellation_waits_for_its_push(client, app, vault):
    centre = app.services.simulators.appointment_centre
    centre.set_fault("error", operations=["push_appointment"])
    try:
        kept_person, gone_person = await create_person(vault=vault), await create_person(vault=vault)
        kept = (await book(client, citizen_headers(app, kept_person), await make_slot(app))).json()
        gone = (await book(client, citizen_headers(app, gone_person), await make_slot(app))).json()
        push = await OutboxMessage.get(idempotency_key=f"centre.push:{kept['ref']}")
        await wait_for(
            lambda: OutboxMessage.filter(id=push.id, attempts__gte=1, last_error__isnull=False).exists(),
            what="a failed push",
        )
        gone_headers = citizen_headers(app, gone_person)
        r = await client.delete(f"/api/v1/me/appointments/{gone['id']}", headers=gone_headers)
        assert r.status_code == 200, r.text
        cancel = await OutboxMessage.get(idempotency_key=f"centre.cancel:{gone['ref']}")
        gone_push = await OutboxMessage.get(idempotency_key=f"centre.push:{gone['ref']}")
        assert cancel.after_id == gone_push.id
        assert (await Appointment.get(id=kept["id"])).centre_ref is None
    finally:
        centre.clear_faults()
    row = await wait_for(
        lambda: Appointment.filter(id=kept["id"], centre_ref__isnull=False).first(),
        timeout_s=30,
        what="the push after recovery",
    )
    assert centre.appointments[row.centre_ref]["state"] == "BOOKED"
    await wait_for(lambda: delivered(f"centre.cancel:{gone['ref']}"), timeout_s=30, what="the cancellation")
    cancelled = await Appointment.get(id=gone["id"])
    at_centre = [a for a in centre.appointments.values() if a["source_ref"] == gone["ref"]]
    if cancelled.centre_ref is None:  # the push was still waiting when the cancellation came: never sent
        assert cancelled.centre_status == "not_sent" and not at_centre
    else:  # a retry of the push was already under way: it reached the centre, then the cancellation
        assert [a["state"] for a in at_centre] == ["CANCELLED"]


# --- the combined tax appointment --------------------------------------------------------------------


async def test_with_tax_both_seats_are_held(client, app, vault):
    tax = app.services.simulators.tax
    slot = await make_slot(app)
    r = await book(client, citizen_headers(app, await create_person(vault=vault)), slot, with_tax=True)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["with_tax"] and body["tax_ref"] in tax.bookings
    assert not tax.bookings[body["tax_ref"]].cancelled
    assert datetime.fromisoformat(body["tax_slot_start"]) == slot.starts_at
    # Every time in the answer is UTC, the tax office's Shanghai time included.
    assert body["tax_slot_start"].endswith(("Z", "+00:00")) and body["starts_at"].endswith(("Z", "+00:00"))


async def test_cancelling_a_combined_appointment_cancels_the_tax_side_through_the_outbox(client, app, vault):
    tax = app.services.simulators.tax
    person = await create_person(vault=vault)
    headers = citizen_headers(app, person)
    body = (await book(client, headers, await make_slot(app), with_tax=True)).json()
    r = await client.delete(f"/api/v1/me/appointments/{body['id']}", headers=headers)
    assert r.status_code == 200, r.text
    await wait_for(lambda: delivered(f"tax.cancel:{body['tax_ref']}"), what="the tax cancellation")
    assert tax.bookings[body["tax_ref"]].cancelled


async def test_a_tax_outage_leaves_no_registration_seat_and_undoes_the_tax_side(client, app, vault):
    tax = app.services.simulators.tax
    slot = await make_slot(app, capacity=2)
    person = await create_person(vault=vault)
    tax.set_fault("error", operations=["book_appointment"], count=2)  # the call and its one retry
    r = await book(client, citizen_headers(app, person), slot, with_tax=True)
    assert r.status_code == 503 and r.json()["code"] == "TAX_APPOINTMENT_FAILED", r.text
    assert await seats(slot) == (0, 0)
    assert await Appointment.filter(person_id=person.id).count() == 0
    applicant = f"P{person.id:010d}"

    async def released() -> OutboxMessage | None:
        rows = await OutboxMessage.filter(topic="tax.release_appointment", status="delivered")
        return next((m for m in rows if _payload(m)["applicant_ref"] == applicant), None)

    release = await wait_for(released, what="the tax release")
    assert release.result is not None
    assert not [b for b in tax.bookings.values() if b.applicant_ref == applicant and not b.cancelled]


async def test_a_tax_refusal_books_nothing(client, app, vault):
    tax = app.services.simulators.tax
    slot = await make_slot(app, capacity=10)
    people = [await create_person(vault=vault) for _ in range(tax.slot_capacity + 1)]
    answers = [await book(client, citizen_headers(app, p), slot, with_tax=True) for p in people]
    assert [r.status_code for r in answers[:-1]] == [201] * tax.slot_capacity
    refused = answers[-1]
    assert refused.status_code == 409 and refused.json()["code"] == "TAX_APPOINTMENT_REFUSED", refused.text
    assert refused.json()["tax_code"] == "SLOT_FULL"
    assert await seats(slot) == (tax.slot_capacity, tax.slot_capacity)


# --- changes ---------------------------------------------------------------------------------------


async def test_cancel_gives_the_seat_back_until_the_cutoff(client, app, vault):
    person = await create_person(vault=vault)
    headers = citizen_headers(app, person)
    soon = await make_slot(app, starts_in=timedelta(hours=1, minutes=50))
    later = await make_slot(app, capacity=1)
    soon_id = (await book(client, headers, soon)).json()["id"]
    later_id = (await book(client, headers, later, case_ref="C-LATER")).json()["id"]

    r = await client.delete(f"/api/v1/me/appointments/{soon_id}", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "CUTOFF_PASSED", r.text
    assert await seats(soon) == (1, 1)

    r = await client.delete(f"/api/v1/me/appointments/{later_id}", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert await seats(later) == (0, 0)
    again = await client.delete(f"/api/v1/me/appointments/{later_id}", headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "APPOINTMENT_NOT_ACTIVE"
    rebooked = await book(client, headers, later, case_ref="C-LATER")  # the active key was freed
    assert rebooked.status_code == 201, rebooked.text
    listed = (await client.get("/api/v1/me/appointments", headers=headers)).json()["items"]
    assert {a["status"] for a in listed} == {"booked", "cancelled"} and len(listed) == 3


async def test_reschedule_moves_the_seat_in_one_step_or_not_at_all(client, app, vault):
    office = await create_office()
    first = await make_slot(app, office=office, capacity=2)
    second = await make_slot(app, office=office, capacity=2, starts_in=timedelta(days=4))
    full = await make_slot(app, office=office, capacity=1, starts_in=timedelta(days=5))
    person, filler = await create_person(vault=vault), await create_person(vault=vault)
    headers = citizen_headers(app, person)
    assert (await book(client, citizen_headers(app, filler), full)).status_code == 201
    old = (await book(client, headers, first)).json()

    r = await client.post(
        f"/api/v1/me/appointments/{old['id']}/reschedule", json={"slot_id": full.id}, headers=headers
    )
    assert r.status_code == 409 and r.json()["code"] == "SLOT_FULL"
    assert await seats(first) == (1, 1) and await seats(full) == (1, 1)

    r = await client.post(
        f"/api/v1/me/appointments/{old['id']}/reschedule", json={"slot_id": second.id}, headers=headers
    )
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["rescheduled_from"] == old["id"] and new["ref"] != old["ref"]
    assert await seats(first) == (0, 0) and await seats(second) == (1, 1)
    assert (await Appointment.get(id=old["id"])).status == "cancelled"


async def test_the_calendar_file_parses_with_the_address_and_an_alarm(client, app, vault):
    office = await create_office(address="上海市浦东新区世纪大道100号")
    slot = await make_slot(app, office=office)
    person = await create_person(vault=vault)
    headers = citizen_headers(app, person)
    appointment = (await book(client, headers, slot)).json()
    r = await client.get(f"/api/v1/me/appointments/{appointment['id']}/calendar.ics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(r.content)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    assert event.decoded("dtstart") == slot.starts_at and event.decoded("dtend") == slot.ends_at
    assert "世纪大道100号" in str(event["location"])
    assert str(event["uid"]).startswith(appointment["ref"])
    alarms = list(event.walk("VALARM"))
    assert len(alarms) == 1 and alarms[0].decoded("trigger") == -timedelta(hours=1)
    other = citizen_headers(app, await create_person(vault=vault))
    r = await client.get(f"/api/v1/me/appointments/{appointment['id']}/calendar.ics", headers=other)
    assert r.status_code == 404


# --- clerks and the no-show policy ---------------------------------------------------------------------


async def test_clerks_see_and_change_only_their_own_office(client, app, vault):
    mine, theirs = await create_office(), await create_office()
    slot = await make_slot(app, office=mine, starts_in=timedelta(minutes=-5))  # started: no-show allowed
    await take_seats(slot.id, 1)
    person = await create_person(vault=vault)
    appointment = await Appointment.create(
        ref=f"T{uuid.uuid4().hex[:12]}",
        person=person,
        slot=slot,
        office_code=mine.code,
        service=SERVICE,
        active_key=f"{person.id}:{SERVICE}:-",
        created_at=app.services.clock.now(),
    )
    clerk = await staff_headers(client, office=mine.code)
    stranger = await staff_headers(client, office=theirs.code)
    day = slot.starts_at.astimezone(SHANGHAI).date().isoformat()

    listed = (await client.get("/api/v1/clerk/appointments", params={"date": day}, headers=clerk)).json()
    assert [a["id"] for a in listed["items"]] == [appointment.id]
    other = (await client.get("/api/v1/clerk/appointments", params={"date": day}, headers=stranger)).json()
    assert other["items"] == []
    for action in ("check-in", "no-show"):
        r = await client.post(f"/api/v1/clerk/appointments/{appointment.id}/{action}", headers=stranger)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    citizen = await client.post(
        f"/api/v1/clerk/appointments/{appointment.id}/check-in", headers=citizen_headers(app, person)
    )
    assert citizen.status_code == 403
    r = await client.post(f"/api/v1/clerk/appointments/{appointment.id}/no-show", headers=clerk)
    assert r.status_code == 200 and r.json()["status"] == "no_show", r.text
    r = await client.post(f"/api/v1/clerk/appointments/{appointment.id}/check-in", headers=clerk)
    assert r.status_code == 409 and r.json()["code"] == "APPOINTMENT_NOT_ACTIVE"


async def test_a_no_show_cannot_be_recorded_before_the_slot_and_check_in_frees_the_key(client, app, vault):
    office = await create_office()
    slot = await make_slot(app, office=office)
    person = await create_person(vault=vault)
    appointment = (await book(client, citizen_headers(app, person), slot)).json()
    clerk = await staff_headers(client, office=office.code)
    r = await client.post(f"/api/v1/clerk/appointments/{appointment['id']}/no-show", headers=clerk)
    assert r.status_code == 409 and r.json()["code"] == "APPOINTMENT_NOT_STARTED"
    r = await client.post(f"/api/v1/clerk/appointments/{appointment['id']}/check-in", headers=clerk)
    assert r.status_code == 200 and r.json()["status"] == "checked_in"
    assert (await Appointment.get(id=appointment["id"])).active_key is None


async def _no_shows(app: Any, person: Person, days_ago: list[int]) -> None:
    office = await create_office()
    now = app.services.clock.now()
    for n, ago in enumerate(days_ago):
        slot = await make_slot(app, office=office, starts_in=-timedelta(days=ago))
        await Appointment.create(
            ref=f"N{uuid.uuid4().hex[:12]}",
            person=person,
            slot=slot,
            office_code=office.code,
            service=f"svc{n}",
            status=NO_SHOW,
            created_at=now - timedelta(days=ago + 1),
        )


async def test_three_no_shows_in_thirty_days_block_online_booking_for_thirty_days(client, app, vault):
    blocked, spread = await create_person(vault=vault), await create_person(vault=vault)
    await _no_shows(app, blocked, [20, 10, 2])
    await _no_shows(app, spread, [70, 40, 2])  # never three within 30 days
    slot = await make_slot(app)
    r = await book(client, citizen_headers(app, blocked), slot)
    assert r.status_code == 403 and r.json()["code"] == "NO_SHOW_BLOCKED", r.text
    until = datetime.fromisoformat(r.json()["blocked_until"])
    last = (await Slot.filter(appointments__person_id=blocked.id).order_by("-starts_at").first()).starts_at
    assert until == last + timedelta(days=30)
    assert await seats(slot) == (0, 0)
    assert (await book(client, citizen_headers(app, spread), slot)).status_code == 201


# --- the waitlist ---------------------------------------------------------------------------------------


async def test_a_freed_seat_is_held_for_the_first_waiting_and_passes_on_when_the_offer_expires(
    client, app, vault
):
    slot = await make_slot(app, capacity=1)
    holder, first, second = [await create_person(vault=vault) for _ in range(3)]
    held = (await book(client, citizen_headers(app, holder), slot)).json()
    for person in (first, second):
        headers = citizen_headers(app, person)
        r = await client.post("/api/v1/me/appointments/waitlist", json={"slot_id": slot.id}, headers=headers)
        assert r.status_code == 201 and r.json()["status"] == "waiting", r.text
    r = await client.delete(f"/api/v1/me/appointments/{held['id']}", headers=citizen_headers(app, holder))
    assert r.status_code == 200
    assert await booked_seats(slot.id) == 1  # held for the first in line, not given back
    offer = await WaitlistEntry.get(slot_id=slot.id, person_id=first.id)
    assert offer.status == "offered"
    outsider = await book(client, citizen_headers(app, await create_person(vault=vault)), slot)
    assert outsider.status_code == 409 and outsider.json()["code"] == "SLOT_FULL"

    app.services.clock.advance(seconds=app.services.settings.waitlist_offer_ttl_s + 1)
    second_entry = await wait_for(
        lambda: WaitlistEntry.filter(slot_id=slot.id, person_id=second.id, status="offered").first(),
        what="the offer passing on",
    )
    assert (await WaitlistEntry.get(id=offer.id)).status == "expired"
    late = await client.post(
        f"/api/v1/me/appointments/waitlist/{offer.id}/accept", headers=citizen_headers(app, first)
    )
    assert late.status_code == 409 and late.json()["code"] == "NO_WAITLIST_OFFER"
    r = await client.post(
        f"/api/v1/me/appointments/waitlist/{second_entry.id}/accept", headers=citizen_headers(app, second)
    )
    assert r.status_code == 201, r.text
    assert await seats(slot) == (1, 1)


async def test_people_booked_on_a_day_the_office_closes_are_told_and_keep_their_booking(client, app, vault):
    slot = await make_slot(app, capacity=3)
    person = await create_person(vault=vault)
    r = await book(client, citizen_headers(app, person), slot)
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    admin = await staff_headers(client, role="admin")
    day = slot.starts_at.astimezone(SHANGHAI).date()
    r = await client.post(
        f"/api/v1/admin/offices/{slot.office_id}/closures",  # type: ignore[attr-defined]
        json={"day": day.isoformat(), "reason": "设备检修"},
        headers=admin,
    )
    assert r.status_code in (200, 201), r.text
    assert (await Slot.get(id=slot.id)).capacity == 1  # nobody else can book the closed day
    sms = await wait_for(lambda: delivered(f"sms.office_closed:{ref}:{day.isoformat()}"), what="the SMS")
    assert _payload(sms)["template"] == "appointment_office_closed"
    inbox = (await client.get("/api/v1/me/messages", headers=citizen_headers(app, person))).json()["items"]
    assert any(m["data"].get("event") == "office_closed" and m["data"].get("ref") == ref for m in inbox)
    assert (await Appointment.get(ref=ref)).status == "booked"


async def test_a_capacity_change_rebalances_the_stripes_and_never_goes_below_what_is_booked(app):
    slot = await make_slot(app, capacity=6)  # 6 stripes of 1
    await take_seats(slot.id, 4)
    with pytest.raises(CapacityBelowBooked):
        async with in_transaction() as conn:
            await resize(conn, slot.id, 3)
    assert await booked_seats(slot.id) == 4 and (await Slot.get(id=slot.id)).capacity == 6
    async with in_transaction() as conn:
        assert await resize(conn, slot.id, 20) == (4, 6)  # grows to 8 stripes
    stripes = await stripes_of(slot.id)
    assert len(stripes) == 8 and sum(c for _, c, _ in stripes) == 20 == (await Slot.get(id=slot.id)).capacity
    assert all(b <= c for _, c, b in stripes) and sum(b for _, _, b in stripes) == 4
    free = sorted(c - b for _, c, b in stripes)
    assert free[-1] - free[0] <= 1, stripes  # the free seats spread evenly
    assert await take_seats(slot.id) == 16  # exactly the new capacity, no more
    async with in_transaction() as conn:
        assert await resize(conn, slot.id, None) == (20, 20)  # closing a full slot changes nothing
    assert all(c == b for _, c, b in await stripes_of(slot.id))
