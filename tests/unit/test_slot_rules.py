"""Pure slot rules (services/appointments/slots.py): generation from a template inside opening
hours, release times, validation. No database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

import pytest

from services.appointments.seats import spread, stripe_count
from services.appointments.slots import (
    InvalidSchedule,
    ServiceCatalogue,
    TemplateRule,
    UnknownService,
    is_bookable,
    normalise_opening_hours,
    release_time,
    released_days,
    slot_times,
)
from services.clock import SHANGHAI

WEEKDAYS = {d: [["09:00", "12:00"], ["13:30", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
RULE = TemplateRule(weekdays=(0, 1, 2, 3, 4), day_start="09:00", day_end="17:00", duration_min=30, capacity=4)
MONDAY = date(2026, 12, 7)


def local(d: date, hhmm: str) -> datetime:
    return datetime.combine(d, time.fromisoformat(hhmm)).replace(tzinfo=SHANGHAI)


def test_slots_fill_the_opening_spans_and_skip_the_lunch_break() -> None:
    slots = slot_times(RULE, MONDAY, WEEKDAYS)
    starts = [s.astimezone(SHANGHAI).strftime("%H:%M") for s, _ in slots]
    assert starts[:6] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert "12:00" not in starts and "13:00" not in starts  # 13:00-13:30 is before the office opens
    assert starts[6:] == ["13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30"]
    assert all(e - s == (local(MONDAY, "09:30") - local(MONDAY, "09:00")) for s, e in slots)
    assert all(s.tzinfo is UTC for s, _ in slots)
    assert slots[0][0] == datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_no_slots_on_other_weekdays_or_closed_days() -> None:
    assert slot_times(RULE, date(2026, 12, 12), WEEKDAYS) == []  # Saturday: not in the rule
    saturday_rule = TemplateRule((5,), "09:00", "12:00", 30, 4)
    assert slot_times(saturday_rule, date(2026, 12, 12), WEEKDAYS) == []  # the office is closed
    hours = {**WEEKDAYS, "sat": [["09:00", "12:00"]]}
    assert len(slot_times(saturday_rule, date(2026, 12, 12), hours)) == 6


def test_release_time_is_days_ahead_at_the_release_hour_in_shanghai() -> None:
    assert release_time(RULE, MONDAY) == local(date(2026, 11, 23), "08:00")
    assert release_time(RULE, MONDAY) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_released_days_move_at_the_release_hour() -> None:
    before = local(date(2026, 11, 23), "07:59")
    after = local(date(2026, 11, 23), "08:00")
    assert released_days(RULE, before)[-1] == date(2026, 12, 6)
    assert released_days(RULE, after)[-1] == MONDAY
    assert released_days(RULE, after)[0] == date(2026, 11, 23)
    assert len(released_days(RULE, after)) == 15


def test_release_day_boundary_uses_shanghai_not_utc() -> None:
    # 23:30 UTC on the 22nd is 07:30 on the 23rd in Shanghai: the 14th day ahead is not released yet.
    now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert released_days(RULE, now)[0] == date(2026, 11, 23)
    assert released_days(RULE, now)[-1] == date(2026, 12, 6)


def test_bookable_only_between_release_and_start() -> None:
    released, starts = local(MONDAY, "08:00"), local(MONDAY, "09:00")
    assert not is_bookable(released_at=released, starts_at=starts, now=local(MONDAY, "07:59"))
    assert is_bookable(released_at=released, starts_at=starts, now=local(MONDAY, "08:00"))
    assert not is_bookable(released_at=released, starts_at=starts, now=starts)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weekdays": ()}, "weekdays"),
        ({"weekdays": (7,)}, "weekdays"),
        ({"weekdays": (1, 1)}, "weekdays"),
        ({"day_start": "9:00"}, "day_start"),
        ({"day_end": "24:00"}, "day_end"),
        ({"day_end": "08:00"}, "day_end"),
        ({"duration_min": 45}, "duration_min"),  # 8 hours are not whole 45-minute slots
        ({"duration_min": 0}, "duration_min"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 501}, "capacity"),
        ({"release_days_ahead": 61}, "release_days_ahead"),
        ({"release_at": "8am"}, "release_at"),
    ],
)
def test_a_bad_template_names_its_field(change: dict[str, object], field: str) -> None:
    rule = replace(RULE, **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidSchedule) as caught:
        rule.validated()
    assert caught.value.fields["field"] == field


def test_a_good_template_is_kept_with_sorted_weekdays() -> None:
    assert TemplateRule((4, 0), "09:00", "12:00", 60, 500).validated().weekdays == (0, 4)


def test_opening_hours_are_checked_and_sorted() -> None:
    hours = normalise_opening_hours({"tue": [["13:30", "17:00"], ["09:00", "12:00"]], "mon": []})
    assert hours == {"tue": [["09:00", "12:00"], ["13:30", "17:00"]]}
    for bad, field in [
        ({"monday": [["09:00", "12:00"]]}, "opening_hours.monday"),
        ({"mon": [["12:00", "09:00"]]}, "opening_hours.mon.0"),
        ({"mon": [["09:00"]]}, "opening_hours.mon.0"),
        ({"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, "opening_hours.mon"),
    ]:
        with pytest.raises(InvalidSchedule) as caught:
            normalise_opening_hours(bad)
        assert caught.value.fields["field"] == field


def test_the_catalogue_knows_its_services_and_the_tax_flag() -> None:
    catalogue = ServiceCatalogue.load()
    assert {"registration", "transfer", "mortgage", "certificate"} <= set(catalogue.codes())
    assert catalogue.get("transfer").tax and not catalogue.get("certificate").tax
    assert catalogue.check(["mortgage", "transfer"]) == ["transfer", "mortgage"]
    with pytest.raises(UnknownService):
        catalogue.get("haircut")


def test_seats_are_spread_evenly_over_at_most_eight_stripes() -> None:
    assert [stripe_count(c) for c in (0, 1, 5, 8, 9, 500)] == [1, 1, 5, 8, 8, 8]
    assert spread(36, 8) == [5, 5, 5, 5, 4, 4, 4, 4]
    assert spread(3, 8) == [1, 1, 1, 0, 0, 0, 0, 0]
    for total in range(0, 60):
        shares = spread(total, stripe_count(total))
        assert sum(shares) == total and max(shares) - min(shares) <= 1
