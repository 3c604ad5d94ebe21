"""Personal data at rest: no clear birth date, gender or masked ID number; phones encrypted with a blind index.

Issue 8, item 3: a person row kept the masked ID number (first and last four characters) and the
birth date in clear, which left two or three candidates for every ID number; and phones were in
clear in `person` and in the `sms.send` outbox payloads. After this migration:

- `person` has `phone_enc` (AES-GCM, context `phone`) and `phone_index` (keyed HMAC, unique) in
  place of `phone`; `id_number_masked`, `birth_date` and `gender` are gone (they are derived from
  the decrypted ID number where a feature needs them).
- Pending `sms.send` messages carry `person_id` instead of the phone (or, for a phone no person
  has, `phone_enc`); delivered and dead ones keep a reference or a masked phone, never the number.

Existing phones are encrypted with the keys the service runs with, handed over by
`services.db.apply_migrations(config, vault=...)`; without them the migration refuses to run on a
database that has phones. It cannot be unapplied: that would write the clear data back.

On SQLite, dropping `phone` (a UNIQUE column) copies the table, which is only safe with foreign
keys off (services/db.py opens migration connections so); the migration checks that first and
runs `PRAGMA foreign_key_check` before it commits.
"""

import json
from typing import Any

from tortoise import fields, migrations
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

from services.db import migration_vault
from services.identifiers import mask_phone

SMS_SEND = "sms.send"
PENDING = "pending"


def _dialect(client: BaseDBAsyncClient) -> str:
    return str(client.capabilities.dialect)


def _sql(client: BaseDBAsyncClient, query: str) -> str:
    """`?` placeholders for SQLite, `$1, $2 ...` for PostgreSQL."""
    if _dialect(client) != "postgres":
        return query
    parts = query.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


async def require_sqlite_foreign_keys_off(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    if _dialect(client) != "sqlite":
        return
    rows = await client.execute_query_dict("PRAGMA foreign_keys")
    if rows and int(next(iter(rows[0].values()))):
        raise RuntimeError(
            "0005 copies the person table, which with SQLite foreign keys on would delete or "
            "block the rows that refer to it: apply it with `python -m api migrate` "
            "(services.db.apply_migrations opens SQLite with foreign_keys=OFF)"
        )


async def protect_existing_rows(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """Encrypt every clear phone into phone_enc/phone_index, and take phones out of SMS payloads."""
    client = schema_editor.client
    persons = await client.execute_query_dict("SELECT id, phone FROM person WHERE phone IS NOT NULL")
    person_of_phone = {str(row["phone"]): int(row["id"]) for row in persons}
    messages = []
    for row in await client.execute_query_dict(
        _sql(client, "SELECT id, status, payload FROM outbox_message WHERE topic = ?"), [SMS_SEND]
    ):
        payload = row["payload"]
        payload = json.loads(payload) if isinstance(payload, str | bytes) else payload
        if isinstance(payload, dict) and payload.get("phone"):
            messages.append((int(row["id"]), str(row["status"]), payload))
    unknown_pending = [
        p for _, status, p in messages if status == PENDING and str(p["phone"]) not in person_of_phone
    ]
    if not persons and not unknown_pending and not messages:
        return
    vault = (
        migration_vault(f"encrypt {len(persons) + len(unknown_pending)} phone numbers")
        if persons or unknown_pending
        else None
    )

    for phone, person_id in person_of_phone.items():
        assert vault is not None
        await client.execute_query(
            _sql(client, "UPDATE person SET phone_enc = ?, phone_index = ? WHERE id = ?"),
            [vault.encrypt_phone(phone), vault.phone_index(phone), person_id],
        )
    for message_id, status, payload in messages:
        rewritten = _without_phone(payload, status, person_of_phone, vault)
        cast = "CAST(? AS JSONB)" if _dialect(client) == "postgres" else "?"
        await client.execute_query(
            _sql(client, f"UPDATE outbox_message SET payload = {cast} WHERE id = ?"),  # noqa: S608 - constant
            [json.dumps(rewritten, ensure_ascii=False, separators=(",", ":")), message_id],
        )


def _without_phone(
    payload: dict[str, Any], status: str, person_of_phone: dict[str, int], vault: Any
) -> dict[str, Any]:
    """The new SMS payload: `person_id` where a person has the phone; otherwise, for a message
    still to be sent, the phone encrypted (the handler sends to it); for one already delivered or
    dead, the phone masked (enough for an operator to recognise it, not to dial it)."""
    rest = {k: v for k, v in payload.items() if k != "phone"}
    phone = str(payload["phone"])
    person_id = person_of_phone.get(phone)
    if person_id is not None:
        return {"person_id": person_id, **rest}
    if status == PENDING:
        return {"phone_enc": vault.encrypt_phone(phone), **rest}
    return {"phone_masked": mask_phone(phone), **rest}


async def check_foreign_keys(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    if _dialect(client) != "sqlite":
        return
    broken = await client.execute_query_dict("PRAGMA foreign_key_check")
    if broken:
        raise RuntimeError(f"0005 left rows whose foreign keys point nowhere: {broken[:5]}")


class Migration(migrations.Migration):
    dependencies = [('models', '0004_sign_in_hardening')]

    initial = False

    operations = [
        ops.RunPython(require_sqlite_foreign_keys_off),
        ops.AddField(
            model_name='Person',
            name='phone_enc',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='Person',
            name='phone_index',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.RunPython(protect_existing_rows),
        ops.RemoveField(model_name='Person', name='phone'),
        ops.RemoveField(model_name='Person', name='id_number_masked'),
        ops.RemoveField(model_name='Person', name='birth_date'),
        ops.RemoveField(model_name='Person', name='gender'),
        ops.AlterModelOptions(
            name='Person',
            options={'table': 'person', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A natural person in the register.'},
        ),
        ops.RunPython(check_foreign_keys),
    ]
