"""Drop the plain index on `slot (office_id, service, starts_at)`: the unique constraint on the
same columns has an index of its own (PostgreSQL and SQLite both build one for it), which answers
every look-up the plain one did. Two indexes on the same columns cost every slot a release writes
twice and served no query the other could not (tests/integration/test_query_plans.py checks the
plans on a padded city-sized register).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0016_bank_callback_mac")]

    initial = False

    operations = [
        ops.RemoveIndex(model_name="Slot", fields=["office_id", "service", "starts_at"]),
    ]
