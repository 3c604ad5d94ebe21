"""Appointments (services/appointments/models.py) and the Idempotency-Key store (services/idempotency).

- `office_timetable`, `office_closure`: opening hours, services, closed days of an office;
- `slot_template`, `slot`: how slots are made and released; a slot's seats (`booked` < `capacity`);
- `appointment`, `waitlist_entry`: bookings (one active per person, service and case: the unique
  `active_key`) and the queue for a full slot;
- `idempotency_record`: one row per caller and Idempotency-Key.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_certificates')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('scope', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=255)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('status', fields.CharField(default='running', max_length=12)),
                ('response_status', fields.IntField(null=True)),
                ('response_body', fields.BinaryField(null=True)),
                ('response_headers', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_record', 'app': 'models', 'unique_together': (('scope', 'key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OfficeClosure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='code', related_name='closures', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('reason', fields.CharField(max_length=100)),
            ],
            options={'table': 'office_closure', 'app': 'models', 'unique_together': (('office_id', 'day'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OfficeTimetable',
            fields=[
                ('office', fields.OneToOneField('models.Office', source_field='office_id', primary_key=True, db_index=True, db_constraint=True, to_field='code', related_name='timetable', on_delete=OnDelete.CASCADE)),
                ('opening_hours', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('services', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('phone', fields.CharField(null=True, max_length=32)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'office_timetable', 'app': 'models', 'pk_attr': 'office_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SlotTemplate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='code', related_name='slot_templates', on_delete=OnDelete.CASCADE)),
                ('service', fields.CharField(max_length=32)),
                ('weekdays', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('day_start', fields.CharField(max_length=5)),
                ('day_end', fields.CharField(max_length=5)),
                ('duration_min', fields.IntField()),
                ('capacity', fields.IntField()),
                ('release_days_ahead', fields.IntField(default=14)),
                ('release_at', fields.CharField(default='08:00', max_length=5)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'slot_template', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Slot',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('office', fields.ForeignKeyField('models.Office', source_field='office_id', db_constraint=True, to_field='code', related_name='slots', on_delete=OnDelete.CASCADE)),
                ('service', fields.CharField(max_length=32)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('capacity', fields.IntField()),
                ('booked', fields.IntField(default=0)),
                ('released_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('template', fields.ForeignKeyField('models.SlotTemplate', source_field='template_id', null=True, db_constraint=True, to_field='id', related_name='slots', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'slot', 'app': 'models', 'unique_together': (('office_id', 'service', 'starts_at'),), 'indexes': [Index(fields=['office_id', 'service', 'starts_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Appointment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ref', fields.CharField(unique=True, max_length=24)),
                ('person', fields.ForeignKeyField('models.Person', source_field='person_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('slot', fields.ForeignKeyField('models.Slot', source_field='slot_id', db_constraint=True, to_field='id', related_name='appointments', on_delete=OnDelete.RESTRICT)),
                ('office_code', fields.CharField(max_length=16)),
                ('service', fields.CharField(max_length=32)),
                ('right_id', fields.BigIntField(null=True)),
                ('case_ref', fields.CharField(null=True, max_length=32)),
                ('status', fields.CharField(default='booked', max_length=12)),
                ('active_key', fields.CharField(null=True, unique=True, max_length=96)),
                ('with_tax', fields.BooleanField(default=False)),
                ('tax_ref', fields.CharField(null=True, max_length=64)),
                ('tax_slot_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('centre_ref', fields.CharField(null=True, max_length=64)),
                ('centre_status', fields.CharField(default='pending', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('checked_in_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('rescheduled_from', fields.BigIntField(null=True)),
            ],
            options={'table': 'appointment', 'app': 'models', 'indexes': [Index(fields=['person_id', 'status']), Index(fields=['office_code', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slot', fields.ForeignKeyField('models.Slot', source_field='slot_id', db_constraint=True, to_field='id', related_name='waitlist', on_delete=OnDelete.CASCADE)),
                ('person', fields.ForeignKeyField('models.Person', source_field='person_id', db_constraint=True, to_field='id', related_name='waitlist_entries', on_delete=OnDelete.CASCADE)),
                ('service', fields.CharField(max_length=32)),
                ('status', fields.CharField(default='waiting', max_length=12)),
                ('offered_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'waitlist_entry', 'app': 'models', 'unique_together': (('slot_id', 'person_id'),), 'indexes': [Index(fields=['slot_id', 'status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
