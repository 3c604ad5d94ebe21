"""In-memory appointment centre: one booked centre appointment per source reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.appointment_centre.base import (
    CENTRE_APPOINTMENT_NOT_FOUND,
    DUPLICATE_APPOINTMENT,
    AppointmentCentre,
    AppointmentPush,
    CentreReceipt,
)
from integrations.testing.fake import FakeSystem


@dataclass
class CentreAppointment:
    centre_ref: str
    appointment: AppointmentPush
    cancelled: bool = False


class FakeAppointmentCentre(FakeSystem, AppointmentCentre):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.appointments: dict[str, CentreAppointment] = {}

    def _reset_effects(self) -> None:
        self.appointments.clear()

    async def _push_appointment(self, idempotency_key: str, appointment: AppointmentPush) -> CentreReceipt:
        operation = "push_appointment"

        def apply() -> CentreReceipt:
            a = appointment
            self._require_text(operation, a.ref, a.office_code, a.service, a.applicant_ref)
            for existing in self.appointments.values():
                if existing.appointment.ref == a.ref and not existing.cancelled:
                    raise self._refuse(
                        operation, 409, DUPLICATE_APPOINTMENT, f"already {existing.centre_ref}"
                    )
            centre_ref = f"YY{len(self.appointments) + 1:08d}"
            self.appointments[centre_ref] = CentreAppointment(centre_ref, a)
            return CentreReceipt(centre_ref=centre_ref)

        return await self._effect(operation, idempotency_key, (appointment,), apply)

    async def _cancel_appointment(self, idempotency_key: str, centre_ref: str) -> None:
        def apply() -> None:
            found = self.appointments.get(centre_ref)
            if found is None:
                raise self._refuse("cancel_appointment", 404, CENTRE_APPOINTMENT_NOT_FOUND)
            found.cancelled = True

        await self._effect("cancel_appointment", idempotency_key, (centre_ref,), apply)
