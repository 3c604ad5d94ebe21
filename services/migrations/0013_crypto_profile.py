"""The database's cryptography profile (issue 16): `crypto_state` records the profile its blind
indexes were computed under (services/crypto/switch.py), `crypto_index_alias` maps recomputed
indexes to those the access log keeps, and the access log's head says which hash appends use.

Every row written before this migration is of the international profile (AES-256-GCM,
HMAC-SHA256, SHA-256): the vault had no other. So an existing database is recorded as
`international`; only an empty one (no person, guardianship link, certificate, outbox message or
access-log entry) takes the profile of the vault the migration runs with, so a new install under
the national profile needs no switch.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

from services.db import migration_vault_if_given

_DATA_TABLES = ("person", "guardianship_link", "certificate_subject", "outbox_message", "access_log")


async def record_profile(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    empty = True
    for table in _DATA_TABLES:
        if await client.execute_query_dict(f"SELECT 1 AS one FROM {table} LIMIT 1"):  # noqa: S608 - constant
            empty = False
            break
    vault = migration_vault_if_given()
    profile = vault.profile if empty and vault is not None else "international"
    await client.execute_query(
        "INSERT INTO crypto_state (id, profile) VALUES (1, '%s')" % profile  # noqa: S608 - a literal of ours
    )
    if profile == "national":
        await client.execute_query("UPDATE access_log_head SET hash_algorithm = 'sm3'")


class Migration(migrations.Migration):
    dependencies = [('models', '0012_bank_filings')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CryptoState',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('profile', fields.CharField(max_length=16)),
                ('switching_to', fields.CharField(null=True, max_length=16)),
                ('checkpoint', fields.JSONField(null=True)),
                ('updated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'crypto_state', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CryptoIndexAlias',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('new_index', fields.CharField(db_index=True, max_length=64)),
                ('old_index', fields.CharField(max_length=64)),
                ('old_profile', fields.CharField(max_length=16)),
            ],
            options={'table': 'crypto_index_alias', 'app': 'models', 'unique_together': (('new_index', 'old_index'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AccessLogHead',
            name='hash_algorithm',
            field=fields.CharField(default='sha256', db_default='sha256', max_length=8),
        ),
        ops.RunPython(record_profile),
    ]
