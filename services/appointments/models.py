"""Registration offices' timetables, bookable slots, appointments and the waitlist.

Invariant (capacity): a slot never holds more active appointments than its capacity, whatever
the interleaving of requests, workers or API nodes. A slot's seats are counted in its stripes
(`SlotStripe`, a few counter rows per slot, so that winning bookings do not queue on one row):
a seat is taken by one conditional update of one stripe
(`UPDATE slot_stripe SET booked = booked + 1 WHERE slot_id = ? AND stripe = ? AND booked < capacity`)
whose row count says whether it was won, and given back to the stripe it came from (the
appointment or waitlist offer keeps its `stripe`) by `booked - 1 WHERE booked > 0`; nothing reads a
count and writes it back. `Slot.capacity` is the sum of its stripes' capacities; the slot row has
no seat count (services/appointments/seats.py owns these rules). One active appointment per
person, service and case is a unique constraint on `Appointment.active_key` (set while active,
NULL once cancelled or done), so two parallel bookings of the same person cannot both commit.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import Office, Person

# Appointment.status
BOOKED = "booked"
CANCELLED = "cancelled"
CHECKED_IN = "checked_in"
NO_SHOW = "no_show"


class OfficeTimetable(Model):
    """What an office opens for: weekly hours and the services it offers (one row per office)."""

    office: fields.OneToOneRelation[Office] = fields.OneToOneField(
        "models.Office", related_name="timetable", on_delete=fields.CASCADE, primary_key=True
    )
    # {"mon": [["09:00", "12:00"], ["13:30", "17:00"]], ...}; a day missing is closed.
    opening_hours: dict[str, list[list[str]]] = fields.JSONField(default=dict)
    services: list[str] = fields.JSONField(default=list)
    phone = fields.CharField(max_length=32, null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "office_timetable"


class OfficeClosure(Model):
    """A day an office is closed (a public holiday, a training day)."""

    id = fields.BigIntField(primary_key=True)
    office: fields.ForeignKeyRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="closures", on_delete=fields.CASCADE
    )
    day = fields.DateField()
    reason = fields.CharField(max_length=100)

    class Meta:
        table = "office_closure"
        unique_together = (("office_id", "day"),)


class SlotTemplate(Model):
    """How an office's slots for one service are made and released: e.g. every weekday 09:00-17:00
    in 30-minute slots of 6 seats, released 14 days ahead at 08:00 (Asia/Shanghai)."""

    id = fields.BigIntField(primary_key=True)
    office: fields.ForeignKeyRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="slot_templates", on_delete=fields.CASCADE
    )
    service = fields.CharField(max_length=32)
    weekdays: list[int] = fields.JSONField(default=list)  # 0 = Monday
    day_start = fields.CharField(max_length=5)  # "09:00", Shanghai time
    day_end = fields.CharField(max_length=5)
    duration_min = fields.IntField()
    capacity = fields.IntField()
    release_days_ahead = fields.IntField(default=14)
    release_at = fields.CharField(max_length=5, default="08:00")
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "slot_template"


class Slot(Model):
    id = fields.BigIntField(primary_key=True)
    office: fields.ForeignKeyRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="slots", on_delete=fields.CASCADE
    )
    service = fields.CharField(max_length=32)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    capacity = fields.IntField()  # the sum of its stripes' capacities (seats.py)
    released_at = fields.DatetimeField()  # not bookable before
    template: fields.ForeignKeyNullableRelation[SlotTemplate] = fields.ForeignKeyField(
        "models.SlotTemplate", related_name="slots", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "slot"
        # The unique constraint's index also serves the look-ups by office and service (a plain
        # index on the same columns was dropped, migration 0017). starts_at: the bookable slots of
        # every office (`starts_at > now`) and an office's day of appointments read the few slots
        # of those days, not every past day's (migration 0015).
        unique_together = (("office_id", "service", "starts_at"),)
        indexes = (Index(fields=("starts_at",)),)


class SlotStripe(Model):
    """A share of a slot's seats: `booked` changes only by conditional updates (module docstring).

    Besides the unique (slot_id, stripe), migration 0015 adds the partial index
    `idx_slot_stripe_free (slot_id) WHERE booked < capacity`, which the lists of bookable slots
    read (`seats.with_free_seat`); Tortoise cannot declare that condition here."""

    id = fields.BigIntField(primary_key=True)
    slot: fields.ForeignKeyRelation[Slot] = fields.ForeignKeyField(
        "models.Slot", related_name="stripes", on_delete=fields.CASCADE
    )
    stripe = fields.SmallIntField()  # 0 .. STRIPES - 1
    capacity = fields.IntField()
    booked = fields.IntField(default=0)

    class Meta:
        table = "slot_stripe"
        unique_together = (("slot_id", "stripe"),)


class Appointment(Model):
    id = fields.BigIntField(primary_key=True)
    ref = fields.CharField(max_length=24, unique=True)  # shown to the citizen, sent to the centre
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="appointments", on_delete=fields.RESTRICT
    )
    slot: fields.ForeignKeyRelation[Slot] = fields.ForeignKeyField(
        "models.Slot", related_name="appointments", on_delete=fields.RESTRICT
    )
    office_code = fields.CharField(max_length=16)
    service = fields.CharField(max_length=32)
    right_id = fields.BigIntField(null=True)  # the property it concerns, if any
    case_ref = fields.CharField(max_length=32, null=True)  # the registration case, if any
    status = fields.CharField(max_length=12, default=BOOKED)  # booked | cancelled | checked_in | no_show
    stripe = fields.SmallIntField(null=True)  # the slot stripe its seat came from; given back there
    # "<person>:<service>:<case or right or ->" while booked; NULL otherwise. Unique: one active
    # appointment per person, service and case (module docstring).
    active_key = fields.CharField(max_length=96, null=True, unique=True)
    with_tax = fields.BooleanField(default=False)
    tax_ref = fields.CharField(max_length=64, null=True)
    tax_slot_start = fields.DatetimeField(null=True)
    centre_ref = fields.CharField(max_length=64, null=True)
    centre_status = fields.CharField(max_length=16, default="pending")  # pending | pushed | cancelled
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)
    checked_in_at = fields.DatetimeField(null=True)
    rescheduled_from = fields.BigIntField(null=True)  # the appointment this one replaced

    class Meta:
        table = "appointment"
        indexes = (Index(fields=("person_id", "status")), Index(fields=("office_code", "status")))


class WaitlistEntry(Model):
    """A person waiting for a seat in a full slot; a freed seat is offered to the first in line,
    who has until `offered_until` to accept (the seat is held for them meanwhile)."""

    id = fields.BigIntField(primary_key=True)
    slot: fields.ForeignKeyRelation[Slot] = fields.ForeignKeyField(
        "models.Slot", related_name="waitlist", on_delete=fields.CASCADE
    )
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="waitlist_entries", on_delete=fields.CASCADE
    )
    service = fields.CharField(max_length=32)
    # waiting | offered | accepted | expired | left
    status = fields.CharField(max_length=12, default="waiting")
    offered_until = fields.DatetimeField(null=True)
    stripe = fields.SmallIntField(null=True)  # while offered: the slot stripe of the seat held
    created_at = fields.DatetimeField()

    class Meta:
        table = "waitlist_entry"
        unique_together = (("slot_id", "person_id"),)
        indexes = (Index(fields=("slot_id", "status", "id")),)
