"""The access log becomes append-only in the database itself: triggers reject UPDATE, DELETE
(and on PostgreSQL TRUNCATE) of `access_log` rows, whoever sends them.

The hash chain (services/audit/log.py) shows an edit after the fact; the triggers stop the
application, a script or a hand-typed statement from making one at all. They do not stop
someone allowed to drop or disable a trigger (on SQLite: anyone who can open the file), which is
why the chain and the published head hash stay. `access_log_head` keeps no trigger: each append
moves it.

On PostgreSQL the rejection is SQLSTATE 23000 (integrity_constraint_violation), so the driver's
error arrives as Tortoise's IntegrityError, as SQLite's RAISE(ABORT) already does.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

FORWARD = {
    "postgres": """
CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only: % rejected', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER access_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_no_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
""",
    "sqlite": """
CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'access_log is append-only: UPDATE rejected');
END;
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'access_log is append-only: DELETE rejected');
END;
""",
}

BACKWARD = {
    "postgres": """
DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log;
DROP TRIGGER IF EXISTS access_log_no_update_or_delete ON access_log;
DROP FUNCTION IF EXISTS access_log_append_only();
""",
    "sqlite": """
DROP TRIGGER IF EXISTS access_log_no_delete;
DROP TRIGGER IF EXISTS access_log_no_update;
""",
}


def _script(scripts: dict[str, str], schema_editor: BaseSchemaEditor) -> str:
    dialect = str(schema_editor.client.capabilities.dialect)
    if dialect not in scripts:  # a backend without the triggers must not pass for append-only
        raise NotImplementedError(f"access_log append-only triggers are not written for {dialect}")
    return scripts[dialect]


async def make_append_only(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    await schema_editor.client.execute_script(_script(FORWARD, schema_editor))


async def allow_changes(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    await schema_editor.client.execute_script(_script(BACKWARD, schema_editor))


class Migration(migrations.Migration):
    dependencies = [('models', '0002_properties_audit')]

    initial = False

    operations = [
        ops.RunPython(make_append_only, reverse_code=allow_changes),
    ]
