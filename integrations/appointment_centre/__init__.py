"""One-stop appointment centre (一网通办预约中心): where our appointments are mirrored."""

from integrations.appointment_centre.base import AppointmentCentre, AppointmentPush, CentreReceipt

__all__ = ["AppointmentCentre", "AppointmentPush", "CentreReceipt"]
