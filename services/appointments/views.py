"""What the holder and the office's clerks see of an appointment, and how times and services read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.appointments.models import Appointment
from services.appointments.slots import UnknownService, default_catalogue
from services.clock import SHANGHAI


@dataclass(frozen=True, slots=True)
class AppointmentView:
    """An appointment as its holder and the office's clerks see it."""

    id: int
    ref: str
    status: str  # booked | cancelled | checked_in | no_show
    service: str
    service_label: str
    office_code: str
    office_name: str
    office_address: str
    starts_at: datetime
    ends_at: datetime
    right_id: int | None
    case_ref: str | None
    with_tax: bool
    tax_ref: str | None
    tax_slot_start: datetime | None
    centre_ref: str | None
    centre_status: str  # pending | pushed | cancelled
    created_at: datetime
    cancelled_at: datetime | None
    checked_in_at: datetime | None
    rescheduled_from: int | None


def service_label(code: str) -> str:
    """The catalogue's label (config/appointments.toml); a code since retired shows as itself."""
    try:
        return default_catalogue().get(code).label
    except UnknownService:
        return code


def view_of(appointment: Appointment) -> AppointmentView:
    """`appointment` with its slot and the slot's office fetched (select_related)."""
    slot = appointment.slot
    office = slot.office
    return AppointmentView(
        id=appointment.id,
        ref=appointment.ref,
        status=appointment.status,
        service=appointment.service,
        service_label=service_label(appointment.service),
        office_code=appointment.office_code,
        office_name=office.name,
        office_address=office.address,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        right_id=appointment.right_id,
        case_ref=appointment.case_ref,
        with_tax=appointment.with_tax,
        tax_ref=appointment.tax_ref,
        # The tax office answers in Shanghai time; every time we answer with is UTC, like starts_at.
        tax_slot_start=appointment.tax_slot_start.astimezone(UTC) if appointment.tax_slot_start else None,
        centre_ref=appointment.centre_ref,
        centre_status=appointment.centre_status,
        created_at=appointment.created_at,
        cancelled_at=appointment.cancelled_at,
        checked_in_at=appointment.checked_in_at,
        rescheduled_from=appointment.rescheduled_from,
    )


def shown(moment: datetime) -> tuple[str, str]:
    local = moment.astimezone(SHANGHAI)
    return f"{local:%Y-%m-%d}", f"{local:%H:%M}"
