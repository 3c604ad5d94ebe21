"""In-memory tax bureau: half-hour slots with the simulator's capacity, declarations assessed at once
at its illustrative deed-tax rate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from integrations.tax.base import (
    APPOINTMENT_NOT_FOUND,
    DECLARATION_NOT_FOUND,
    INVALID_CLEARANCE,
    INVALID_UNIT_NUMBER,
    SLOT_FULL,
    SLOT_UNAVAILABLE,
    ClearanceStatus,
    DeclarationStatus,
    TaxBooking,
    TaxClearance,
    TaxDeclaration,
    TaxSystem,
)
from integrations.tax.simulator import UNIT_NUMBER_LENGTH, TaxSimulator
from integrations.testing.fake import FakeSystem


@dataclass
class FakeBooking:
    ref: str
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str
    cancelled: bool = False


class FakeTax(FakeSystem, TaxSystem):
    slot_capacity = TaxSimulator.slot_capacity
    deed_tax_permille = TaxSimulator.deed_tax_permille

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bookings: dict[str, FakeBooking] = {}
        self.declarations: dict[str, TaxDeclaration] = {}
        self.clearances: dict[str, TaxClearance] = {}
        self._refused_taxpayers: dict[str, str] = {}
        self._taken: Counter[tuple[str, datetime]] = Counter()

    def _reset_effects(self) -> None:
        self.bookings.clear()
        self.declarations.clear()
        self.clearances.clear()
        self._refused_taxpayers.clear()
        self._taken.clear()

    def refuse_clearance(self, taxpayer_ref: str, reason: str = "存在欠缴税款") -> None:
        self._refused_taxpayers[taxpayer_ref] = reason

    def grant_clearance(self, taxpayer_ref: str) -> None:
        self._refused_taxpayers.pop(taxpayer_ref, None)

    def set_declaration_status(self, ref: str, status: DeclarationStatus) -> None:
        """Move a declaration on (e.g. to PAID), as the bureau's back office would."""
        self.declarations[ref] = replace(self.declarations[ref], status=status)

    async def _book_appointment(
        self, idempotency_key: str, office_code: str, slot_start: datetime, applicant_ref: str, case_ref: str
    ) -> TaxBooking:
        operation = "book_appointment"

        def apply() -> TaxBooking:
            self._require_text(operation, office_code, applicant_ref, case_ref)
            slot = slot_start
            if slot.minute % 30 or slot.second or slot.microsecond or slot <= self.clock():
                raise self._refuse(operation, 409, SLOT_UNAVAILABLE)
            if self._taken[(office_code, slot)] >= self.slot_capacity:
                raise self._refuse(operation, 409, SLOT_FULL)
            ref = f"TA{len(self.bookings) + 1:08d}"
            self.bookings[ref] = FakeBooking(ref, office_code, slot, applicant_ref, case_ref)
            self._taken[(office_code, slot)] += 1
            return TaxBooking(ref=ref)

        arguments = (office_code, slot_start.isoformat(), applicant_ref, case_ref)
        return await self._effect(operation, idempotency_key, arguments, apply)

    async def _cancel_appointment(self, idempotency_key: str, ref: str) -> None:
        def apply() -> None:
            booking = self.bookings.get(ref)
            if booking is None:
                raise self._refuse("cancel_appointment", 404, APPOINTMENT_NOT_FOUND)
            if not booking.cancelled:
                booking.cancelled = True
                self._taken[(booking.office_code, booking.slot_start)] -= 1

        await self._effect("cancel_appointment", idempotency_key, (ref,), apply)

    async def _submit_transfer_declaration(
        self,
        idempotency_key: str,
        case_ref: str,
        unit_number: str,
        seller_refs: list[str],
        buyer_refs: list[str],
        price_fen: int,
    ) -> TaxDeclaration:
        operation = "submit_transfer_declaration"

        def apply() -> TaxDeclaration:
            self._require_text(operation, case_ref, unit_number)
            if len(unit_number) != UNIT_NUMBER_LENGTH:
                raise self._refuse(operation, 422, INVALID_UNIT_NUMBER)
            if price_fen <= 0 or not seller_refs or not buyer_refs:
                raise self._refuse(operation, 422, "INVALID_DECLARATION")
            ref = f"TD{len(self.declarations) + 1:08d}"
            due = (price_fen * self.deed_tax_permille + 500) // 1000
            self.declarations[ref] = TaxDeclaration(ref, DeclarationStatus.ASSESSED, due)
            return self.declarations[ref]

        arguments = (case_ref, unit_number, tuple(seller_refs), tuple(buyer_refs), price_fen)
        return await self._effect(operation, idempotency_key, arguments, apply)

    async def _get_declaration(self, ref: str) -> TaxDeclaration:
        def read() -> TaxDeclaration:
            if ref not in self.declarations:
                raise self._refuse("get_declaration", 404, DECLARATION_NOT_FOUND)
            return self.declarations[ref]

        return await self._read("get_declaration", read)

    async def _confirm_tax_clearance(
        self, idempotency_key: str, case_ref: str, taxpayer_ref: str, unit_numbers: list[str]
    ) -> TaxClearance:
        operation = "confirm_tax_clearance"

        def apply() -> TaxClearance:
            self._require_text(operation, case_ref, taxpayer_ref)
            if not unit_numbers:
                raise self._refuse(operation, 422, INVALID_CLEARANCE)
            if any(len(u) != UNIT_NUMBER_LENGTH for u in unit_numbers):
                raise self._refuse(operation, 422, INVALID_UNIT_NUMBER)
            ref = f"TC{len(self.clearances) + 1:08d}"
            reason = self._refused_taxpayers.get(taxpayer_ref)
            status = ClearanceStatus.REFUSED if reason else ClearanceStatus.CLEARED
            self.clearances[ref] = TaxClearance(ref, status, reason)
            return self.clearances[ref]

        arguments = (case_ref, taxpayer_ref, tuple(unit_numbers))
        return await self._effect(operation, idempotency_key, arguments, apply)
