"""Tax bureau over HTTP/JSON ("http-json-v1")."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from integrations.base import HttpAdapter
from integrations.tax.base import (
    ClearanceStatus,
    DeclarationStatus,
    TaxBooking,
    TaxClearance,
    TaxDeclaration,
    TaxSystem,
)

# Declaration states (申报状态) as the bureau's interface returns them. Source: the interface
# description the simulator implements (illustrative until the bureau's specification arrives).
DECLARATION_STATES: dict[str, DeclarationStatus] = {
    "00": DeclarationStatus.PENDING,  # 待审核
    "01": DeclarationStatus.ASSESSED,  # 已核定
    "02": DeclarationStatus.PAID,  # 已缴款
    "09": DeclarationStatus.REJECTED,  # 不予受理
}
# Clearance states (完税情况) as the bureau's interface returns them; same source as above.
CLEARANCE_STATES: dict[str, ClearanceStatus] = {
    "10": ClearanceStatus.CLEARED,  # 已完税
    "19": ClearanceStatus.REFUSED,  # 未完税，不予出具
}


class HttpTaxSystem(HttpAdapter, TaxSystem):
    async def _book_appointment(
        self, idempotency_key: str, office_code: str, slot_start: datetime, applicant_ref: str, case_ref: str
    ) -> TaxBooking:
        body = await self._request(
            "book_appointment",
            "POST",
            "/v1/appointments",
            json_body={
                "office_code": office_code,
                "slot_start": slot_start.isoformat(),
                "applicant_ref": applicant_ref,
                "case_ref": case_ref,
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("book_appointment"):
            return TaxBooking(ref=str(body["booking_no"]))

    async def _cancel_appointment(self, idempotency_key: str, ref: str) -> None:
        await self._request(
            "cancel_appointment",
            "POST",
            f"/v1/appointments/{quote(ref, safe='')}/cancel",
            json_body={},
            idempotency_key=idempotency_key,
        )

    async def _submit_transfer_declaration(
        self,
        idempotency_key: str,
        case_ref: str,
        unit_number: str,
        seller_refs: list[str],
        buyer_refs: list[str],
        price_fen: int,
    ) -> TaxDeclaration:
        body = await self._request(
            "submit_transfer_declaration",
            "POST",
            "/v1/declarations",
            json_body={
                "case_ref": case_ref,
                "unit_number": unit_number,
                "seller_refs": seller_refs,
                "buyer_refs": buyer_refs,
                "price_fen": price_fen,
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("submit_transfer_declaration"):
            return _declaration(body)

    async def _get_declaration(self, ref: str) -> TaxDeclaration:
        body = await self._request(
            "get_declaration", "GET", f"/v1/declarations/{quote(ref, safe='')}", idempotent=True
        )
        with self._parsing("get_declaration"):
            return _declaration(body)

    async def _confirm_tax_clearance(
        self, idempotency_key: str, case_ref: str, taxpayer_ref: str, unit_numbers: list[str]
    ) -> TaxClearance:
        body = await self._request(
            "confirm_tax_clearance",
            "POST",
            "/v1/clearances",
            json_body={"case_ref": case_ref, "taxpayer_ref": taxpayer_ref, "unit_numbers": unit_numbers},
            idempotency_key=idempotency_key,
        )
        with self._parsing("confirm_tax_clearance"):
            reason = body.get("reason")
            return TaxClearance(
                ref=str(body["clearance_no"]),
                status=CLEARANCE_STATES[str(body["state"])],
                reason=str(reason) if reason else None,
            )


def _declaration(body: Any) -> TaxDeclaration:
    amount = body["tax_due_fen"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("tax_due_fen is not an integer")
    return TaxDeclaration(
        ref=str(body["declaration_no"]), status=DECLARATION_STATES[str(body["state"])], amount_due_fen=amount
    )
