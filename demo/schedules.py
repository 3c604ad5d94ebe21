"""Demo timetables, services, closures and slot templates of the 17 demo offices (illustrative).

Every office opens Monday to Friday 09:00-12:00 and 13:30-17:00; the Pudong centre also opens on
Saturday mornings. Every office offers every service of config/appointments.toml except the
Zhangjiang branch, which offers mortgages and certificates only. Slots: transfers in 30-minute
slots of 4 seats and mortgages of 3, registrations in hour slots of 6, certificates in 15-minute
slots of 2; released 14 days ahead at 08:00 (certificates 7 days ahead). New Year's Day 2027 is a
closure everywhere. Written only where an office has no timetable yet, so seeding again (or after
an administrator changed a timetable) changes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from demo.places import OFFICES
from services.appointments.models import OfficeClosure, OfficeTimetable, SlotTemplate

WEEKDAY_HOURS = [["09:00", "12:00"], ["13:30", "17:00"]]
SATURDAY_OFFICE = "OFF-310115-01"
BRANCH_SERVICES = {"OFF-310115-02": ["mortgage", "certificate"]}
ALL_SERVICES = ["registration", "transfer", "mortgage", "certificate"]
# service -> (duration_min, capacity, release_days_ahead)
TEMPLATES: dict[str, tuple[int, int, int]] = {
    "registration": (60, 6, 14),
    "transfer": (30, 4, 14),
    "mortgage": (30, 3, 14),
    "certificate": (15, 2, 7),
}
HOLIDAYS = ((date(2027, 1, 1), "元旦"),)
PHONE = "021-12345"  # illustrative: the city's service hotline


def office_timetable(code: str) -> dict[str, Any]:
    hours: dict[str, list[list[str]]] = {day: WEEKDAY_HOURS for day in ("mon", "tue", "wed", "thu", "fri")}
    if code == SATURDAY_OFFICE:
        hours["sat"] = [["09:00", "12:00"]]
    return {"opening_hours": hours, "services": BRANCH_SERVICES.get(code, ALL_SERVICES), "phone": PHONE}


def office_templates(code: str) -> list[dict[str, Any]]:
    weekdays = [0, 1, 2, 3, 4, 5] if code == SATURDAY_OFFICE else [0, 1, 2, 3, 4]
    return [
        {
            "service": service,
            "weekdays": weekdays,
            "day_start": "09:00",
            "day_end": "17:00",
            "duration_min": duration,
            "capacity": capacity,
            "release_days_ahead": ahead,
            "release_at": "08:00",
        }
        for service in office_timetable(code)["services"]
        for duration, capacity, ahead in [TEMPLATES[service]]
    ]


async def write_schedules(conn: BaseDBAsyncClient) -> int:
    """Timetables, templates and holidays of the demo offices that have no timetable yet; returns
    how many offices were set up."""
    have = set(await OfficeTimetable.all().using_db(conn).values_list("office_id", flat=True))
    todo = [code for code, *_ in OFFICES if code not in have]
    if not todo:
        return 0
    await OfficeTimetable.bulk_create(
        [OfficeTimetable(office_id=code, **office_timetable(code)) for code in todo], using_db=conn
    )
    templates = [SlotTemplate(office_id=code, **spec) for code in todo for spec in office_templates(code)]
    await SlotTemplate.bulk_create(templates, using_db=conn)
    await OfficeClosure.bulk_create(
        [OfficeClosure(office_id=code, day=day, reason=reason) for code in todo for day, reason in HOLIDAYS],
        using_db=conn,
        ignore_conflicts=True,
    )
    return len(todo)
