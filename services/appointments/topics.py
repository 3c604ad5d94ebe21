"""Outbox topics of the appointments domain: the city's appointment centre and the tax office."""

CENTRE_PUSH = "appointment_centre.push_appointment"
CENTRE_CANCEL = "appointment_centre.cancel_appointment"
TAX_BOOK = "tax.book_appointment"
TAX_CANCEL = "tax.cancel_appointment"
