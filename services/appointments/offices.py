"""Registration offices for appointments: the service catalogue, public availability, and the
administrators' timetables, closures and slot templates.

Availability is public information (issue 11): the reads here return only offices, hours and
counts of free seats, never who booked. A seat is free when its slot is bookable
(`released_at <= now < starts_at`, slots.py) and one of the slot's stripes has `booked < capacity`
(seats.py); the listing finds every office's next free slot in one grouped query, not one per
office, and a day's remaining seats in one grouped query over the stripes.

Closing a day (`add_closure`) gives each released slot of the day exactly the seats taken
(`seats.resize`: every stripe's `capacity = booked`, under the stripes' lock), so no booking can win
a seat there afterwards while appointments already made stay visible to clerks; reopening gives
the slots their template's capacity back, spread over the stripes, except a slot that has more
seats taken than that (it keeps what it has).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated

from pydantic import Field
from tortoise.functions import Min
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from services.appointments.models import (
    OfficeClosure,
    OfficeTimetable,
    Slot,
    SlotTemplate,
)
from services.appointments.notices import tell_booked_of_closure
from services.appointments.seats import CapacityBelowBooked, resize, seats_of, with_free_seat
from services.appointments.slots import (
    MAX_DAYS_AHEAD,
    OpeningHours,
    ServiceCatalogue,
    TemplateRule,
    normalise_opening_hours,
    release_due_slots,
    shanghai_day_bounds,
)
from services.clock import SHANGHAI, Clock
from services.errors import NotFound, ValidationFailed
from services.registry.models import Office


class OfficeNotFound(NotFound):
    code = "OFFICE_NOT_FOUND"
    title_zh = "未找到该登记窗口"
    title_en = "No such registration office"


class SlotTemplateNotFound(NotFound):
    code = "SLOT_TEMPLATE_NOT_FOUND"
    title_zh = "未找到该时段模板"
    title_en = "No such slot template at this office"


class ClosureNotFound(NotFound):
    code = "CLOSURE_NOT_FOUND"
    title_zh = "该日期没有闭馆安排"
    title_en = "The office has no closure on that day"


class DateOutOfRange(ValidationFailed):
    code = "DATE_OUT_OF_RANGE"
    title_zh = "日期应为今天起 60 天内"
    title_en = "The date must be from today to 60 days ahead"


# --- public reads --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfficeSummary:
    code: str
    name: str
    district_code: str
    address: str
    phone: str | None
    services: list[str]
    opening_hours: Annotated[
        dict[str, list[list[str]]],
        Field(description='Shanghai time by weekday, e.g. {"mon": [["09:00", "12:00"], ["13:30", "17:00"]]}'),
    ]
    next_free_slot: Annotated[
        datetime | None, Field(description="start of the earliest bookable slot with a free seat (+08:00)")
    ]


@dataclass(frozen=True, slots=True)
class FreeSlot:
    id: int
    service: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    remaining: int


@dataclass(frozen=True, slots=True)
class OfficeDay:
    office_code: str
    day: date
    service: str
    closed: Annotated[str | None, Field(description="why the office is closed that day, if it is")]
    slots: list[FreeSlot]


def _bookable(now: datetime, service: str | None = None) -> QuerySet[Slot]:
    query = with_free_seat(Slot.filter(released_at__lte=now, starts_at__gt=now))
    return query.filter(service=service) if service is not None else query


async def list_offices(
    *, now: datetime, catalogue: ServiceCatalogue, district: str | None = None, service: str | None = None
) -> list[OfficeSummary]:
    """Offices with a timetable, by code, filtered by district and service, each with its next
    free slot (of `service`, or of any service). Three queries whatever the number of offices."""
    if service is not None:
        catalogue.get(service)
    timetables = {t.office_id: t for t in await OfficeTimetable.all()}  # type: ignore[attr-defined]
    offices = Office.filter(code__in=list(timetables))
    if district is not None:
        offices = offices.filter(district_code=district)
    rows = await offices.order_by("code")
    if service is not None:
        rows = [o for o in rows if service in timetables[o.code].services]
    firsts = (
        await _bookable(now, service)
        .filter(office_id__in=[o.code for o in rows])
        .annotate(first=Min("starts_at"))
        .group_by("office_id")
        .values_list("office_id", "first")
    )
    next_free = {code: first for code, first in firsts}
    return [
        OfficeSummary(
            code=o.code,
            name=o.name,
            district_code=o.district_code,
            address=o.address,
            phone=timetables[o.code].phone,
            services=list(timetables[o.code].services),
            opening_hours=dict(timetables[o.code].opening_hours),
            next_free_slot=_local(next_free.get(o.code)),
        )
        for o in rows
    ]


async def office_day(
    *, office_code: str, day: date | None, service: str, now: datetime, catalogue: ServiceCatalogue
) -> OfficeDay:
    """The bookable slots of one office, day and service with a free seat, in time order.

    Releases that day's due slots of the office first (cheap: one read when they exist), so a
    citizen who asks the moment slots open sees them without waiting for the background tick."""
    catalogue.get(service)
    today = now.astimezone(SHANGHAI).date()
    day = day or today
    if not today <= day <= today + timedelta(days=MAX_DAYS_AHEAD):
        raise DateOutOfRange(field="date", today=today.isoformat())
    office = await _office(office_code)
    closure = await OfficeClosure.get_or_none(office_id=office.code, day=day)
    if closure is None:
        await release_due_slots(now=now, office_code=office.code, service=service, day=day)
    start, end = shanghai_day_bounds(day)
    slots = await (
        _bookable(now, service)
        .filter(office_id=office.code, starts_at__gte=start, starts_at__lt=end)
        .order_by("starts_at")
    )
    seats = await seats_of([s.id for s in slots])
    return OfficeDay(
        office_code=office.code,
        day=day,
        service=service,
        closed=closure.reason if closure else None,
        slots=[
            FreeSlot(
                s.id,
                s.service,
                s.starts_at.astimezone(SHANGHAI),
                s.ends_at.astimezone(SHANGHAI),
                *seats[s.id],
            )
            for s in slots
            if seats.get(s.id, (0, 0))[1] > 0  # filled since the first query: not offered
        ],
    )


def _local(value: datetime | None) -> datetime | None:
    return value.astimezone(SHANGHAI) if value is not None else None


_CODE_MAX = Office._meta.fields_map["code"].max_length  # type: ignore[attr-defined]


async def _office(code: str) -> Office:
    # A code longer than any office's cannot name one (and would not fit the column's filter).
    office = await Office.get_or_none(code=code) if len(code) <= _CODE_MAX else None
    if office is None:
        raise OfficeNotFound(office_code=code)
    return office


# --- administration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimetableView:
    office_code: str
    opening_hours: dict[str, list[list[str]]]
    services: list[str]
    phone: str | None


@dataclass(frozen=True, slots=True)
class ClosureView:
    day: date
    reason: str
    slots_closed: Annotated[int, Field(description="released slots of that day now closed to booking")]
    booked_seats: Annotated[
        int, Field(description="seats already booked in them: those citizens need telling")
    ]


@dataclass(frozen=True, slots=True)
class TemplateView:
    id: int
    office_code: str
    service: str
    weekdays: list[int]
    day_start: str
    day_end: str
    duration_min: int
    capacity: int
    release_days_ahead: int
    release_at: str
    active: bool


def _template_view(t: SlotTemplate) -> TemplateView:
    return TemplateView(
        t.id,
        t.office_id,  # type: ignore[attr-defined]
        t.service,
        list(t.weekdays),
        t.day_start,
        t.day_end,
        t.duration_min,
        t.capacity,
        t.release_days_ahead,
        t.release_at,
        t.active,
    )


async def set_timetable(
    *,
    office_code: str,
    opening_hours: OpeningHours,
    services: Sequence[str],
    phone: str | None,
    catalogue: ServiceCatalogue,
) -> TimetableView:
    """Replace an office's weekly hours and services. Slots already released keep their times;
    later releases follow the new hours."""
    hours = normalise_opening_hours(opening_hours)
    codes = catalogue.check(services)
    office = await _office(office_code)
    await OfficeTimetable.update_or_create(
        defaults={"opening_hours": hours, "services": codes, "phone": phone}, office_id=office.code
    )
    return TimetableView(office.code, hours, codes, phone)


async def add_closure(*, office_code: str, day: date, reason: str, clock: Clock) -> ClosureView:
    """Close an office on `day` (idempotent per day: the reason is updated)."""
    now = clock.now()
    if day < now.astimezone(SHANGHAI).date():
        raise DateOutOfRange("不能为过去的日期设置闭馆", "A closure cannot be in the past", field="day")
    office = await _office(office_code)
    start, end = shanghai_day_bounds(day)
    async with in_transaction() as conn:
        await OfficeClosure.update_or_create(defaults={"reason": reason}, office_id=office.code, day=day)
        closed = booked = 0
        day_slots = Slot.filter(office_id=office.code, starts_at__gte=start, starts_at__lt=end)
        for slot_id in await day_slots.order_by("id").values_list("id", flat=True):
            taken, before = await resize(conn, slot_id, None)  # type: ignore[arg-type]
            closed += taken < before
            booked += taken
        await tell_booked_of_closure(office, day=day, reason=reason, start=start, end=end, clock=clock)
    return ClosureView(day, reason, closed, booked)


async def remove_closure(*, office_code: str, day: date, now: datetime) -> None:
    """Open the day again: its slots get their template's capacity back, missing ones are released."""
    office = await _office(office_code)
    start, end = shanghai_day_bounds(day)
    async with in_transaction() as conn:
        if not await OfficeClosure.filter(office_id=office.code, day=day).delete():
            raise ClosureNotFound(day=day.isoformat())
        for template in await SlotTemplate.filter(office_id=office.code):
            day_slots = Slot.filter(template_id=template.id, starts_at__gte=start, starts_at__lt=end)
            for slot_id in await day_slots.order_by("id").values_list("id", flat=True):
                # A slot with more seats taken than the template now gives keeps what it has.
                with contextlib.suppress(CapacityBelowBooked):
                    await resize(conn, slot_id, template.capacity)  # type: ignore[arg-type]
    await release_due_slots(now=now, office_code=office.code, day=day)


