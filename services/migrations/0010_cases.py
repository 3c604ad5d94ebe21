"""Registration cases for every kind of registration (issue 12): the case's office, details,
tax side and certificate; its parties (`case_party`) and its moves (`case_event`); the number
allocator's series (`number_series`); the utility account transfers a transfer carries
(`utility_transfer`).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_slot_stripes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CaseEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.RegistrationCase', source_field='case_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('from_state', fields.CharField(null=True, max_length=16)),
                ('to_state', fields.CharField(max_length=16)),
                ('actor_kind', fields.CharField(max_length=12)),
                ('actor_id', fields.CharField(max_length=64)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'case_event', 'app': 'models', 'indexes': [Index(fields=['case_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CaseParty',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.RegistrationCase', source_field='case_id', db_constraint=True, to_field='id', related_name='parties', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharField(max_length=16)),
                ('person', fields.ForeignKeyField('models.Person', source_field='person_id', null=True, db_constraint=True, to_field='id', related_name='case_roles', on_delete=OnDelete.RESTRICT)),
                ('organisation', fields.ForeignKeyField('models.Organisation', source_field='organisation_id', null=True, db_constraint=True, to_field='id', related_name='case_roles', on_delete=OnDelete.RESTRICT)),
                ('share', fields.DecimalField(null=True, max_digits=7, decimal_places=6)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'case_party', 'app': 'models', 'unique_together': (('case_id', 'role', 'person_id'),), 'indexes': [Index(fields=['person_id', 'case_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NumberSeries',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('last_value', fields.BigIntField()),
            ],
            options={'table': 'number_series', 'app': 'models', 'pk_attr': 'name'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UtilityTransferRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.RegistrationCase', source_field='case_id', db_constraint=True, to_field='id', related_name='utility_transfers', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=16)),
                ('provider', fields.CharField(max_length=64)),
                ('account_no', fields.CharField(max_length=32)),
                ('state', fields.CharField(default='pending', max_length=16)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('provider_ref', fields.CharField(null=True, max_length=64)),
                ('final_reading', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('idempotency_key', fields.CharField(unique=True, max_length=128)),
                ('attempts', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'utility_transfer', 'app': 'models', 'unique_together': (('case_id', 'kind'),), 'indexes': [Index(fields=['state', 'updated_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='certificate_number',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='details',
            field=fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='office',
            field=fields.ForeignKeyField('models.Office', source_field='office_id', null=True, db_constraint=True, to_field='code', related_name='cases', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='open_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='tax_ref',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='RegistrationCase',
            name='tax_status',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddIndex(
            model_name='RegistrationCase',
            index=Index(fields=['office_id', 'state', 'applied_at']),
        ),
    ]
