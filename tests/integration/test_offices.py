"""Offices and slots (docs/appointments.md, "Offices and slots") on the running app: the public
listing and day query, the release rule on the app's clock, closures, and the admin routes'
validation and guards."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from services.appointments.models import Slot
from services.appointments.slots import release_due_slots
from services.clock import SHANGHAI
from tests.factories import DEFAULT_STAFF_PASSWORD, create_office, create_person, create_staff
from tests.integration.citizen_support import citizen_headers
from tests.support.seats import take_seats

ALL_DAYS = {
    d: [["09:00", "12:00"], ["13:30", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
TEMPLATE = {
    "service": "transfer",
    "weekdays": [0, 1, 2, 3, 4, 5, 6],
    "day_start": "09:00",
    "day_end": "17:00",
    "duration_min": 30,
    "capacity": 4,
    "release_days_ahead": 2,
    "release_at": "08:00",
}


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    admin = await create_staff(role="admin", office_code=None)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": admin.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def today(app: Any) -> date:
    return app.services.clock.now().astimezone(SHANGHAI).date()


def release_moment(app: Any) -> timedelta:
    """From now to tomorrow 08:00 Shanghai: when a 2-days-ahead template releases today + 3."""
    now = app.services.clock.now()
    at = datetime.combine(today(app) + timedelta(days=1), time(8)).replace(tzinfo=SHANGHAI)
    return at - now


async def set_up_office(
    client: httpx.AsyncClient, admin: dict[str, str], *, district: str = "310116", **template: Any
) -> str:
    office = await create_office(district_code=district)
    base = f"/api/v1/admin/offices/{office.code}"
    r = await client.put(
        f"{base}/timetable",
        json={"opening_hours": ALL_DAYS, "services": ["transfer", "certificate"], "phone": "021-1"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"{base}/slot-templates", json={**TEMPLATE, **template}, headers=admin)
    assert r.status_code == 201, r.text
    return office.code


async def day_slots(client: httpx.AsyncClient, code: str, day: date, service: str = "transfer") -> Any:
    r = await client.get(
        f"/api/v1/offices/{code}/slots", params={"date": day.isoformat(), "service": service}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_slots_appear_only_at_their_release_time(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin)
    target = today(app) + timedelta(days=3)

    r = await client.post(f"/api/v1/admin/offices/{code}/slot-releases", headers=admin)
    assert r.status_code == 200, r.text
    assert (await day_slots(client, code, target))["slots"] == []  # released tomorrow at 08:00
    assert not await Slot.filter(office_id=code, starts_at__gte=_start(target)).exists()

    app.services.clock.advance(seconds=release_moment(app).total_seconds() - 60)
    await release_due_slots(now=app.services.clock.now())
    assert (await day_slots(client, code, target))["slots"] == []  # one minute early

    app.services.clock.advance(seconds=60)
    await release_due_slots(now=app.services.clock.now())
    day = await day_slots(client, code, target)
    starts = [s["starts_at"][11:16] for s in day["slots"]]
    assert starts == [
        f"{h:02d}:{m:02d}" for h, m in [(9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (11, 30)]
    ] + [f"{h:02d}:{m:02d}" for h, m in [(13, 30), (14, 0), (14, 30), (15, 0), (15, 30), (16, 0), (16, 30)]]
    assert day["slots"][0]["starts_at"] == f"{target.isoformat()}T09:00:00+08:00"
    assert all(s["remaining"] == s["capacity"] == 4 for s in day["slots"])
    # Releasing again (the background task, an admin, the public query) makes nothing twice.
    assert await release_due_slots(now=app.services.clock.now(), office_code=code) == 0
    assert (
        await Slot.filter(
            office_id=code, starts_at__gte=_start(target), starts_at__lt=_start(target, 1)
        ).count()
        == 13
    )


def _start(day: date, plus: int = 0) -> datetime:
    return datetime.combine(day + timedelta(days=plus), time(0)).replace(tzinfo=SHANGHAI)


async def test_remaining_seats_and_full_slots(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin, release_days_ahead=5)
    target = today(app) + timedelta(days=2)
    slots = (await day_slots(client, code, target))["slots"]
    assert len(slots) == 13
    await take_seats(slots[0]["id"], 3)
    await take_seats(slots[1]["id"], 4)
    after = {s["id"]: s for s in (await day_slots(client, code, target))["slots"]}
    assert after[slots[0]["id"]]["remaining"] == 1
    assert slots[1]["id"] not in after  # full: not offered
    assert len(after) == 12


async def test_listing_filters_and_shows_the_next_free_slot(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin, district="310151", release_days_ahead=3)
    other = await set_up_office(client, admin, district="310120", release_days_ahead=3)
    await release_due_slots(now=app.services.clock.now())
    # Fill every slot but the last of the last released day: that is the next free one.
    slots = await Slot.filter(office_id=code, service="transfer").order_by("starts_at")
    keep = slots[-1]
    for slot_id in await Slot.filter(office_id=code).exclude(id=keep.id).values_list("id", flat=True):
        await take_seats(slot_id)  # type: ignore[arg-type]  # until full

    r = await client.get("/api/v1/offices", params={"district": "310151", "service": "transfer"})
    assert r.status_code == 200, r.text
    body = r.json()
    mine = {o["code"]: o for o in body["items"]}
    assert code in mine and other not in mine
    assert all(o["district_code"] == "310151" and "transfer" in o["services"] for o in body["items"])
    assert datetime.fromisoformat(mine[code]["next_free_slot"]) == keep.starts_at
    assert mine[code]["next_free_slot"].endswith("+08:00")
    assert mine[code]["opening_hours"]["mon"] == [["09:00", "12:00"], ["13:30", "17:00"]]
    assert {s["code"] for s in body["services"]} >= {"registration", "transfer", "mortgage", "certificate"}

    r = await client.get("/api/v1/offices", params={"district": "310151", "service": "mortgage"})
    assert code not in {o["code"] for o in r.json()["items"]}  # not offered there
    r = await client.get("/api/v1/offices", params={"district": "310151", "service": "certificate"})
    listed = {o["code"]: o for o in r.json()["items"]}
    assert listed[code]["next_free_slot"] is None  # offered, but no template: no slots

    await take_seats(keep.id)
    r = await client.get("/api/v1/offices", params={"district": "310151"})
    assert {o["code"]: o for o in r.json()["items"]}[code]["next_free_slot"] is None


async def test_closures_make_no_slots_and_close_released_ones(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin, release_days_ahead=6)
    base = f"/api/v1/admin/offices/{code}"
    holiday, training = today(app) + timedelta(days=2), today(app) + timedelta(days=3)

    r = await client.post(
        f"{base}/closures", json={"day": holiday.isoformat(), "reason": "元旦"}, headers=admin
    )
    assert r.status_code == 200, r.text
    day = await day_slots(client, code, holiday)
    assert day["slots"] == [] and day["closed"] == "元旦"
    await release_due_slots(now=app.services.clock.now())
    assert not await Slot.filter(
        office_id=code, starts_at__gte=_start(holiday), starts_at__lt=_start(holiday, 1)
    ).exists()

    # A day already released: its slots close, seats already booked are counted.
    released = (await day_slots(client, code, training))["slots"]
    assert len(released) == 13
    await take_seats(released[0]["id"], 2)
    r = await client.post(
        f"{base}/closures", json={"day": training.isoformat(), "reason": "培训"}, headers=admin
    )
    assert r.json()["slots_closed"] == 13 and r.json()["booked_seats"] == 2
    assert (await day_slots(client, code, training))["slots"] == []
    assert (await client.get(base, headers=admin)).json()["closures"][-1]["day"] == training.isoformat()

    r = await client.delete(f"{base}/closures/{training.isoformat()}", headers=admin)
    assert r.status_code == 204, r.text
    reopened = (await day_slots(client, code, training))["slots"]
    assert len(reopened) == 13 and reopened[0]["remaining"] == 2
    r = await client.delete(f"{base}/closures/{training.isoformat()}", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "CLOSURE_NOT_FOUND"


async def test_deactivated_template_releases_nothing_more(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin, release_days_ahead=2)
    template_id = (await client.get(f"/api/v1/admin/offices/{code}", headers=admin)).json()["templates"][0][
        "id"
    ]
    r = await client.patch(
        f"/api/v1/admin/offices/{code}/slot-templates/{template_id}", json={"active": False}, headers=admin
    )
    assert r.status_code == 200 and r.json()["active"] is False
    app.services.clock.advance(seconds=release_moment(app).total_seconds())
    await release_due_slots(now=app.services.clock.now())
    assert (await day_slots(client, code, today(app) + timedelta(days=2)))["slots"] == []


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/offices/OFF-NOPE/slots", {"service": "transfer"}, 404, "OFFICE_NOT_FOUND"),
        ("/api/v1/offices/OFF-310115-01/slots", {"service": "haircut"}, 422, "UNKNOWN_SERVICE"),
        (
            "/api/v1/offices/OFF-310115-01/slots",
            {"service": "transfer", "date": "2026-13-01"},
            422,
            "VALIDATION_FAILED",
        ),
        (
            "/api/v1/offices/OFF-310115-01/slots",
            {"service": "transfer", "date": "2020-01-01"},
            422,
            "DATE_OUT_OF_RANGE",
        ),
        ("/api/v1/offices/OFF-310115-01/slots", {"date": "today"}, 422, "VALIDATION_FAILED"),
        ("/api/v1/offices", {"district": "31011"}, 422, "VALIDATION_FAILED"),
        ("/api/v1/offices", {"service": "haircut"}, 422, "UNKNOWN_SERVICE"),
    ],
)
async def test_public_queries_refuse_bad_input(client, app, path, params, status, code) -> None:
    if path.endswith("/slots"):
        params = {"date": (today(app) + timedelta(days=1)).isoformat(), **params}
    r = await client.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"day_start": "9:00"}, "day_start"),
        ({"day_end": "08:30"}, "day_end"),
        ({"duration_min": 45}, "duration_min"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 501}, "capacity"),
        ({"weekdays": [7]}, "weekdays"),
    ],
)
async def test_admin_template_validation(client, app, change, field) -> None:
    admin = await admin_headers(client)
    office = await create_office()
    r = await client.post(
        f"/api/v1/admin/offices/{office.code}/slot-templates", json={**TEMPLATE, **change}, headers=admin
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "INVALID_SCHEDULE" and r.json()["field"] == field


async def test_admin_timetable_validation_and_unknown_things(client, app) -> None:
    admin = await admin_headers(client)
    office = await create_office()
    base = f"/api/v1/admin/offices/{office.code}"
    cases = [
        ({"opening_hours": {"mon": [["09:00", "25:00"]]}, "services": []}, "INVALID_SCHEDULE"),
        ({"opening_hours": {"mon": [["12:00", "09:00"]]}, "services": []}, "INVALID_SCHEDULE"),
        ({"opening_hours": {"funday": [["09:00", "12:00"]]}, "services": []}, "INVALID_SCHEDULE"),
        ({"opening_hours": {}, "services": ["haircut"]}, "UNKNOWN_SERVICE"),
        ({"opening_hours": {}, "services": ["transfer", "transfer"]}, "VALIDATION_FAILED"),
    ]
    for body, code in cases:
        r = await client.put(f"{base}/timetable", json=body, headers=admin)
        assert (r.status_code, r.json()["code"]) == (422, code), (body, r.text)
    r = await client.post(f"{base}/slot-templates", json={**TEMPLATE, "service": "haircut"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (422, "UNKNOWN_SERVICE")
    r = await client.put(
        "/api/v1/admin/offices/OFF-NOPE/timetable", json=cases[0][0] | {"opening_hours": {}}, headers=admin
    )
    assert (r.status_code, r.json()["code"]) == (404, "OFFICE_NOT_FOUND")
    r = await client.patch(f"{base}/slot-templates/{2**63 - 1}", json={"active": False}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (404, "SLOT_TEMPLATE_NOT_FOUND")


async def test_admin_routes_need_an_administrator(client, app, vault) -> None:
    office = await create_office()
    citizen = citizen_headers(app, await create_person(vault=vault))
    clerk = await create_staff(role="clerk")
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": clerk.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    clerk_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    path = f"/api/v1/admin/offices/{office.code}/slot-releases"
    assert (await client.post(path)).status_code == 401
    for headers in (citizen, clerk_headers):
        r = await client.post(path, headers=headers)
        assert (r.status_code, r.json()["code"]) == (403, "PERMISSION_DENIED")


async def test_concurrent_releases_make_each_slot_once(client, app) -> None:
    admin = await admin_headers(client)
    code = await set_up_office(client, admin, release_days_ahead=2)
    target = today(app) + timedelta(days=3)  # released tomorrow at 08:00
    app.services.clock.advance(seconds=release_moment(app).total_seconds())
    now = app.services.clock.now()
    made = await asyncio.gather(*(release_due_slots(now=now, office_code=code) for _ in range(8)))
    count = await Slot.filter(
        office_id=code, starts_at__gte=_start(target), starts_at__lt=_start(target, 1)
    ).count()
    assert count == 13
    assert sum(made) >= 13  # several callers may each have found a slot missing; the database kept one
    assert await Slot.filter(office_id=code).count() == len(
        {s.starts_at for s in await Slot.filter(office_id=code)}
    )


async def test_an_office_code_longer_than_any_is_not_found_not_a_server_error(client):
    """Found by the fuzzer: Sanic hands over the undecoded path segment (21 characters here)."""
    r = await client.get("/api/v1/offices/%C3%9A%11%F2%94%B6%B2/slots", params={"service": "mortgage"})
    assert r.status_code == 404 and r.json()["code"] == "OFFICE_NOT_FOUND", r.text
