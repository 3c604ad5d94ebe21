"""Guardianship links follow the civil registry's change feed; guardians can end a link; coalesced alerts.

- `guardianship_link.changes_reported` / `changes_verified`: feed entries seen for the pair vs.
  covered by the last verification (a link with more reported than verified is re-verified);
- `guardianship_link.last_alert_period`: the period of the last in-app alert to this link's
  guardian, moved by a conditional update so concurrent reads post one message per period;
- `guardianship_link.ward_id_number_masked` is dropped: the mask is computed when shown;
- `integration_cursor`: the feed's persisted cursor.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0005_personal_data_at_rest")]

    initial = False

    operations = [
        ops.RemoveField(model_name="GuardianshipLink", name="ward_id_number_masked"),
        ops.AddField(
            model_name="GuardianshipLink", name="changes_reported", field=fields.IntField(default=0)
        ),
        ops.AddField(
            model_name="GuardianshipLink", name="changes_verified", field=fields.IntField(default=0)
        ),
        ops.AddField(
            model_name="GuardianshipLink",
            name="last_alert_period",
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.CreateModel(
            name="IntegrationCursor",
            fields=[
                ("name", fields.CharField(primary_key=True, max_length=64)),
                ("value", fields.CharField(null=True, max_length=255)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "integration_cursor", "app": "models", "pk_attr": "name"},
            bases=["Model"],
        ),
    ]
