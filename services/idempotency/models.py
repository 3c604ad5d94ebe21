"""The inbound Idempotency-Key store (IETF draft-ietf-httpapi-idempotency-key-header).

Invariant: for one caller and key, the operation runs at most once. The first request inserts
the row (unique on scope + key) in state `new` and claims it (`new` -> `running`, one
conditional update: exactly one request wins the claim); a second request with the key finds it:
same fingerprint and `done` gets the stored answer, same fingerprint and still `running` gets
409, another fingerprint gets 422. Rows expire after `expires_at` (documented in docs/).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

NEW = "new"  # inserted, not yet claimed: the claim decides who runs (services/idempotency/store.py)
RUNNING = "running"
DONE = "done"


class IdempotencyRecord(Model):
    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=64)  # the caller: person:42 | staff:7 | client:bank-x
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)  # SHA-256 of method, route and body
    status = fields.CharField(max_length=12, default=RUNNING)
    response_status = fields.IntField(null=True)
    response_body = fields.BinaryField(null=True)
    response_headers: dict[str, str] | None = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_record"
        unique_together = (("scope", "key"),)
