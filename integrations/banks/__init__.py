"""Banks: status callbacks about the mortgage filings they submitted to us."""

from integrations.banks.base import BankAck, BankCallbacks
from integrations.banks.config import BankConfig, load_banks, uscc_valid
from integrations.banks.router import BankRouter

__all__ = ["BankAck", "BankCallbacks", "BankConfig", "BankRouter", "load_banks", "uscc_valid"]
