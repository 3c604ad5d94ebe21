"""Organisation accounts for first and cancellation registration (issue 13): an organisation's
staff sign in with a password and act for it (`staff_user.organisation_id`); an API client is a
bank's or another organisation's own system (`api_client.role`), and only a bank's has a bank code.

Registration cases need no new columns: a first registration's case stands on the parcel's unit
(the land-use right the developer holds), a cancellation's on the right's unit.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0010_cases')]

    initial = False

    operations = [
        ops.AddField(
            model_name='StaffUser',
            name='organisation_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='ApiClient',
            name='role',
            field=fields.CharField(default='bank', db_default='bank', max_length=16),
        ),
        ops.AlterField(
            model_name='ApiClient',
            name='bank_code',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
