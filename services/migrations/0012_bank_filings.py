"""Bank mortgage filings (issue 14): the participating banks (`participating_bank`, the one source
of truth for who may file, their quota and callbacks), the filings (`mortgage_filing`), their
attachments (`filing_attachment`, the bytes kept outside the database) and each bank's daily count
(`bank_daily_usage`); a mortgage's contract number, borrower and priority time.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0011_first_and_cancellation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BankDailyUsage',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=48)),
                ('used', fields.IntField(default=0)),
            ],
            options={'table': 'bank_daily_usage', 'app': 'models', 'pk_attr': 'key'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ParticipatingBank',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('organisation', fields.ForeignKeyField('models.Organisation', source_field='organisation_id', db_constraint=True, to_field='id', related_name='participations', on_delete=OnDelete.RESTRICT)),
                ('branches', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('filing_types', fields.CharField(default='create change cancel', max_length=32)),
                ('daily_quota', fields.IntField(default=1000)),
                ('callback_url', fields.CharField(max_length=512)),
                ('callback_secret_enc', fields.CharField(max_length=512)),
                ('adapter', fields.CharField(default='signed-json-v2', max_length=32)),
                ('status', fields.CharField(default='active', max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'participating_bank', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MortgageFiling',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bank', fields.ForeignKeyField('models.ParticipatingBank', source_field='bank_id', db_constraint=True, to_field='id', related_name='filings', on_delete=OnDelete.RESTRICT)),
                ('type', fields.CharField(max_length=8)),
                ('status', fields.CharField(default='validating', max_length=16)),
                ('case', fields.ForeignKeyField('models.RegistrationCase', source_field='case_id', null=True, db_constraint=True, to_field='id', related_name='filings', on_delete=OnDelete.RESTRICT)),
                ('unit', fields.ForeignKeyField('models.RealEstateUnit', source_field='unit_id', null=True, db_constraint=True, to_field='id', related_name='filings', on_delete=OnDelete.RESTRICT)),
                ('right', fields.ForeignKeyField('models.Right', source_field='right_id', null=True, db_constraint=True, to_field='id', related_name='filings', on_delete=OnDelete.RESTRICT)),
                ('mortgage', fields.ForeignKeyField('models.Mortgage', source_field='mortgage_id', null=True, db_constraint=True, to_field='id', related_name='filings', on_delete=OnDelete.RESTRICT)),
                ('contract_number', fields.CharField(max_length=64)),
                ('amount_fen', fields.BigIntField(null=True)),
                ('term_start', fields.DateField(null=True)),
                ('term_end', fields.DateField(null=True)),
                ('borrower_name', fields.CharField(null=True, max_length=64)),
                ('submitted_by', fields.CharField(max_length=64)),
                ('errors', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('warnings', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('priority_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('certificate_number', fields.CharField(null=True, max_length=64)),
                ('filed_on', fields.DateField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mortgage_filing', 'app': 'models', 'indexes': [Index(fields=['bank_id', 'status', 'filed_on'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FilingAttachment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bank', fields.ForeignKeyField('models.ParticipatingBank', source_field='bank_id', db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.RESTRICT)),
                ('filing', fields.ForeignKeyField('models.MortgageFiling', source_field='filing_id', null=True, db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=128)),
                ('content_type', fields.CharField(max_length=64)),
                ('size', fields.BigIntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('storage_key', fields.CharField(unique=True, max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'filing_attachment', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Mortgage',
            name='borrower_name',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Mortgage',
            name='contract_number',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Mortgage',
            name='priority_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
