"""Contract of the bank callbacks: tell a bank what became of its mortgage filing."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from integrations.base import ExternalSystem

SIGNATURE_HEADER = "X-Estate-Signature"  # "sha256=" + hex HMAC-SHA256 of the raw body, bank's secret
BAD_SIGNATURE = "BAD_SIGNATURE"
UNKNOWN_FILING = "UNKNOWN_FILING"


@dataclass(frozen=True)
class BankAck:
    bank_code: str
    receipt_no: str | None = None  # the bank's reference for our callback, when it gives one


class BankCallbacks(ExternalSystem):
    system = "banks"

    async def notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck:
        """Raises AdapterNotConfigured for a bank that is not configured."""
        return await self._call(
            "notify_filing",
            lambda: self._notify_filing(
                idempotency_key, bank_code, filing_ref, status, certificate_number, detail
            ),
            bank_code=bank_code,
            filing_ref=filing_ref,
            status=status,
        )

    @abstractmethod
    async def _notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck: ...
