"""Routes a bank callback to the sender for that bank code.

With a `directory` (the running service: the `participating_bank` table), the bank is looked up
per message and its sender built from what the row says then, so a bank registered, or given a new
callback URL or secret, at run time is reached without a restart. Without one (the integration
tests over config/banks.toml), a fixed table of senders built at start is used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from integrations.banks.base import BankAck, BankCallbacks, CallbackEndpoint
from integrations.banks.http import SignedJsonCallback
from integrations.errors import AdapterNotConfigured

BankDirectory = Callable[[str], Awaitable[CallbackEndpoint | None]]
SenderFactory = Callable[[CallbackEndpoint], SignedJsonCallback]


class BankRouter(BankCallbacks):
    def __init__(
        self,
        senders: Mapping[str, SignedJsonCallback] | None = None,
        *,
        directory: BankDirectory | None = None,
        make_sender: SenderFactory | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (directory is None) != (make_sender is None):
            raise ValueError("a bank directory needs a sender factory, and the other way round")
        self._senders = dict(senders or {})
        self._directory = directory
        self._make_sender = make_sender

    @property
    def bank_codes(self) -> list[str]:
        return sorted(self._senders)

    async def _sender(self, bank_code: str) -> SignedJsonCallback | None:
        if self._directory is None or self._make_sender is None:
            return self._senders.get(bank_code)
        endpoint = await self._directory(bank_code)
        return self._make_sender(endpoint) if endpoint is not None else None

    async def _notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck:
        sender = await self._sender(bank_code)
        if sender is None:
            raise AdapterNotConfigured(
                f"no callback configured for bank {bank_code}", system=self.system, operation="notify_filing"
            )
        return await sender.send(idempotency_key, filing_ref, status, certificate_number, detail)
