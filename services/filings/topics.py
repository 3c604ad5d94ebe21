"""Outbox topics of bank filings: the callback that tells a bank where its filing stands."""

from __future__ import annotations

from dataclasses import dataclass

from services.outbox.topics import declare


@dataclass(frozen=True)
class FilingNotice:
    bank_code: str
    filing_ref: str
    status: str
    certificate_number: str | None = None
    detail: str = ""


BANK_NOTIFY_FILING = declare("banks.notify_filing", FilingNotice)