@dataclass(frozen=True, slots=True)
class ClosedDay:
    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class OfficeSchedule:
    timetable: TimetableView | None
    closures: Annotated[list[ClosedDay], Field(description="from today on")]
    templates: list[TemplateView]


async def office_schedule(*, office_code: str, now: datetime) -> OfficeSchedule:
    office = await _office(office_code)
    timetable = await OfficeTimetable.get_or_none(office_id=office.code)
    today = now.astimezone(SHANGHAI).date()
    closures = await OfficeClosure.filter(office_id=office.code, day__gte=today).order_by("day")
    templates = await SlotTemplate.filter(office_id=office.code).order_by("id")
    return OfficeSchedule(
        TimetableView(office.code, timetable.opening_hours, timetable.services, timetable.phone)
        if timetable
        else None,
        [ClosedDay(c.day, c.reason) for c in closures],
        [_template_view(t) for t in templates],
    )


async def create_template(
    *, office_code: str, service: str, rule: TemplateRule, catalogue: ServiceCatalogue
) -> TemplateView:
    catalogue.get(service)
    rule = rule.validated()
    office = await _office(office_code)
    template = SlotTemplate(office_id=office.code, service=service)
    template.update_from_dict(_rule_fields(rule))
    await template.save()
    return _template_view(template)


