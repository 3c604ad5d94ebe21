"""The access log: who read whose property data, as an append-only hash chain (services/audit/log.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field
from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


# One read of property data. `seq` is the position in the one chain; `hash` is SHA-256 over the
# canonical serialisation of this row including `prev_hash` (see services/audit/log.py). No foreign
# keys: the log outlives and never blocks changes to what it mentions.
# On PostgreSQL the table is partitioned by month of `occurred_at` (migration 0014), and a unique
# constraint there must include the partition key: the database holds (id, occurred_at) and
# (seq, occurred_at) unique; `seq` itself is kept unique by the head row (services/audit/log.py).
class AccessLogEntry(Model):
    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(unique=True)  # by constraint on SQLite only; see above
    occurred_at = fields.DatetimeField()
    reader_subject = fields.CharField(max_length=64)  # person:42 | staff:7 | client:icbc-sh-app
    reader_role = fields.CharField(max_length=16)  # citizen | guardian | clerk | admin | bank
    reader_display = fields.CharField(max_length=128)  # masked name or organisation name
    person_id = fields.BigIntField(null=True)  # whose data
    person_index = fields.CharField(max_length=64, null=True)  # blind index, when no person row exists
    action = fields.CharField(max_length=64)  # e.g. property.list, property.detail
    object_type = fields.CharField(max_length=32)
    object_id = fields.CharField(max_length=64, null=True)
    purpose = fields.CharField(max_length=64)
    request_id = fields.CharField(max_length=64, null=True)
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "access_log"
        indexes = (Index(fields=("person_id", "seq")), Index(fields=("person_index", "seq")))


# The chain's head, one row (id 1): appends lock it (PostgreSQL) and move it with a conditional
# update (both backends), so two appends can never take the same position.
class AccessLogHead(Model):
    id = fields.IntField(primary_key=True)
    last_seq = fields.BigIntField(default=0)
    last_hash = fields.CharField(max_length=64)
    updated_at = fields.DatetimeField(null=True)
    # What the next entry is hashed with: sha256 | sm3. Changed only with a marker entry
    # (services/audit/log.py: append_hash_switch), in the same transaction.
    hash_algorithm = fields.CharField(max_length=8, default="sha256", db_default="sha256")

    class Meta:
        table = "access_log_head"


# A signed statement of the chain's head at one moment (services/audit/checkpoints.py): `hash` is
# entry `seq`'s hash, `algorithm` what the entries after it are hashed with. Signed with the
# checkpoint key named by `key_id`; append-only like the log (migration 0014).
class AccessLogCheckpoint(Model):
    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(db_index=True)
    hash = fields.CharField(max_length=64)
    algorithm = fields.CharField(max_length=8)
    created_at = fields.DatetimeField()
    key_id = fields.CharField(max_length=32)
    signature = fields.CharField(max_length=256)  # base64url, no padding

    class Meta:
        table = "access_log_checkpoint"


# --- the citizen's view of the log (services/audit/log.py:access_log_for), described once --------
# The API documents and validates `GET /me/access-log` from these (api/openapi.py).


@dataclass(frozen=True, slots=True)
class AccessLogItem:
    seq: int
    occurred_at: datetime
    reader_role: Annotated[
        str, Field(examples=["guardian"], description="citizen | guardian | clerk | admin | bank")
    ]
    reader: Annotated[str, Field(description="masked name, or the organisation's name; 本人 for yourself")]
    by_self: bool
    action: Annotated[str, Field(examples=["property.list"])]
    object_type: str
    object_id: str | None
    purpose: Annotated[str, Field(examples=["guardian_query"])]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class AccessLogPage:
    """`next_before` is the last seq of the page when older entries follow."""

    items: tuple[AccessLogItem, ...]
    next_before: int | None
