"""Outbox topics of the certificates domain (delivered to the e-licence library).

The messages carry the certificate's id, not its PDF: the handler renders the document when it
files it (a PDF in a JSON row would be a copy of personal data in the outbox, and stale the
moment the certificate changed). A revocation names the filing's message as its predecessor
(`enqueue(after=...)`), so it is never delivered before the library has the licence it revokes.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.outbox.topics import declare


@dataclass(frozen=True)
class StoreLicense:
    certificate_id: int


@dataclass(frozen=True)
class RevokeLicense:
    certificate_id: int
    reason: str


ELICENSE_STORE = declare("elicense.store_license", StoreLicense)
ELICENSE_REVOKE = declare("elicense.revoke_license", RevokeLicense)


def store_key(serial: str) -> str:
    """The filing's idempotency key: one filing per certificate, whoever enqueues it."""
    return f"elicense.store:{serial}"
