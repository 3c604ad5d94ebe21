"""Outbox topics of registration cases: the tax declaration and the utility account transfers."""

TAX_DECLARE_TRANSFER = "tax.submit_transfer_declaration"
UTILITY_TRANSFER = "utilities.transfer_account"
