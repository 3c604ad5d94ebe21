"""The access log at scale (docs/decisions/0007): monthly partitions on PostgreSQL, and signed
checkpoints of the chain's head on both backends.

PostgreSQL: `access_log` becomes `PARTITION BY RANGE (occurred_at)`, one partition per UTC
calendar month (`access_log_y2026m12`), from the month of the oldest entry to three months ahead
(the service makes further ones, services/audit/partitions.py). Existing rows are copied over in
seq order and the old table dropped; the id sequence moves to the new table. A unique constraint
on a partitioned table must contain the partition key, so the table holds (id, occurred_at) and
(seq, occurred_at) unique; seq alone stays unique because only appends write entries, and an append
moves the head row from exactly the seq it read (services/audit/log.py). The lookup indexes
(person_id, seq) and (person_index, seq) are made on the parent, so every partition has them. The
append-only triggers of migration 0003 are made again on the parent: PostgreSQL clones the row
trigger (UPDATE, DELETE refused) onto every partition; the TRUNCATE statement trigger is put on the
parent and on each partition. No DEFAULT partition (services/audit/partitions.py says why).

SQLite: the log is not partitioned (no native partitioning); only the checkpoint table is made.

The copy takes an exclusive lock on the log for its duration: at hundreds of millions of rows, run
it in a maintenance window.
"""

from datetime import UTC, datetime

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

_MONTHS_AHEAD = 3
_COLUMNS = (
    "id, seq, occurred_at, reader_subject, reader_role, reader_display, person_id, person_index, "
    "action, object_type, object_id, purpose, request_id, prev_hash, hash"
)

_PARTITION_PARENT = """
ALTER TABLE access_log RENAME TO access_log_unpartitioned;
ALTER TABLE access_log_unpartitioned RENAME CONSTRAINT access_log_pkey TO access_log_unpartitioned_pkey;
ALTER TABLE access_log_unpartitioned RENAME CONSTRAINT access_log_seq_key TO access_log_unpartitioned_seq_key;
DROP INDEX IF EXISTS idx_access_log_person__38868f;
DROP INDEX IF EXISTS idx_access_log_person__04ed03;
CREATE TABLE access_log (
    LIKE access_log_unpartitioned INCLUDING DEFAULTS,
    CONSTRAINT access_log_pkey PRIMARY KEY (id, occurred_at),
    CONSTRAINT access_log_seq_occurred_at_key UNIQUE (seq, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX idx_access_log_person__38868f ON access_log (person_id, seq);
CREATE INDEX idx_access_log_person__04ed03 ON access_log (person_index, seq);
ALTER SEQUENCE access_log_id_seq OWNED BY access_log.id;
"""

_TRIGGERS = """
CREATE TRIGGER access_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_no_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
"""

_CHECKPOINT_APPEND_ONLY = {
    "postgres": """
CREATE TRIGGER access_log_checkpoint_no_update_or_delete
    BEFORE UPDATE OR DELETE ON access_log_checkpoint
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_checkpoint_no_truncate
    BEFORE TRUNCATE ON access_log_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
""",
    "sqlite": """
CREATE TRIGGER access_log_checkpoint_no_update BEFORE UPDATE ON access_log_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'access_log_checkpoint is append-only: UPDATE rejected');
END;
CREATE TRIGGER access_log_checkpoint_no_delete BEFORE DELETE ON access_log_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'access_log_checkpoint is append-only: DELETE rejected');
END;
""",
}


def _month(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def _next(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _partition(month: datetime) -> str:
    # The same DDL as services/audit/partitions.py makes; a migration keeps its own frozen copy.
    name = f"access_log_y{month.year:04d}m{month.month:02d}"
    return (
        f"CREATE TABLE {name} PARTITION OF access_log "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}');\n"
        f"CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();\n"
    )


async def partition_access_log(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    dialect = str(client.capabilities.dialect)
    if dialect == "sqlite":
        return
    if dialect != "postgres":
        raise NotImplementedError(f"access_log partitions are not written for {dialect}")
    oldest = (await client.execute_query_dict("SELECT min(occurred_at) AS t FROM access_log"))[0]["t"]
    now = datetime.now(UTC)
    month, last = _month(oldest or now), _month(now)
    for _ in range(_MONTHS_AHEAD):
        last = _next(last)
    newest = (await client.execute_query_dict("SELECT max(occurred_at) AS t FROM access_log"))[0]["t"]
    if newest is not None:
        last = max(last, _month(newest))
    script = _PARTITION_PARENT
    while month <= last:
        script += _partition(month)
        month = _next(month)
    script += (
        f"INSERT INTO access_log ({_COLUMNS}) SELECT {_COLUMNS} FROM access_log_unpartitioned ORDER BY seq;\n"
        "DROP TABLE access_log_unpartitioned;\n"
    )
    await client.execute_script(script + _TRIGGERS)


async def checkpoints_append_only(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    dialect = str(schema_editor.client.capabilities.dialect)
    if dialect not in _CHECKPOINT_APPEND_ONLY:
        raise NotImplementedError(f"access_log_checkpoint triggers are not written for {dialect}")
    await schema_editor.client.execute_script(_CHECKPOINT_APPEND_ONLY[dialect])


class Migration(migrations.Migration):
    dependencies = [("models", "0013_crypto_profile")]

    initial = False

    operations = [
        ops.RunPython(partition_access_log),
        ops.CreateModel(
            name="AccessLogCheckpoint",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("seq", fields.BigIntField(db_index=True)),
                ("hash", fields.CharField(max_length=64)),
                ("algorithm", fields.CharField(max_length=8)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("key_id", fields.CharField(max_length=32)),
                ("signature", fields.CharField(max_length=256)),
            ],
            options={"table": "access_log_checkpoint", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.RunPython(checkpoints_append_only),
    ]
