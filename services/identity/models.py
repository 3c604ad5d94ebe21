"""Sign-in state: staff accounts, bank API clients, one-time codes, refresh tokens, revocations.

Accounts with a secret count failed attempts (`failed_logins`, reserved before each check, see
services/identity/auth.py) and lock until `locked_until`; `last_attempt_at` lets a count left behind by a
crash clear itself after a quiet lock period. Phones appear only as their blind index.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class StaffUser(Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=64)
    password_hash = fields.CharField(max_length=256)
    role = fields.CharField(max_length=16)  # clerk | admin | organisation
    office_code = fields.CharField(max_length=16, null=True)
    # Staff of an organisation (role `organisation`, e.g. a developer's): the one it acts for.
    organisation_id = fields.BigIntField(null=True)
    active = fields.BooleanField(default=True)
    failed_logins = fields.IntField(default=0, db_default=0)  # db_default: rows older than 0004
    locked_until = fields.DatetimeField(null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "staff_user"


# An OAuth2 client-credentials client: a bank's (onboarded from config/banks.toml) or another
# organisation's own system (role `organisation`, e.g. a developer's; no bank code).
class ApiClient(Model):
    id = fields.BigIntField(primary_key=True)
    client_id = fields.CharField(max_length=64, unique=True)
    secret_hash = fields.CharField(max_length=256)
    organisation_id = fields.BigIntField()
    role = fields.CharField(max_length=16, default="bank", db_default="bank")  # bank | organisation
    bank_code = fields.CharField(max_length=32, null=True)
    scopes = fields.CharField(max_length=256)
    active = fields.BooleanField(default=True)
    failed_logins = fields.IntField(default=0, db_default=0)  # db_default: rows older than 0004
    locked_until = fields.DatetimeField(null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_client"


class OtpChallenge(Model):
    id = fields.BigIntField(primary_key=True)
    phone_index = fields.CharField(max_length=64, db_index=True)  # PiiVault.blind_index(phone, "phone")
    request_key = fields.CharField(max_length=64, unique=True)  # the outbox message that made it
    code_hash = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    consumed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "otp_challenge"


# One row per issued refresh token; a family is one sign-in, rotated on every use.
class RefreshToken(Model):
    id = fields.CharField(max_length=64, primary_key=True)  # sha256 of the opaque token
    family_id = fields.CharField(max_length=32, db_index=True)
    subject = fields.CharField(max_length=64)
    role = fields.CharField(max_length=16)
    claims: Any = fields.JSONField(default=dict)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "refresh_token"


# A revoked access token (`jti:<id>`) or sign-in (`sid:<refresh family>`), kept until the last
# token it covers has expired. Requests read the copy in the key-value store (services/identity/auth.py).
class RevokedToken(Model):
    key = fields.CharField(max_length=96, primary_key=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "revoked_token"
