"""Mortgage filings by banks without a visit (issue 14): participating banks (`banks.py`), the
filing rules (`rules.py`), the use cases (`service.py`), attachment storage (`storage.py`); the
outbox topic of the bank callbacks is declared in `topics.py`.

Public to other domains and the API: the bank registry, the filing inputs, the storage below;
the API and the composition root take `FilingService` from `services.filings.service` (it builds
on services.cases, which writes filings' rows: importing it here would make the two circular).
"""

from services.filings.banks import BankRegistration, BankRegistry, seed_banks
from services.filings.progress import advance_filing
from services.filings.rules import FilingRequest, MortgagorInput
from services.filings.storage import AttachmentStorage, FilesystemStorage

__all__ = [
    "AttachmentStorage",
    "BankRegistration",
    "BankRegistry",
    "FilesystemStorage",
    "FilingRequest",
    "MortgagorInput",
    "advance_filing",
    "seed_banks",
]
