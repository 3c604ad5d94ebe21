"""A slot's seats in stripes (services/appointments/seats.py): `slot_stripe` rows replace `slot.booked`.

- `slot_stripe(slot_id, stripe, capacity, booked)`, unique per slot and stripe: each existing slot
  gets `min(capacity, 8)` stripes (at least one), its capacity and its taken seats each spread
  evenly over them, so every stripe starts with booked <= capacity and the sums are the slot's.
- `appointment.stripe`, `waitlist_entry.stripe`: where a seat goes back to. Active appointments and
  open waitlist offers of a slot are given the stripes of its taken seats, in id order.
- `slot.booked` is dropped: a count on the slot row would be either a hot row again or a lie.

`booked` is dropped with `ALTER TABLE slot DROP COLUMN booked` on both backends (SQLite has it
since 3.35), not with Tortoise's RemoveField: on SQLite that copies the table and the copy loses
the unique (office, service, starts_at) and the index, on which the release of slots relies.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

STRIPES = 8  # frozen here: services/appointments/seats.py may change its own later


def _dialect(client: BaseDBAsyncClient) -> str:
    return str(client.capabilities.dialect)


def _sql(client: BaseDBAsyncClient, query: str) -> str:
    """`?` placeholders for SQLite, `$1, $2 ...` for PostgreSQL."""
    if _dialect(client) != "postgres":
        return query
    parts = query.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def _spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def stripe_existing_slots(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    slots = await client.execute_query_dict("SELECT id, capacity, booked FROM slot ORDER BY id")
    holders = await client.execute_query_dict(
        "SELECT slot_id, 'appointment' AS kind, id FROM appointment WHERE status = 'booked' "
        "UNION ALL SELECT slot_id, 'waitlist_entry' AS kind, id FROM waitlist_entry WHERE status = 'offered' "
        "ORDER BY 1, 2, 3"
    )
    by_slot: dict[int, list[tuple[str, int]]] = {}
    for row in holders:
        by_slot.setdefault(int(row["slot_id"]), []).append((str(row["kind"]), int(row["id"])))
    stripes: list[list[int]] = []
    given: dict[str, list[list[int]]] = {"appointment": [], "waitlist_entry": []}
    for slot in slots:
        slot_id, capacity = int(slot["id"]), max(0, int(slot["capacity"]))
        booked = min(max(0, int(slot["booked"])), capacity)  # a stripe never starts over its capacity
        count = max(1, min(capacity, STRIPES))
        seats, taken = _spread(capacity, count), _spread(booked, count)
        stripes += [[slot_id, i, seats[i], taken[i]] for i in range(count)]
        # Each holder of a taken seat gets a stripe with a seat taken to give back to.
        owners = [i for i in range(count) for _ in range(taken[i])] or [0]
        for n, (kind, row_id) in enumerate(by_slot.get(slot_id, [])):
            given[kind].append([owners[n % len(owners)], row_id])
    if stripes:
        await client.execute_many(
            _sql(client, "INSERT INTO slot_stripe (slot_id, stripe, capacity, booked) VALUES (?, ?, ?, ?)"),
            stripes,
        )
    for table, rows in given.items():
        if rows:
            await client.execute_many(_sql(client, f"UPDATE {table} SET stripe = ? WHERE id = ?"), rows)


class DropColumn(ops.RemoveField):
    """RemoveField as a plain `ALTER TABLE ... DROP COLUMN` on every backend (module docstring)."""

    async def database_forward(
        self,
        app_label: str,
        old_state: Any,
        new_state: Any,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if not state_editor:
            return
        model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
        column = model._meta.fields_map[self.name].source_field or self.name
        await state_editor.client.execute_script(
            f'ALTER TABLE "{model._meta.db_table}" DROP COLUMN "{column}"'
        )


class Migration(migrations.Migration):
    dependencies = [('models', '0008_appointments_idempotency')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SlotStripe',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slot', fields.ForeignKeyField('models.Slot', source_field='slot_id', db_constraint=True, to_field='id', related_name='stripes', on_delete=OnDelete.CASCADE)),
                ('stripe', fields.SmallIntField()),
                ('capacity', fields.IntField()),
                ('booked', fields.IntField(default=0)),
            ],
            options={'table': 'slot_stripe', 'app': 'models', 'unique_together': (('slot_id', 'stripe'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Appointment',
            name='stripe',
            field=fields.SmallIntField(null=True),
        ),
        ops.AddField(
            model_name='WaitlistEntry',
            name='stripe',
            field=fields.SmallIntField(null=True),
        ),
        ops.RunPython(stripe_existing_slots),
        DropColumn(model_name='Slot', name='booked'),
    ]