async def update_template(
    *,
    office_code: str,
    template_id: int,
    service: str | None = None,
    rule: TemplateRule | None = None,
    active: bool | None = None,
) -> TemplateView:
    """Change a template's rule or switch it on or off. Slots already released keep their
    capacity and times; the change applies to the slots released from now on. A template stays
    with its service (add another template for another service)."""
    rule = rule.validated() if rule is not None else None
    template = None
    if 1 <= template_id < 2**63:
        template = await SlotTemplate.get_or_none(id=template_id, office_id=office_code)
    if template is None:
        raise SlotTemplateNotFound(template_id=template_id)
    if service is not None and service != template.service:
        raise ValidationFailed(
            "时段模板的事项不能更改", "A template's service cannot change", field="rule.service"
        )
    if rule is not None:
        template.update_from_dict(_rule_fields(rule))
    if active is not None:
        template.active = active
    await template.save()
    return _template_view(template)


def _rule_fields(rule: TemplateRule) -> dict[str, object]:
    return {
        "weekdays": list(rule.weekdays),
        "day_start": rule.day_start,
        "day_end": rule.day_end,
        "duration_min": rule.duration_min,
        "capacity": rule.capacity,
        "release_days_ahead": rule.release_days_ahead,
        "release_at": rule.release_at,
    }


async def release_office_slots(*, office_code: str, now: datetime) -> int:
    """The admin's "release now": what is due at this office (not earlier than its release time)."""
    office = await _office(office_code)
    return await release_due_slots(now=now, office_code=office.code)
