"""Contract of one utility provider. Which provider serves a property is the router's business."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from integrations.base import ExternalSystem

# Remote refusal codes (RequestRejected.code) that callers may act on.
INVALID_ACCOUNT = "INVALID_ACCOUNT"
TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"


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
class UtilityTransfer:
    ref: str
    status: TransferStatus


class UtilityProvider(ExternalSystem):
    """`system` (the metrics and error label) is the provider's configured name."""

    def __init__(self, *, name: str, kind: UtilityKind, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.kind = kind
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
