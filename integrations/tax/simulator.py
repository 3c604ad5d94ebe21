"""Tax bureau simulator: half-hour appointment slots with a capacity, transfer declarations
assessed at once with an illustrative flat deed-tax rate (契税) of `deed_tax_permille`, and tax
clearances granted unless a test refused the taxpayer (`refuse_clearance`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from integrations.simulator import Reply, SimRejection, Simulator, json_object, parse_aware_datetime, required
from integrations.tax.base import (
    APPOINTMENT_NOT_FOUND,
    DECLARATION_NOT_FOUND,
    INVALID_CLEARANCE,
    INVALID_UNIT_NUMBER,
    SLOT_FULL,
    SLOT_UNAVAILABLE,
)

UNIT_NUMBER_LENGTH = 28


@dataclass
class _Booking:
    booking_no: str
    office_code: str
    slot_start: datetime
    applicant_ref: str
    case_ref: str
    cancelled: bool = False


class TaxSimulator(Simulator):
    name = "tax"
    slot_capacity = 3
    deed_tax_permille = 10  # illustrative: 1 %

    def __init__(self, **kwargs: Any) -> None:
        self.bookings: dict[str, _Booking] = {}
        self.declarations: dict[str, dict[str, Any]] = {}
        self.clearances: dict[str, dict[str, Any]] = {}
        self._refused_taxpayers: dict[str, str] = {}  # taxpayer ref -> reason
        self._taken: Counter[tuple[str, datetime]] = Counter()
        super().__init__(**kwargs)

    def _reset_effects(self) -> None:
        self.bookings.clear()
        self.declarations.clear()
        self.clearances.clear()
        self._refused_taxpayers.clear()
        self._taken.clear()

    def refuse_clearance(self, taxpayer_ref: str, reason: str = "存在欠缴税款") -> None:
        """From now on, answer this taxpayer's (a credit code, or a person's reference) clearance
        requests with a refusal, as the bureau does while taxes are owed."""
        self._refused_taxpayers[taxpayer_ref] = reason

    def grant_clearance(self, taxpayer_ref: str) -> None:
        self._refused_taxpayers.pop(taxpayer_ref, None)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "bookings": sum(not b.cancelled for b in self.bookings.values()),
            "declarations": len(self.declarations),
            "clearances": len(self.clearances),
        }

    def set_declaration_state(self, declaration_no: str, state: str) -> None:
        """Move a declaration on, e.g. to "02" (paid), as the bureau's back office would."""
        self.declarations[declaration_no]["state"] = state

    def _setup_routes(self) -> None:
        self.route("POST", "/v1/appointments", "book_appointment", self._book, effectful=True)
        self.route(
            "POST", "/v1/appointments/{ref}/cancel", "cancel_appointment", self._cancel, effectful=True
        )
        self.route("POST", "/v1/declarations", "submit_transfer_declaration", self._declare, effectful=True)
        self.route("GET", "/v1/declarations/{ref}", "get_declaration", self._get_declaration, effectful=False)
        self.route("POST", "/v1/clearances", "confirm_tax_clearance", self._clearance, effectful=True)

    async def _book(self, request: web.Request) -> Reply:
        body = await json_object(request)
        office = required(body, "office_code")
        slot = parse_aware_datetime(required(body, "slot_start"), "slot_start")
        applicant, case = required(body, "applicant_ref"), required(body, "case_ref")
        if slot.minute % 30 or slot.second or slot.microsecond or slot <= self.clock():
            raise SimRejection(409, SLOT_UNAVAILABLE, "slots start on the half hour and in the future")
        if self._taken[(office, slot)] >= self.slot_capacity:
            raise SimRejection(409, SLOT_FULL, "no capacity left in this slot")
        booking_no = f"TA{len(self.bookings) + 1:08d}"
        self.bookings[booking_no] = _Booking(booking_no, office, slot, applicant, case)
        self._taken[(office, slot)] += 1
        return Reply(201, {"booking_no": booking_no, "state": "BOOKED"})

    async def _cancel(self, request: web.Request) -> Reply:
        booking = self.bookings.get(request.match_info["ref"])
        if booking is None:
            raise SimRejection(404, APPOINTMENT_NOT_FOUND, "no such appointment")
        if not booking.cancelled:
            booking.cancelled = True
            self._taken[(booking.office_code, booking.slot_start)] -= 1
        return Reply(200, {"booking_no": booking.booking_no, "state": "CANCELLED"})

    async def _declare(self, request: web.Request) -> Reply:
        body = await json_object(request)
        case = required(body, "case_ref")
        unit = required(body, "unit_number")
        sellers, buyers = required(body, "seller_refs", list), required(body, "buyer_refs", list)
        price = required(body, "price_fen", int)
        if len(unit) != UNIT_NUMBER_LENGTH:
            raise SimRejection(422, INVALID_UNIT_NUMBER, "a real-estate unit number has 28 characters")
        if price <= 0 or not sellers or not buyers:
            raise SimRejection(422, "INVALID_DECLARATION", "price, sellers and buyers are required")
        declaration_no = f"TD{len(self.declarations) + 1:08d}"
        self.declarations[declaration_no] = {
            "declaration_no": declaration_no,
            "case_ref": case,
            "unit_number": unit,
            "state": "01",
            "tax_due_fen": (price * self.deed_tax_permille + 500) // 1000,
        }
        return Reply(201, self._public(declaration_no))

    async def _clearance(self, request: web.Request) -> Reply:
        body = await json_object(request)
        case, taxpayer = required(body, "case_ref"), required(body, "taxpayer_ref")
        units = required(body, "unit_numbers", list)
        if not units or any(not isinstance(u, str) for u in units):
            raise SimRejection(422, INVALID_CLEARANCE, "unit_numbers: a list of unit numbers")
        if any(len(u) != UNIT_NUMBER_LENGTH for u in units):
            raise SimRejection(422, INVALID_UNIT_NUMBER, "a real-estate unit number has 28 characters")
        clearance_no = f"TC{len(self.clearances) + 1:08d}"
        reason = self._refused_taxpayers.get(taxpayer)
        self.clearances[clearance_no] = {
            "clearance_no": clearance_no,
            "case_ref": case,
            "taxpayer_ref": taxpayer,
            "unit_numbers": list(units),
            "state": "19" if reason else "10",
            "reason": reason,
        }
        return Reply(201, {"clearance_no": clearance_no, "state": "19" if reason else "10", "reason": reason})

    async def _get_declaration(self, request: web.Request) -> Reply:
        ref = request.match_info["ref"]
        if ref not in self.declarations:
            raise SimRejection(404, DECLARATION_NOT_FOUND, "no such declaration")
        return Reply(200, self._public(ref))

    def _public(self, declaration_no: str) -> dict[str, Any]:
        d = self.declarations[declaration_no]
        return {"declaration_no": declaration_no, "state": d["state"], "tax_due_fen": d["tax_due_fen"]}
