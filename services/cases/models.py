"""Rows of registration cases that the register itself does not hold: the number series of the
allocator and the utility account transfers a transfer case carries.

Invariant (numbers): a number is handed out by one conditional update of its series row inside
the caller's transaction (`last_value = last_value + 1`), so two transactions can never read the
same value: PostgreSQL holds the row lock until commit, SQLite runs one writer at a time. The
unique constraints on `registration_case.case_number` and `right.certificate_number` stand behind
it.

Invariant (utility transfers): one row per case and utility kind (unique), written in the
transaction that registers the transfer, together with its outbox message; the row's `state` is
what the citizen sees and only moves forward (`_FORWARD` in services/cases/utilities.py).
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import RegistrationCase

# UtilityTransferRecord.state
PENDING = "pending"  # written, not yet sent
SENT = "sent"  # the provider has it and works on it
CONFIRMED = "confirmed"  # the provider finished: the account is the buyer's
REFUSED = "refused"  # the provider refused for good (e.g. arrears); reason recorded
NEEDS_ATTENTION = "needs_attention"  # we gave up retrying; an administrator re-drives it
UTILITY_STATES = (PENDING, SENT, CONFIRMED, REFUSED, NEEDS_ATTENTION)


class NumberSeries(Model):
    """The last number handed out in one series, e.g. `case:2026:310115` or
    `right-certificate:2026:310115`. A series starts above the highest number already in the
    register (numbers written by the demo loader or an earlier system)."""

    name = fields.CharField(max_length=64, primary_key=True)
    last_value = fields.BigIntField()

    class Meta:
        table = "number_series"


class UtilityTransferRecord(Model):
    """One utility account moving from seller to buyer with a registered transfer."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[RegistrationCase] = fields.ForeignKeyField(
        "models.RegistrationCase", related_name="utility_transfers", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=16)  # water | electricity | gas | cable_tv
    provider = fields.CharField(max_length=64)  # a provider name of config/providers.toml
    account_no = fields.CharField(max_length=32)
    state = fields.CharField(max_length=16, default=PENDING)
    reason = fields.CharField(max_length=200, null=True)
    provider_ref = fields.CharField(max_length=64, null=True)
    # {"value": "1234.5", "unit": "m3", "read_at": "..."}: the provider's final reading.
    final_reading: Any = fields.JSONField(null=True)
    # Sent with every request to the provider; also the key of its outbox message.
    idempotency_key = fields.CharField(max_length=128, unique=True)
    # Deliveries started; a second one asks a provider that cannot deduplicate what it holds first.
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "utility_transfer"
        unique_together = (("case_id", "kind"),)
        indexes = (Index(fields=("state", "updated_at")),)
