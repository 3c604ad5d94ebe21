"""In-memory bank callbacks: the receiving banks and the router in one.

A bank code that is not configured raises AdapterNotConfigured, as `BankRouter` does; filing
references in `unknown_filings` are refused with UNKNOWN_FILING, as the simulator's business code 1001.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from integrations.banks.base import UNKNOWN_FILING, BankAck, BankCallbacks
from integrations.errors import AdapterNotConfigured
from integrations.testing.fake import FakeSystem


@dataclass(frozen=True)
class Delivery:
    bank_code: str
    idempotency_key: str
    filing_ref: str
    status: str
    certificate_number: str | None
    detail: str


class FakeBanks(FakeSystem, BankCallbacks):
    def __init__(self, bank_codes: Iterable[str] = ("icbc-sh",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bank_codes = sorted(bank_codes)
        self.deliveries: list[Delivery] = []
        self.unknown_filings: set[str] = set()

    def _reset_effects(self) -> None:
        self.deliveries.clear()

    def received(self, bank_code: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if bank_code is None or d.bank_code == bank_code]

    async def _notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck:
        operation = "notify_filing"
        if bank_code not in self.bank_codes:
            raise AdapterNotConfigured(
                f"no callback configured for bank {bank_code}", system=self.system, operation=operation
            )

        def apply() -> BankAck:
            self.deliveries.append(
                Delivery(bank_code, idempotency_key, filing_ref, status, certificate_number, detail)
            )
            if filing_ref in self.unknown_filings:
                raise self._refuse(operation, None, UNKNOWN_FILING)  # an HTTP 200 with code 1001
            return BankAck(bank_code=bank_code, receipt_no=f"{bank_code.upper()}-{len(self.deliveries):08d}")

        arguments = (bank_code, filing_ref, status, certificate_number, detail)
        return await self._effect(operation, idempotency_key, arguments, apply)
