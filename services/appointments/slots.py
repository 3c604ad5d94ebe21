"""Slot rules and the release of slots from templates.

Invariant (release): a slot exists once per (office, service, start), whoever materialises it and
however often: `release_due_slots` inserts with `bulk_create(ignore_conflicts=True)` against the
unique constraint on `Slot`, so the background releaser, a public read and an admin's "release
now" may all run at once, on any node, and make each slot exactly once. A slot's `released_at` is
its *scheduled* release time (the day `release_days_ahead` before it, at `release_at` Shanghai
time), not the moment a worker got to it, so a late worker never makes a slot open later or
earlier than announced.

A slot and its seat stripes (seats.py) are inserted in one transaction, so no reader ever sees a
released slot without its seats (which would answer "full").

Bookable: `released_at <= now < starts_at` and a stripe with `booked < capacity` (the booking side
takes seats with one conditional update, seats.py). Days the office is closed (an `OfficeClosure`), weekdays
the template does not name and times outside the office's opening hours make no slot.

The pure rules (parsing, validation, generation, release times) take plain values, so they are
unit-tested without a database (tests/unit/test_slot_rules.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated

from pydantic import Field
from tortoise.transactions import in_transaction

import config
from services.appointments.models import OfficeClosure, OfficeTimetable, Slot, SlotTemplate
from services.appointments.seats import add_stripes
from services.clock import SHANGHAI, Clock
from services.errors import ValidationFailed

log = logging.getLogger("estate.appointments")

CATALOGUE_FILE = Path(config.__file__).with_name("appointments.toml")

WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
MAX_CAPACITY = 500
MAX_DAYS_AHEAD = 60
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

OpeningHours = Mapping[str, Sequence[Sequence[str]]]  # {"mon": [["09:00", "12:00"], ...]}


class InvalidSchedule(ValidationFailed):
    """An opening-hours table or a slot template breaks a rule; `field` names the part."""

    code = "INVALID_SCHEDULE"
    title_zh = "营业时间或时段模板不合法"
    title_en = "The opening hours or the slot template are not valid"


class UnknownService(ValidationFailed):
    code = "UNKNOWN_SERVICE"
    title_zh = "没有该预约事项"
    title_en = "No such appointment service"


def _invalid(field: str, zh: str, en: str) -> InvalidSchedule:
    return InvalidSchedule(zh, en, field=field)


def parse_hhmm(value: str, field: str = "time") -> time:
    """`"HH:MM"` (00:00-23:59) as a time; anything else is an InvalidSchedule naming `field`."""
    if not isinstance(value, str) or not _HHMM.match(value):
        raise _invalid(field, f"{field} 应为 HH:MM 格式", f"{field} must be HH:MM")
    return time(int(value[:2]), int(value[3:]))


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def normalise_opening_hours(hours: OpeningHours) -> dict[str, list[list[str]]]:
    """Opening hours checked and sorted: known day keys, HH:MM, each end after its start, no
    overlaps. A day left out is closed."""
    out: dict[str, list[list[str]]] = {}
    for day, spans in hours.items():
        if day not in WEEKDAY_KEYS:
            raise _invalid(f"opening_hours.{day}", "星期应为 mon..sun", "Days are mon..sun")
        parsed: list[tuple[time, time]] = []
        for i, span in enumerate(spans):
            field = f"opening_hours.{day}.{i}"
            if len(span) != 2:
                raise _invalid(field, "时段应为 [开始, 结束]", "A span is [start, end]")
            start, end = parse_hhmm(span[0], field), parse_hhmm(span[1], field)
            if end <= start:
                raise _invalid(field, "结束时间应晚于开始时间", "The end must be after the start")
            parsed.append((start, end))
        parsed.sort()
        for (_, end), (start, _) in pairwise(parsed):
            if start < end:
                raise _invalid(f"opening_hours.{day}", "时段重叠", "The spans overlap")
        if parsed:
            out[day] = [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in parsed]
    return {day: out[day] for day in WEEKDAY_KEYS if day in out}


@dataclass(frozen=True, slots=True)
class TemplateRule:
    """What a SlotTemplate says, as plain values."""

    weekdays: tuple[int, ...]
    day_start: str
    day_end: str
    duration_min: int
    capacity: int
    release_days_ahead: int = 14
    release_at: str = "08:00"

    @classmethod
    def of(cls, template: SlotTemplate) -> TemplateRule:
        return cls(
            tuple(template.weekdays),
            template.day_start,
            template.day_end,
            template.duration_min,
            template.capacity,
            template.release_days_ahead,
            template.release_at,
        )

    def validated(self) -> TemplateRule:
        """This rule, or an InvalidSchedule naming the field that breaks: weekdays 0..6 (at least
        one, no repeats), HH:MM, end after start, a duration of 5..240 minutes that divides the
        day, capacity 1..500, released 0..60 days ahead."""
        if not self.weekdays or any(type(d) is not int or not 0 <= d <= 6 for d in self.weekdays):
            raise _invalid(
                "weekdays", "星期应为 0（周一）至 6（周日）", "weekdays are 0 (Monday) to 6 (Sunday)"
            )
        if len(set(self.weekdays)) != len(self.weekdays):
            raise _invalid("weekdays", "星期重复", "weekdays repeat")
        start, end = parse_hhmm(self.day_start, "day_start"), parse_hhmm(self.day_end, "day_end")
        parse_hhmm(self.release_at, "release_at")
        if end <= start:
            raise _invalid("day_end", "结束时间应晚于开始时间", "day_end must be after day_start")
        if not 5 <= self.duration_min <= 240:
            raise _invalid("duration_min", "时长应为 5 至 240 分钟", "duration_min is 5 to 240")
        if (_minutes(end) - _minutes(start)) % self.duration_min:
            raise _invalid(
                "duration_min", "时长应能整除开放时段", "duration_min must divide day_start..day_end evenly"
            )
        if not 1 <= self.capacity <= MAX_CAPACITY:
            raise _invalid("capacity", "每个时段的名额应为 1 至 500", "capacity is 1 to 500")
        if not 0 <= self.release_days_ahead <= MAX_DAYS_AHEAD:
            raise _invalid("release_days_ahead", "提前放号天数应为 0 至 60", "release_days_ahead is 0 to 60")
        return replace(self, weekdays=tuple(sorted(self.weekdays)))


def release_time(rule: TemplateRule, day: date) -> datetime:
    """When the slots of `day` open: `release_days_ahead` days before, at `release_at` (Shanghai)."""
    local = datetime.combine(day - timedelta(days=rule.release_days_ahead), parse_hhmm(rule.release_at))
    return local.replace(tzinfo=SHANGHAI).astimezone(UTC)


def released_days(rule: TemplateRule, now: datetime) -> list[date]:
    """The days from today (Shanghai) whose slots are due by `now`."""
    today = now.astimezone(SHANGHAI).date()
    last = today + timedelta(days=rule.release_days_ahead)
    if release_time(rule, last) > now:
        last -= timedelta(days=1)
    return [today + timedelta(days=n) for n in range((last - today).days + 1)]


def slot_times(rule: TemplateRule, day: date, opening: OpeningHours) -> list[tuple[datetime, datetime]]:
    """The (start, end) of every slot of `day` (aware, UTC): on the rule's weekdays, inside one of
    the day's opening spans. A slot crossing a span's end (the lunch break) is not made."""
    if day.weekday() not in rule.weekdays:
        return []
    spans = [
        (_minutes(parse_hhmm(s)), _minutes(parse_hhmm(e)))
        for s, e in opening.get(WEEKDAY_KEYS[day.weekday()], ())
    ]
    start, end = _minutes(parse_hhmm(rule.day_start)), _minutes(parse_hhmm(rule.day_end))
    midnight = datetime.combine(day, time(0)).replace(tzinfo=SHANGHAI)
    out = []
    for m in range(start, end - rule.duration_min + 1, rule.duration_min):
        if any(s <= m and m + rule.duration_min <= e for s, e in spans):
            begins = midnight + timedelta(minutes=m)
            out.append(
                (begins.astimezone(UTC), (begins + timedelta(minutes=rule.duration_min)).astimezone(UTC))
            )
    return out


def is_bookable(*, released_at: datetime, starts_at: datetime, now: datetime) -> bool:
    return released_at <= now < starts_at


def shanghai_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Shanghai calendar day, in UTC."""
    start = datetime.combine(day, time(0)).replace(tzinfo=SHANGHAI)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


