"""The transactional outbox: calls to external systems whose effect must not be lost."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class OutboxMessage(Model):
    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=64)  # e.g. "elicense.store_license"
    payload: Any = fields.JSONField()
    idempotency_key = fields.CharField(max_length=128, unique=True)
    status = fields.CharField(max_length=12, default="pending")  # pending | delivered | dead
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    result: Any = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)
    # Delivered only after this message is (a revocation after the filing it revokes). Not a
    # foreign key: delivered messages are purged, and a purged predecessor counts as delivered.
    after_id = fields.BigIntField(null=True)

    class Meta:
        table = "outbox_message"
        indexes = (Index(fields=("status", "next_attempt_at")),)
