"""Outbox topics of registration cases: the tax declaration, the tax clearance and the utility
account transfers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.outbox.topics import declare


@dataclass(frozen=True)
class TransferDeclaration:
    case_ref: str
    unit_number: str
    seller_refs: tuple[str, ...]
    buyer_refs: tuple[str, ...]
    price_fen: int  # money in integer fen


@dataclass(frozen=True)
class ClearanceRequest:
    """Ask the tax bureau whether the taxes on these units are settled (first registration,
    cancellation); the answer is recorded on the case (`tax_ref`, `tax_status`)."""

    case_ref: str
    taxpayer_ref: str  # an organisation's credit code, or a person's reference: never an ID number
    unit_numbers: tuple[str, ...]


@dataclass(frozen=True)
class UtilityAccountTransfer:
    provider: str  # a provider name of config/providers.toml, e.g. "water.shanghai-chengtou"
    account_no: str  # "" = look it up at the provider by the unit number when sending
    from_holder_ref: str
    to_holder_ref: str
    unit_number: str
    address: str
    effective_date: date


@dataclass(frozen=True)
class UtilityTransferCheck:
    """Ask the provider how a transfer it accepted stands; retried until it is done or refused."""

    transfer_key: str  # UtilityTransferRecord.idempotency_key


TAX_DECLARE_TRANSFER = declare("tax.submit_transfer_declaration", TransferDeclaration)
TAX_CLEARANCE = declare("tax.confirm_tax_clearance", ClearanceRequest)
UTILITY_TRANSFER = declare("utilities.transfer_account", UtilityAccountTransfer)
UTILITY_CHECK = declare("utilities.check_transfer", UtilityTransferCheck)
