"""The rules of booking that do not touch the database: cut-off, no-show block, references, times.

Pure functions, so both the service and its tests read one definition of each rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from services.clock import SHANGHAI

_REF_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a window


@dataclass(frozen=True, slots=True)
class AppointmentPolicy:
    cutoff_h: float = 2.0  # cancel or reschedule until this long before the slot starts
    no_show_limit: int = 3  # this many no-shows ...
    no_show_window_days: int = 30  # ... within this many days ...
    no_show_block_days: int = 30  # ... block online booking for this long after the last of them
    waitlist_offer_ttl_s: int = 900  # a freed seat is held this long for the person offered it
    reminder_at: time = time(10, 0)  # the reminder SMS goes the day before at this Shanghai time


def new_ref(now: datetime) -> str:
    """`A` + the Shanghai date + 8 random characters (40 bits): unique in practice, and the
    unique constraint on `Appointment.ref` is the backstop."""
    day = now.astimezone(SHANGHAI).strftime("%Y%m%d")
    return "A" + day + "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))


def active_key(person_id: int, service: str, *, case_ref: str | None, right_id: int | None) -> str:
    """One active appointment per person, service and case (or property, or neither)."""
    concerning = case_ref or (str(right_id) if right_id is not None else "-")
    return f"{person_id}:{service}:{concerning}"


def applicant_ref(person_id: int) -> str:
    """How external systems (tax, the centre) see the person: our row id, never an ID number."""
    return f"P{person_id:010d}"


def tax_slot_start(starts_at: datetime) -> datetime:
    """The tax office books half hours: the one the registration slot starts in."""
    local = starts_at.astimezone(SHANGHAI)
    return local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)


def reminder_time(starts_at: datetime, policy: AppointmentPolicy) -> datetime:
    """The day before the slot, at `policy.reminder_at` Shanghai time."""
    day_before = starts_at.astimezone(SHANGHAI).date() - timedelta(days=1)
    return datetime.combine(day_before, policy.reminder_at, tzinfo=SHANGHAI)


def cutoff_passed(starts_at: datetime, now: datetime, policy: AppointmentPolicy) -> bool:
    return now > starts_at - timedelta(hours=policy.cutoff_h)


def blocked_until(no_shows: Sequence[datetime], now: datetime, policy: AppointmentPolicy) -> datetime | None:
    """Until when online booking is blocked, given the starts of a person's no-show slots; None
    if it is not. Any `no_show_limit` of them within `no_show_window_days` block for
    `no_show_block_days` from the last of those; the latest such end counts."""
    limit = policy.no_show_limit
    if limit < 1 or len(no_shows) < limit:
        return None
    ordered = sorted(no_shows)
    window = timedelta(days=policy.no_show_window_days)
    until: datetime | None = None
    for i in range(len(ordered) - limit + 1):
        first, last = ordered[i], ordered[i + limit - 1]
        if last - first <= window:
            end = last + timedelta(days=policy.no_show_block_days)
            until = end if until is None or end > until else until
    return until if until is not None and until > now else None
