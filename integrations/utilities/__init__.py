"""Utility providers (water, electricity, gas, cable TV): account transfers on a change of owner."""

from integrations.utilities.base import (
    ARREARS,
    MeterReading,
    TransferStatus,
    UtilityKind,
    UtilityProvider,
    UtilityTransfer,
)
from integrations.utilities.config import ProviderCatalogue, ProviderConfig, load_providers
from integrations.utilities.router import UtilityRouter

__all__ = [
    "ARREARS",
    "MeterReading",
    "ProviderCatalogue",
    "ProviderConfig",
    "TransferStatus",
    "UtilityKind",
    "UtilityProvider",
    "UtilityRouter",
    "UtilityTransfer",
    "load_providers",
]
