"""Routes a bank callback to the configured sender for that bank code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.banks.base import BankAck, BankCallbacks
from integrations.banks.http import SignedJsonCallback
from integrations.errors import AdapterNotConfigured


class BankRouter(BankCallbacks):
    def __init__(self, senders: Mapping[str, SignedJsonCallback], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._senders = dict(senders)

    @property
    def bank_codes(self) -> list[str]:
        return sorted(self._senders)

    async def _notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck:
        sender = self._senders.get(bank_code)
        if sender is None:
            raise AdapterNotConfigured(
                f"no callback configured for bank {bank_code}", system=self.system, operation="notify_filing"
            )
        return await sender.send(idempotency_key, filing_ref, status, certificate_number, detail)
