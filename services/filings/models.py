"""Rows of bank mortgage filings (issue 14): the participating banks (the one source of truth for
who may file and where their callbacks go), the filings, their attachments and each bank's daily
count.

Invariant (banks): a bank's callback signing secret is stored encrypted with the PII vault
(`callback_secret_enc`, context `bank_callback_secret`), so a database dump does not let anyone
sign callbacks in our name; its client secret is not stored at all, only its argon2 hash on the
`api_client` row (services/identity/models.py).

Invariant (quota): a bank's filings of a day are counted by one conditional update of its
`bank_daily_usage` row (`used = used + 1 WHERE used < quota`) in the transaction that accepts the
filing; the row count decides, so concurrent filings never pass the quota, and a rolled-back
filing gives its count back.

What a filing keeps, and why: no ID number. Mortgagors are `case_party` rows of the filing's case
(persons already in the register); a rejected filing keeps only the error codes, so a bank's typo
in an ID number leaves nothing personal behind.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from services.registry.models import Mortgage, Organisation, RealEstateUnit, RegistrationCase, Right

# ParticipatingBank.status
ACTIVE = "active"
SUSPENDED = "suspended"

# MortgageFiling.type
CREATE = "create"
CHANGE = "change"
CANCEL = "cancel"
FILING_TYPES = (CREATE, CHANGE, CANCEL)

# MortgageFiling.status
VALIDATING = "validating"
REJECTED = "rejected"
ACCEPTED = "accepted"
CLERK_REVIEW = "clerk_review"
REGISTERED = "registered"
FILING_STATUSES = (VALIDATING, REJECTED, ACCEPTED, CLERK_REVIEW, REGISTERED)


class ParticipatingBank(Model):
    """A bank that files mortgages with us. Registered by an administrator (or, for the demo, the
    seeder from config/banks.toml); read per request and per callback, never cached at start."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)  # e.g. icbc-sh; in URLs, logs, tokens
    organisation: fields.ForeignKeyRelation[Organisation] = fields.ForeignKeyField(
        "models.Organisation", related_name="participations", on_delete=fields.RESTRICT
    )
    branches: Any = fields.JSONField(default=list)  # ["浦东支行", ...]
    filing_types = fields.CharField(max_length=32, default="create change cancel")
    daily_quota = fields.IntField(default=1000)
    callback_url = fields.CharField(max_length=512)
    callback_secret_enc = fields.CharField(max_length=512)
    adapter = fields.CharField(max_length=32, default="signed-json-v2")
    # The MAC the bank verifies our callbacks with (integrations/banks/base.py CALLBACK_MACS);
    # NULL: the cryptography profile's, so a bank that chose none follows a profile switch.
    callback_mac = fields.CharField(max_length=16, null=True)
    status = fields.CharField(max_length=12, default=ACTIVE)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "participating_bank"


class MortgageFiling(Model):
    id = fields.BigIntField(primary_key=True)
    bank: fields.ForeignKeyRelation[ParticipatingBank] = fields.ForeignKeyField(
        "models.ParticipatingBank", related_name="filings", on_delete=fields.RESTRICT
    )
    type = fields.CharField(max_length=8)  # create | change | cancel
    status = fields.CharField(max_length=16, default=VALIDATING)
    case: fields.ForeignKeyNullableRelation[RegistrationCase] = fields.ForeignKeyField(
        "models.RegistrationCase", related_name="filings", null=True, on_delete=fields.RESTRICT
    )
    unit: fields.ForeignKeyNullableRelation[RealEstateUnit] = fields.ForeignKeyField(
        "models.RealEstateUnit", related_name="filings", null=True, on_delete=fields.RESTRICT
    )
    right: fields.ForeignKeyNullableRelation[Right] = fields.ForeignKeyField(
        "models.Right", related_name="filings", null=True, on_delete=fields.RESTRICT
    )
    # create: the mortgage registered; change and cancel: the mortgage changed or ended.
    mortgage: fields.ForeignKeyNullableRelation[Mortgage] = fields.ForeignKeyField(
        "models.Mortgage", related_name="filings", null=True, on_delete=fields.RESTRICT
    )
    contract_number = fields.CharField(max_length=64)
    amount_fen = fields.BigIntField(null=True)
    term_start = fields.DateField(null=True)
    term_end = fields.DateField(null=True)
    borrower_name = fields.CharField(max_length=64, null=True)
    submitted_by = fields.CharField(max_length=64)  # the bank's staff member, as the bank names them
    errors: Any = fields.JSONField(default=list)  # [{"code", "message", "field"}]
    warnings: Any = fields.JSONField(default=list)
    reason = fields.CharField(max_length=200, null=True)  # a clerk's refusal
    priority_at = fields.DatetimeField(null=True)  # 受理时间: the mortgage's priority
    certificate_number = fields.CharField(max_length=64, null=True)  # 不动产登记证明号
    filed_on = fields.DateField()  # the day in Asia/Shanghai: the quota's day, the list's filter
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "mortgage_filing"
        indexes = (Index(fields=("bank_id", "status", "filed_on")), Index(fields=("case_id",)))


class FilingAttachment(Model):
    """A document a bank uploaded for a filing; the bytes are in the attachment storage
    (services/filings/storage.py), addressed by `storage_key`."""

    id = fields.BigIntField(primary_key=True)
    bank: fields.ForeignKeyRelation[ParticipatingBank] = fields.ForeignKeyField(
        "models.ParticipatingBank", related_name="attachments", on_delete=fields.RESTRICT
    )
    filing: fields.ForeignKeyNullableRelation[MortgageFiling] = fields.ForeignKeyField(
        "models.MortgageFiling", related_name="attachments", null=True, on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=128)
    content_type = fields.CharField(max_length=64)
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=128, unique=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "filing_attachment"


class BankDailyUsage(Model):
    """Filings a bank had accepted on one day (Asia/Shanghai); key `<bank id>:<YYYY-MM-DD>`."""

    key = fields.CharField(max_length=48, primary_key=True)
    used = fields.IntField(default=0)

    class Meta:
        table = "bank_daily_usage"
