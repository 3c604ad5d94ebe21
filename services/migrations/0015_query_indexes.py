"""Indexes the query-plan test found missing (issue 15, tests/integration/test_query_plans.py):
on a city-sized register these requests read a whole table for a few rows (docs/scale.md, "Query
plans").

- `mortgage_filing (case_id)`: a bank's filing is found by its case (POST
  /api/v1/bank/mortgage-filings reads it back, and every move of any case asks whether the case
  is a bank's filing, services/filings/progress.py); a foreign key gets no index of its own in
  PostgreSQL.
- `slot_stripe (slot_id) WHERE booked < capacity`: the stripes with a free seat, which every list
  of bookable slots asks for (`services.appointments.seats.with_free_seat`: GET /api/v1/offices
  and an office's day). The table grows with every day of slots, kept or past; a partial index
  holds only the open stripes, so the check reads a small index instead of the table. Tortoise's
  `PartialIndex` knows only `column = value` conditions, so this one is SQL (both backends have
  partial indexes) and is not in the model's `Meta.indexes`; the model's docstring names it.
- `slot (starts_at)`: the bookable slots of every office (GET /api/v1/offices: each office's next
  free slot, `starts_at > now`) and an office's appointments of a day (GET
  /api/v1/clerk/appointments, by the slots' `starts_at`) read the slots of a few days; with only
  `(office_id, service, starts_at)` the planner read every slot ever made, which grows by some
  300,000 a year in the city (found on the padded register, tests/support/padding.py).
"""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0014_access_log_partitions")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="MortgageFiling",
            index=Index(fields=["case_id"]),
        ),
        ops.AddIndex(
            model_name="Slot",
            index=Index(fields=["starts_at"]),
        ),
        ops.RunSQL(
            "CREATE INDEX idx_slot_stripe_free ON slot_stripe (slot_id) WHERE booked < capacity",
            reverse_sql="DROP INDEX idx_slot_stripe_free",
        ),
    ]