# --- the service catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    code: str
    label: str
    label_en: str
    tax: Annotated[bool, Field(description="a tax-payment appointment can be booked with it")]


@dataclass(frozen=True, slots=True)
class ServiceCatalogue:
    services: tuple[ServiceInfo, ...]

    @classmethod
    def load(cls, path: Path = CATALOGUE_FILE) -> ServiceCatalogue:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["services"]
        return cls(
            tuple(
                ServiceInfo(code, str(v["label"]), str(v["label_en"]), bool(v["tax"]))
                for code, v in raw.items()
            )
        )

    def get(self, code: str) -> ServiceInfo:
        for info in self.services:
            if info.code == code:
                return info
        raise UnknownService(
            f"没有预约事项 {code}", f"No appointment service {code!r}", field="service", known=self.codes()
        )

    def codes(self) -> list[str]:
        return [s.code for s in self.services]

    def check(self, codes: Sequence[str], field: str = "services") -> list[str]:
        """The codes, each known and listed once, in catalogue order."""
        for code in codes:
            self.get(code)
        if len(set(codes)) != len(codes):
            raise ValidationFailed("事项重复", "A service is listed twice", field=field)
        return [c for c in self.codes() if c in codes]


@cache
def default_catalogue() -> ServiceCatalogue:
    """config/appointments.toml, read once per process."""
    return ServiceCatalogue.load()


