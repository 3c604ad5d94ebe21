"""No-housing certificates (无房证明) and the people each one vouches for.

A certificate says: as of `as_of`, none of the persons counted for its purpose held a current
residential right anywhere in the city. Those persons are its `CertificateSubject` rows (the
holder, and for purposes that count the household the spouse and minor children), kept by ID
number blind index because a household member need not have a row in the register. When a later
registration gives any of them housing, the certificate is revoked in that registration's
transaction (services/certificates/revocation.py).

Kept in clear, and why: the serial (printed on the document and in the QR), the purpose and the
dates (shown to verifiers), and the signed token (the QR's content, reproduced on every
download; it holds only the masked name). No ID number is stored here.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import Person

ISSUED = "issued"
REVOKED = "revoked"


class Certificate(Model):
    id = fields.BigIntField(primary_key=True)
    serial = fields.CharField(max_length=32, unique=True)
    cert_type = fields.CharField(max_length=24)  # no-housing
    purpose = fields.CharField(max_length=32)
    household_rule = fields.CharField(max_length=16)  # person | household
    person: fields.ForeignKeyRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="certificates", on_delete=fields.RESTRICT
    )
    as_of = fields.DatetimeField()  # the register's state the decision read
    issued_at = fields.DatetimeField()
    valid_until = fields.DatetimeField()
    status = fields.CharField(max_length=12, default=ISSUED)  # issued | revoked (expiry is by time)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=200, null=True)
    revoked_by = fields.CharField(max_length=64, null=True)  # system:registration | staff:7
    kid = fields.CharField(max_length=16)
    token = fields.TextField()  # the signed QR payload (certificates/tokens.py)
    license_id = fields.CharField(max_length=64, null=True)  # the e-licence library's id, once filed

    class Meta:
        table = "certificate"
        indexes = (Index(fields=("person_id", "issued_at")), Index(fields=("status", "valid_until")))


class CertificateSubject(Model):
    """A person the certificate counted: `relation` is self | spouse | child."""

    id = fields.BigIntField(primary_key=True)
    certificate: fields.ForeignKeyRelation[Certificate] = fields.ForeignKeyField(
        "models.Certificate", related_name="subjects", on_delete=fields.CASCADE
    )
    id_number_index = fields.CharField(max_length=64, db_index=True)
    relation = fields.CharField(max_length=12)

    class Meta:
        table = "certificate_subject"
        unique_together = (("certificate_id", "id_number_index"),)
