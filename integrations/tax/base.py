"""Contract of the tax bureau. Persons are passed as opaque references, never as ID numbers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from integrations.base import ExternalSystem

# Remote refusal codes (RequestRejected.code) that callers may act on.
SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE"
SLOT_FULL = "SLOT_FULL"
APPOINTMENT_NOT_FOUND = "APPOINTMENT_NOT_FOUND"
DECLARATION_NOT_FOUND = "DECLARATION_NOT_FOUND"
INVALID_UNIT_NUMBER = "INVALID_UNIT_NUMBER"
INVALID_CLEARANCE = "INVALID_CLEARANCE"


class DeclarationStatus(StrEnum):
    PENDING = "pending"
    ASSESSED = "assessed"
    PAID = "paid"
    REJECTED = "rejected"


class ClearanceStatus(StrEnum):
    CLEARED = "cleared"  # 完税: nothing owed on these units, registration may go on
    REFUSED = "refused"  # 未完税: taxes outstanding; `reason` says what


@dataclass(frozen=True)
class TaxClearance:
    """The bureau's answer on whether the taxes tied to these units are settled (完税证明)."""

    ref: str
    status: ClearanceStatus
    reason: str | None = None


@dataclass(frozen=True)
class TaxBooking:
    ref: str


@dataclass(frozen=True)
class TaxDeclaration:
    ref: str
    status: DeclarationStatus
    amount_due_fen: int


class TaxSystem(ExternalSystem):
    system = "tax"

    async def book_appointment(
        self,
        idempotency_key: str,
        office_code: str,
        slot_start: datetime,
        applicant_ref: str,
        case_ref: str,
    ) -> TaxBooking:
        _require_aware(slot_start)
        return await self._call(
            "book_appointment",
            lambda: self._book_appointment(idempotency_key, office_code, slot_start, applicant_ref, case_ref),
            office_code=office_code,
            case_ref=case_ref,
        )

    async def cancel_appointment(self, idempotency_key: str, ref: str) -> None:
        await self._call(
            "cancel_appointment", lambda: self._cancel_appointment(idempotency_key, ref), ref=ref
        )

    async def submit_transfer_declaration(
        self,
        idempotency_key: str,
        case_ref: str,
        unit_number: str,
        seller_refs: Sequence[str],
        buyer_refs: Sequence[str],
        price_fen: int,
    ) -> TaxDeclaration:
        if isinstance(price_fen, bool) or not isinstance(price_fen, int):
            raise TypeError("price_fen must be an int amount in fen")
        return await self._call(
            "submit_transfer_declaration",
            lambda: self._submit_transfer_declaration(
                idempotency_key, case_ref, unit_number, list(seller_refs), list(buyer_refs), price_fen
            ),
            case_ref=case_ref,
        )

    async def get_declaration(self, ref: str) -> TaxDeclaration:
        return await self._call("get_declaration", lambda: self._get_declaration(ref), ref=ref)

    async def confirm_tax_clearance(
        self, idempotency_key: str, case_ref: str, taxpayer_ref: str, unit_numbers: Sequence[str]
    ) -> TaxClearance:
        """Whether the taxes on `unit_numbers` are settled, for a first registration (the developer's
        project) or a cancellation. `taxpayer_ref`: an organisation's credit code, or a person's
        opaque reference (never an ID number). A refusal is an answer (`REFUSED`), not an error."""
        if not unit_numbers:
            raise ValueError("a tax clearance names at least one unit")
        return await self._call(
            "confirm_tax_clearance",
            lambda: self._confirm_tax_clearance(idempotency_key, case_ref, taxpayer_ref, list(unit_numbers)),
            case_ref=case_ref,
        )

    @abstractmethod
    async def _book_appointment(
        self, idempotency_key: str, office_code: str, slot_start: datetime, applicant_ref: str, case_ref: str
    ) -> TaxBooking: ...

    @abstractmethod
    async def _cancel_appointment(self, idempotency_key: str, ref: str) -> None: ...

    @abstractmethod
    async def _submit_transfer_declaration(
        self,
        idempotency_key: str,
        case_ref: str,
        unit_number: str,
        seller_refs: list[str],
        buyer_refs: list[str],
        price_fen: int,
    ) -> TaxDeclaration: ...

    @abstractmethod
    async def _get_declaration(self, ref: str) -> TaxDeclaration: ...

    @abstractmethod
    async def _confirm_tax_clearance(
        self, idempotency_key: str, case_ref: str, taxpayer_ref: str, unit_numbers: list[str]
    ) -> TaxClearance: ...


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("slot_start must be timezone-aware")
