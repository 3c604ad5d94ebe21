"""Tax bureau (税务): appointments for the tax window and transfer tax declarations."""

from integrations.tax.base import DeclarationStatus, TaxBooking, TaxDeclaration, TaxSystem

__all__ = ["DeclarationStatus", "TaxBooking", "TaxDeclaration", "TaxSystem"]
