"""Appointment centre simulator: one centre appointment per source reference."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from integrations.appointment_centre.base import CENTRE_APPOINTMENT_NOT_FOUND, DUPLICATE_APPOINTMENT
from integrations.simulator import Reply, SimRejection, Simulator, json_object, parse_aware_datetime, required


class AppointmentCentreSimulator(Simulator):
    name = "appointment_centre"

    def __init__(self, **kwargs: Any) -> None:
        self.appointments: dict[str, dict[str, Any]] = {}
        super().__init__(**kwargs)

    def _reset_effects(self) -> None:
        self.appointments.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"appointments": sum(a["state"] == "BOOKED" for a in self.appointments.values())}

    def _setup_routes(self) -> None:
        self.route("POST", "/v1/appointments", "push_appointment", self._push, effectful=True)
        self.route(
            "POST", "/v1/appointments/{centre_ref}/cancel", "cancel_appointment", self._cancel, effectful=True
        )

    async def _push(self, request: web.Request) -> Reply:
        body = await json_object(request)
        source_ref = required(body, "source_ref")
        start = parse_aware_datetime(required(body, "slot_start"), "slot_start")
        end = parse_aware_datetime(required(body, "slot_end"), "slot_end")
        if end <= start:
            raise SimRejection(422, "INVALID_SLOT", "slot_end must be after slot_start")
        for existing in self.appointments.values():
            if existing["source_ref"] == source_ref and existing["state"] == "BOOKED":
                raise SimRejection(409, DUPLICATE_APPOINTMENT, f"already booked as {existing['centre_ref']}")
        centre_ref = f"YY{len(self.appointments) + 1:08d}"
        self.appointments[centre_ref] = {
            "centre_ref": centre_ref,
            "source_ref": source_ref,
            "office_code": required(body, "office_code"),
            "service": required(body, "service"),
            "slot_start": start.isoformat(),
            "slot_end": end.isoformat(),
            "applicant_ref": required(body, "applicant_ref"),
            "with_tax": bool(body.get("with_tax", False)),
            "state": "BOOKED",
        }
        return Reply(201, {"centre_ref": centre_ref})

    async def _cancel(self, request: web.Request) -> Reply:
        found = self.appointments.get(request.match_info["centre_ref"])
        if found is None:
            raise SimRejection(404, CENTRE_APPOINTMENT_NOT_FOUND, "no such appointment")
        found["state"] = "CANCELLED"
        return Reply(200, {"centre_ref": found["centre_ref"], "state": "CANCELLED"})
