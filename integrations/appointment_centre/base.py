"""Contract of the city's one-stop appointment centre."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime

from integrations.base import ExternalSystem

# Remote refusal codes (RequestRejected.code) that callers may act on.
DUPLICATE_APPOINTMENT = "DUPLICATE_APPOINTMENT"
CENTRE_APPOINTMENT_NOT_FOUND = "APPOINTMENT_NOT_FOUND"


@dataclass(frozen=True)
class AppointmentPush:
    ref: str  # our appointment reference
    office_code: str
    service: str
    slot_start: datetime
    slot_end: datetime
    applicant_ref: str
    with_tax: bool

    def __post_init__(self) -> None:
        if self.slot_start.tzinfo is None or self.slot_end.tzinfo is None:
            raise ValueError("slot times must be timezone-aware")
        if self.slot_end <= self.slot_start:
            raise ValueError("slot_end must be after slot_start")


@dataclass(frozen=True)
class CentreReceipt:
    centre_ref: str


class AppointmentCentre(ExternalSystem):
    system = "appointment_centre"

    async def push_appointment(self, idempotency_key: str, appointment: AppointmentPush) -> CentreReceipt:
        return await self._call(
            "push_appointment",
            lambda: self._push_appointment(idempotency_key, appointment),
            ref=appointment.ref,
            office_code=appointment.office_code,
        )

    async def cancel_appointment(self, idempotency_key: str, centre_ref: str) -> None:
        await self._call(
            "cancel_appointment",
            lambda: self._cancel_appointment(idempotency_key, centre_ref),
            centre_ref=centre_ref,
        )

    @abstractmethod
    async def _push_appointment(
        self, idempotency_key: str, appointment: AppointmentPush
    ) -> CentreReceipt: ...

    @abstractmethod
    async def _cancel_appointment(self, idempotency_key: str, centre_ref: str) -> None: ...
