"""The in-app inbox (站内信): alerts about a person's property and their wards' (inbox.py)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import Person


class InboxMessage(Model):
    id = fields.BigIntField(primary_key=True)
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="inbox", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=32)  # property_change | guardian_query
    title = fields.CharField(max_length=100)
    body = fields.TextField()
    data = fields.JSONField[dict[str, Any]](default=dict)
    created_at = fields.DatetimeField()
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbox_message"
        indexes = (Index(fields=("person_id", "id")), Index(fields=("person_id", "read_at")))
