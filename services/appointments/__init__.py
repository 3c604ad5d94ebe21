"""Appointments at any district office with the tax appointment (issue 11).

Its outbox topics are declared in `topics.py`.
"""

# --- booking, changes, waitlist (api/container.py builds AppointmentService once) ---------------
from services.appointments.booking import BookingRequest
from services.appointments.delivery import cancel_at_centre, push_to_centre, release_tax, reminder_sms
from services.appointments.offices import OfficeDay, OfficeSummary, list_offices, office_day
from services.appointments.policy import AppointmentPolicy
from services.appointments.service import AppointmentService
from services.appointments.slots import ServiceCatalogue, is_bookable, release_due_slots
from services.appointments.views import AppointmentView
from services.appointments.waitlist import WaitlistView, expire_offer

__all__ = [
    "AppointmentPolicy",
    "AppointmentService",
    "AppointmentView",
    "BookingRequest",
    "OfficeDay",
    "OfficeSummary",
    "ServiceCatalogue",
    "WaitlistView",
    "cancel_at_centre",
    "expire_offer",
    "is_bookable",
    "list_offices",
    "office_day",
    "push_to_centre",
    "release_due_slots",
    "release_tax",
    "reminder_sms",
]