# --- release -------------------------------------------------------------------------------------


def _key(office_id: str, service: str, starts_at: datetime) -> tuple[str, str, datetime]:
    return office_id, service, starts_at.astimezone(UTC)


async def release_due_slots(
    *,
    now: datetime,
    office_code: str | None = None,
    service: str | None = None,
    day: date | None = None,
) -> int:
    """Materialise every slot whose release time has come and that has not started: for all
    active templates, or those of one office / service, or only `day`. Returns how many rows were
    new. Idempotent (module docstring); cheap when nothing is due: one read of the existing
    slots of the window, and an insert only of the missing ones."""
    templates = SlotTemplate.filter(active=True)
    if office_code is not None:
        templates = templates.filter(office_id=office_code)
    if service is not None:
        templates = templates.filter(service=service)
    rows = await templates
    if not rows:
        return 0
    offices = {t.office_id for t in rows}  # type: ignore[attr-defined]
    timetables = {t.office_id: t for t in await OfficeTimetable.filter(office_id__in=offices)}  # type: ignore[attr-defined]
    today = now.astimezone(SHANGHAI).date()
    horizon = today + timedelta(days=MAX_DAYS_AHEAD + 1)
    closed = {
        (c.office_id, c.day)  # type: ignore[attr-defined]
        for c in await OfficeClosure.filter(office_id__in=offices, day__gte=today, day__lte=horizon)
    }
    # key -> (ends_at, capacity, released_at, template id); Slot rows are built only for the missing.
    wanted: dict[tuple[str, str, datetime], tuple[datetime, int, datetime, int]] = {}
    for template in rows:
        office_id: str = template.office_id  # type: ignore[attr-defined]
        timetable = timetables.get(office_id)
        if timetable is None or template.service not in timetable.services:
            continue  # an office without hours, or no longer offering the service, gets no slots
        rule = TemplateRule.of(template)
        for d in released_days(rule, now):
            if (day is not None and d != day) or (office_id, d) in closed:
                continue
            released_at = release_time(rule, d)
            for starts_at, ends_at in slot_times(rule, d, timetable.opening_hours):
                key = _key(office_id, template.service, starts_at)
                if starts_at > now and key not in wanted:
                    wanted[key] = (ends_at, rule.capacity, released_at, template.id)
    if not wanted:
        return 0
    first, last = min(k[2] for k in wanted), max(k[2] for k in wanted)
    existing = await Slot.filter(
        office_id__in={k[0] for k in wanted}, starts_at__gte=first, starts_at__lte=last
    ).values_list("office_id", "service", "starts_at")
    have = {_key(*row) for row in existing}
    missing = [
        Slot(
            office_id=office_id,
            service=service,
            starts_at=starts_at,
            ends_at=ends_at,
            capacity=capacity,
            released_at=released_at,
            template_id=template_id,
        )
        for (office_id, service, starts_at), (ends_at, capacity, released_at, template_id) in wanted.items()
        if (office_id, service, starts_at) not in have
    ]
    if missing:
        async with in_transaction() as conn:
            await Slot.bulk_create(missing, ignore_conflicts=True, batch_size=500, using_db=conn)
            # The ids of the rows just made (or made by a parallel releaser, whose stripes then
            # exist already: add_stripes leaves them).
            made = {_key(s.office_id, s.service, s.starts_at) for s in missing}  # type: ignore[attr-defined]
            made_rows = await (
                Slot.filter(office_id__in={k[0] for k in made}, starts_at__gte=first, starts_at__lte=last)
                .using_db(conn)
                .values_list("id", "office_id", "service", "starts_at", "capacity")
            )
            await add_stripes(conn, [(r[0], r[4]) for r in made_rows if _key(r[1], r[2], r[3]) in made])
        log.info("slots released", extra={"event": "slots_released", "count": len(missing)})
    return len(missing)


async def run_slot_releaser(*, clock: Clock, interval_s: float, stop: asyncio.Event) -> None:
    """Release due slots at once and then every `interval_s` until `stop` is set. Errors are
    logged and retried at the next tick; a missed tick only delays slots that the public day
    query releases for itself (offices.py)."""
    log.info("slot releaser started", extra={"event": "slot_releaser_started"})
    while not stop.is_set():
        try:
            await release_due_slots(now=clock.now())
        except Exception:
            log.exception("slot release failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
