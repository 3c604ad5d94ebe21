"""Guardian links: a signed-in person allowed to read a minor's property data (services/guardianship.py)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.models.registry import Person


# Exists only once the civil registry verified the guardianship. The ward may have no row in the
# register (a minor without property), so the ward is kept by encrypted ID number + blind index and
# joined to `person` when one exists. status: active | suspended (a re-verification failed) |
# ended (the ward turned 18).
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
    ward_id_number_masked = fields.CharField(max_length=18)
    access_ends_on = fields.DateField()  # the ward's 18th birthday (identifiers.eighteenth_birthday)
    relation = fields.CharField(max_length=32, null=True)  # as the civil registry records it
    status = fields.CharField(max_length=12, default="active")
    linked_at = fields.DatetimeField()
    verified_at = fields.DatetimeField()
    suspended_at = fields.DatetimeField(null=True)
    suspended_reason = fields.CharField(max_length=64, null=True)
    last_alert_sms_on = fields.DateField(null=True)  # Shanghai date of the last "other guardian read" SMS

    class Meta:
        table = "guardianship_link"
        unique_together = (("guardian_id", "ward_id_number_index"),)
        indexes = (Index(fields=("ward_id_number_index", "status")),)
