"""Guardian links: a signed-in person allowed to read a minor's property data (links.py)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import Person

# Link statuses (see the comment on GuardianshipLink).
ACTIVE = "active"
SUSPENDED = "suspended"
ENDED = "ended"


# Exists only once the civil registry verified the guardianship. The ward may have no row in the
# register (a minor without property), so the ward is kept by encrypted ID number + blind index and
# joined to `person` when one exists. No masked ID number is stored: a stored first-4/last-4 mask
# beside other clear data narrows the number down; the mask is computed from the decrypted number
# when the linked guardian is shown it.
# status: active | suspended (the registry refused: a re-verification, or a link attempt for the
# same pair) | ended (the ward turned 18, or the guardian ended it: suspended_reason
# ENDED_BY_GUARDIAN). `suspended_at` / `suspended_reason` say when and why a link stopped.
# `changes_reported` counts the civil registry's feed entries for this (guardian, ward) pair;
# `changes_verified` is the count the last successful verification covered. A link with
# changes_reported > changes_verified is verified again before the next read (guardianship_feed.py).
class GuardianshipLink(Model):
    id = fields.BigIntField(primary_key=True)
    guardian: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="ward_links", on_delete=fields.RESTRICT
    )
    ward_person: fields.ForeignKeyNullableRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="guardian_links", null=True, on_delete=fields.RESTRICT
    )
    ward_id_number_enc = fields.CharField(max_length=128)
    ward_id_number_index = fields.CharField(max_length=64, db_index=True)
    access_ends_on = fields.DateField()  # the ward's 18th birthday (identifiers.eighteenth_birthday)
    relation = fields.CharField(max_length=32, null=True)  # as the civil registry records it
    status = fields.CharField(max_length=12, default=ACTIVE)
    linked_at = fields.DatetimeField()
    verified_at = fields.DatetimeField()
    suspended_at = fields.DatetimeField(null=True)
    suspended_reason = fields.CharField(max_length=64, null=True)
    changes_reported = fields.IntField(default=0)
    changes_verified = fields.IntField(default=0)
    last_alert_sms_on = fields.DateField(null=True)  # Shanghai date of the last "other guardian read" SMS
    last_alert_period = fields.CharField(max_length=32, null=True)  # period of the last in-app alert

    class Meta:
        table = "guardianship_link"
        unique_together = (("guardian_id", "ward_id_number_index"),)
        indexes = (Index(fields=("ward_id_number_index", "status")),)


# Where we are in an external system's change feed (e.g. the civil registry's guardianship
# changes), so a restart neither misses changes nor replays the whole feed.
class IntegrationCursor(Model):
    name = fields.CharField(max_length=64, primary_key=True)
    value = fields.CharField(max_length=255, null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "integration_cursor"
