"""Outbox topics of the certificates domain (delivered through the e-licence library).

`elicense.store_license` has no handler yet (the certificates feature has not landed), so
`enqueue` refuses it until the composition root wires one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.outbox.topics import declare


@dataclass(frozen=True)
class StoreLicense:
    license_type: str  # e.g. "no_housing_certificate"
    number: str
    holder_ref: str
    issued_at: datetime
    pdf_base64: str  # the signed PDF; its SHA-256 is computed when it is filed
    valid_until: date | None = None


@dataclass(frozen=True)
class RevokeLicense:
    license_id: str
    reason: str


ELICENSE_STORE = declare("elicense.store_license", StoreLicense)
ELICENSE_REVOKE = declare("elicense.revoke_license", RevokeLicense)
