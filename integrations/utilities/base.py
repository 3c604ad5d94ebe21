"""Contract of one utility provider. Which provider serves a property is the router's business.

Exactly-once: `transfer_account` carries our idempotency key. A provider with `dedupes` applies a
repeated key once and answers the original transfer again, so its adapter may retry. One without
it (a staff portal that files every form it receives) would apply a retry twice, so its adapter
never retries the transfer; after a lost answer the caller asks `find_transfer(key)` whether the
provider applied it before sending again. `find_transfer` and `lookup_account` are reads and are
retried freely.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from integrations.base import ExternalSystem

# Remote refusal codes (RequestRejected.code) that callers may act on.
INVALID_ACCOUNT = "INVALID_ACCOUNT"
TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
# Unpaid bills: the provider refuses the transfer until they are settled. Permanent for this
# request (RequestRejected, HTTP 422); nothing was applied.
ARREARS = "ARREARS"


class UtilityKind(StrEnum):
    WATER = "water"
    ELECTRICITY = "electricity"
    GAS = "gas"
    CABLE_TV = "cable_tv"


class TransferStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class MeterReading:
    """The meter at hand-over, as the provider read it."""

    value: str  # a decimal as text, e.g. "1234.5": never a float
    unit: str  # "m3", "kWh"
    read_at: datetime  # timezone-aware


@dataclass(frozen=True)
class UtilityTransfer:
    ref: str
    status: TransferStatus
    reason: str | None = None  # the provider's words when REJECTED
    final_reading: MeterReading | None = None  # when COMPLETED; None for cable TV


class UtilityProvider(ExternalSystem):
    """`system` (the metrics and error label) is the provider's configured name; `dedupes` says
    whether the provider deduplicates transfers by our idempotency key (see the module docstring)."""

    def __init__(self, *, name: str, kind: UtilityKind, dedupes: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.kind = kind
        self.dedupes = dedupes
        self.system = name

    async def transfer_account(
        self,
        idempotency_key: str,
        account_no: str,
        from_holder_ref: str,
        to_holder_ref: str,
        unit_number: str,
        address: str,
        effective_date: date,
    ) -> UtilityTransfer:
        return await self._call(
            "transfer_account",
            lambda: self._transfer_account(
                idempotency_key,
                account_no,
                from_holder_ref,
                to_holder_ref,
                unit_number,
                address,
                effective_date,
            ),
            kind=self.kind.value,
            unit_number=unit_number,
        )

    async def get_transfer(self, ref: str) -> UtilityTransfer:
        return await self._call(
            "get_transfer", lambda: self._get_transfer(ref), kind=self.kind.value, ref=ref
        )

    async def lookup_account(self, unit_number: str) -> str | None:
        """The account number of the unit at this provider; None when it has none."""
        return await self._call(
            "lookup_account",
            lambda: self._lookup_account(unit_number),
            kind=self.kind.value,
            unit_number=unit_number,
        )

    async def find_transfer(self, idempotency_key: str) -> UtilityTransfer | None:
        """The transfer this provider applied for our key; None if it never applied one."""
        return await self._call(
            "find_transfer",
            lambda: self._find_transfer(idempotency_key),
            kind=self.kind.value,
            idempotency_key=idempotency_key,
        )

    @abstractmethod
    async def _transfer_account(
        self,
        idempotency_key: str,
        account_no: str,
        from_holder_ref: str,
        to_holder_ref: str,
        unit_number: str,
        address: str,
        effective_date: date,
    ) -> UtilityTransfer: ...

    @abstractmethod
    async def _get_transfer(self, ref: str) -> UtilityTransfer: ...

    @abstractmethod
    async def _lookup_account(self, unit_number: str) -> str | None: ...

    @abstractmethod
    async def _find_transfer(self, idempotency_key: str) -> UtilityTransfer | None: ...
