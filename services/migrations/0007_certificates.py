"""No-housing certificates (services/certificates/models.py) and outbox ordering.

- `certificate`, `certificate_subject`: a certificate and the persons (blind index) it counted;
- `outbox_message.after_id`: a message is claimed only once the message it names is delivered
  (a revocation waits for the filing it revokes).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_guardianship_changes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Certificate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('serial', fields.CharField(unique=True, max_length=32)),
                ('cert_type', fields.CharField(max_length=24)),
                ('purpose', fields.CharField(max_length=32)),
                ('household_rule', fields.CharField(max_length=16)),
                ('person', fields.ForeignKeyField('models.Person', source_field='person_id', db_constraint=True, to_field='id', related_name='certificates', on_delete=OnDelete.RESTRICT)),
                ('as_of', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('valid_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharField(default='issued', max_length=12)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_reason', fields.CharField(null=True, max_length=200)),
                ('revoked_by', fields.CharField(null=True, max_length=64)),
                ('kid', fields.CharField(max_length=16)),
                ('token', fields.TextField(unique=False)),
                ('license_id', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'certificate', 'app': 'models', 'indexes': [Index(fields=['person_id', 'issued_at']), Index(fields=['status', 'valid_until'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CertificateSubject',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('certificate', fields.ForeignKeyField('models.Certificate', source_field='certificate_id', db_constraint=True, to_field='id', related_name='subjects', on_delete=OnDelete.CASCADE)),
                ('id_number_index', fields.CharField(db_index=True, max_length=64)),
                ('relation', fields.CharField(max_length=12)),
            ],
            options={'table': 'certificate_subject', 'app': 'models', 'unique_together': (('certificate_id', 'id_number_index'),), 'pk_attr': 'id', 'table_description': 'A person the certificate counted: `relation` is self | spouse | child.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='after_id',
            field=fields.BigIntField(null=True),
        ),
    ]
