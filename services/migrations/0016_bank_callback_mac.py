"""A participating bank registered at run time chooses the MAC of its callbacks (HMAC-SHA256 or
HMAC-SM3, integrations/banks/http.py), as a bank of config/banks.toml does with `callback_mac`.

`participating_bank.callback_mac` is nullable and every existing row stays NULL: the
cryptography profile's MAC, which is what those banks have been sent until now, so nothing a bank
verifies changes. A nullable column without a default is a plain `ALTER TABLE ... ADD COLUMN` on
both backends (no copy of the table on SQLite).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0015_query_indexes")]

    initial = False

    operations = [
        ops.AddField(
            model_name="ParticipatingBank",
            name="callback_mac",
            field=fields.CharField(null=True, max_length=16),
        ),
    ]
