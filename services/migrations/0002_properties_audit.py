from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccessLogEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('seq', fields.BigIntField(unique=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reader_subject', fields.CharField(max_length=64)),
                ('reader_role', fields.CharField(max_length=16)),
                ('reader_display', fields.CharField(max_length=128)),
                ('person_id', fields.BigIntField(null=True)),
                ('person_index', fields.CharField(null=True, max_length=64)),
                ('action', fields.CharField(max_length=64)),
                ('object_type', fields.CharField(max_length=32)),
                ('object_id', fields.CharField(null=True, max_length=64)),
                ('purpose', fields.CharField(max_length=64)),
                ('request_id', fields.CharField(null=True, max_length=64)),
                ('prev_hash', fields.CharField(max_length=64)),
                ('hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'access_log', 'app': 'models', 'indexes': [Index(fields=['person_id', 'seq']), Index(fields=['person_index', 'seq'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AccessLogHead',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('last_seq', fields.BigIntField(default=0)),
                ('last_hash', fields.CharField(max_length=64)),
                ('updated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'access_log_head', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GuardianshipLink',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('guardian', fields.ForeignKeyField('models.Person', source_field='guardian_id', db_constraint=True, to_field='id', related_name='ward_links', on_delete=OnDelete.RESTRICT)),
                ('ward_person', fields.ForeignKeyField('models.Person', source_field='ward_person_id', null=True, db_constraint=True, to_field='id', related_name='guardian_links', on_delete=OnDelete.RESTRICT)),
                ('ward_id_number_enc', fields.CharField(max_length=128)),
                ('ward_id_number_index', fields.CharField(db_index=True, max_length=64)),
                ('ward_id_number_masked', fields.CharField(max_length=18)),
                ('access_ends_on', fields.DateField()),
                ('relation', fields.CharField(null=True, max_length=32)),
                ('status', fields.CharField(default='active', max_length=12)),
                ('linked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('verified_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('suspended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('suspended_reason', fields.CharField(null=True, max_length=64)),
                ('last_alert_sms_on', fields.DateField(null=True)),
            ],
            options={'table': 'guardianship_link', 'app': 'models', 'unique_together': (('guardian_id', 'ward_id_number_index'),), 'indexes': [Index(fields=['ward_id_number_index', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person', fields.ForeignKeyField('models.Person', source_field='person_id', db_constraint=True, to_field='id', related_name='inbox', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=32)),
                ('title', fields.CharField(max_length=100)),
                ('body', fields.TextField(unique=False)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inbox_message', 'app': 'models', 'indexes': [Index(fields=['person_id', 'id']), Index(fields=['person_id', 'read_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
