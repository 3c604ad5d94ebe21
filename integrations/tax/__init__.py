"""Tax bureau (税务): appointments for the tax window, transfer tax declarations and tax
clearances (first and cancellation registration)."""

from integrations.tax.base import (
    ClearanceStatus,
    DeclarationStatus,
    TaxBooking,
    TaxClearance,
    TaxDeclaration,
    TaxSystem,
)

__all__ = [
    "ClearanceStatus",
    "DeclarationStatus",
    "TaxBooking",
    "TaxClearance",
    "TaxDeclaration",
    "TaxSystem",
]
