"""Appointment centre over HTTP/JSON ("http-json-v1")."""

from __future__ import annotations

from urllib.parse import quote

from integrations.appointment_centre.base import AppointmentCentre, AppointmentPush, CentreReceipt
from integrations.base import HttpAdapter


class HttpAppointmentCentre(HttpAdapter, AppointmentCentre):
    async def _push_appointment(self, idempotency_key: str, appointment: AppointmentPush) -> CentreReceipt:
        body = await self._request(
            "push_appointment",
            "POST",
            "/v1/appointments",
            json_body={
                "source_ref": appointment.ref,
                "office_code": appointment.office_code,
                "service": appointment.service,
                "slot_start": appointment.slot_start.isoformat(),
                "slot_end": appointment.slot_end.isoformat(),
                "applicant_ref": appointment.applicant_ref,
                "with_tax": appointment.with_tax,
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("push_appointment"):
            return CentreReceipt(centre_ref=str(body["centre_ref"]))

    async def _cancel_appointment(self, idempotency_key: str, centre_ref: str) -> None:
        await self._request(
            "cancel_appointment",
            "POST",
            f"/v1/appointments/{quote(centre_ref, safe='')}/cancel",
            json_body={},
            idempotency_key=idempotency_key,
        )
