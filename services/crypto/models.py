"""What the database knows of its cryptography profile (services/crypto/switch.py)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

STATE_ID = 1


# One row (id 1). `profile`: the profile every blind index in the database was computed under,
# and the one the service must run with. `switching_to`: a switch under way (the service refuses
# to start until it is finished); `checkpoint`: where it got to ({"phase": ..., "after": <pk>}),
# written in each batch's transaction, so a rerun resumes after the last committed batch.
class CryptoState(Model):
    id = fields.IntField(primary_key=True)
    profile = fields.CharField(max_length=16)
    switching_to = fields.CharField(max_length=16, null=True)
    checkpoint: Any = fields.JSONField(null=True)
    updated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "crypto_state"


# An access-log entry keeps the blind index it was written with (`access_log.person_index`, read
# of someone without a row in the register) and can never be rewritten: the hash chain covers it.
# A profile switch records here, for every such index it recomputes, the old one next to the new,
# so a citizen's access log still finds the reads made before the switch.
class CryptoIndexAlias(Model):
    id = fields.BigIntField(primary_key=True)
    new_index = fields.CharField(max_length=64, db_index=True)
    old_index = fields.CharField(max_length=64)
    old_profile = fields.CharField(max_length=16)

    class Meta:
        table = "crypto_index_alias"
        unique_together = (("new_index", "old_index"),)
