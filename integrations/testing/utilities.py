"""In-memory utility providers, and the real `UtilityRouter` over them.

`fake_utilities(catalogue)` gives every provider of a catalogue a `FakeUtilityProvider`, so the
routing (which provider serves a district, AdapterNotConfigured for a gap) is the production code.
Unlike the simulator, each fake numbers its own transfers and keeps its own idempotency keys.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from integrations.testing.fake import FakeSystem
from integrations.utilities.base import (
    INVALID_ACCOUNT,
    TRANSFER_NOT_FOUND,
    TransferStatus,
    UtilityProvider,
    UtilityTransfer,
)
from integrations.utilities.config import ProviderCatalogue
from integrations.utilities.router import UtilityRouter
from integrations.utilities.simulator import ACCOUNT_NUMBER


class FakeUtilityProvider(FakeSystem, UtilityProvider):
    def __init__(self, **kwargs: Any) -> None:
        """Takes the contract's `name` and `kind` besides the fake's options."""
        super().__init__(**kwargs)
        self.transfers: dict[str, UtilityTransfer] = {}

    def _reset_effects(self) -> None:
        self.transfers.clear()

    def set_transfer_status(self, ref: str, status: TransferStatus) -> None:
        """Move a transfer on, as the provider's clerks would."""
        self.transfers[ref] = UtilityTransfer(ref=ref, status=status)

    async def _transfer_account(
        self,
        idempotency_key: str,
        account_no: str,
        from_holder_ref: str,
        to_holder_ref: str,
        unit_number: str,
        address: str,
        effective_date: date,
    ) -> UtilityTransfer:
        operation = "transfer_account"

        def apply() -> UtilityTransfer:
            self._require_text(operation, account_no, from_holder_ref, to_holder_ref, unit_number, address)
            if not ACCOUNT_NUMBER.match(account_no):
                raise self._refuse(operation, 422, INVALID_ACCOUNT)
            ref = f"UT{len(self.transfers) + 1:08d}"
            self.transfers[ref] = UtilityTransfer(ref=ref, status=TransferStatus.SUBMITTED)
            return self.transfers[ref]

        arguments = (account_no, from_holder_ref, to_holder_ref, unit_number, address, effective_date)
        return await self._effect(operation, idempotency_key, arguments, apply)

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        def read() -> UtilityTransfer:
            if ref not in self.transfers:
                raise self._refuse("get_transfer", 404, TRANSFER_NOT_FOUND)
            return self.transfers[ref]

        return await self._read("get_transfer", read)


def fake_utilities(catalogue: ProviderCatalogue, **fake_options: Any) -> UtilityRouter:
    """The real router over one fake per configured provider; reach them with `router.provider(name)`."""
    providers = {
        p.name: FakeUtilityProvider(name=p.name, kind=p.kind, **fake_options) for p in catalogue.providers
    }
    return UtilityRouter(catalogue, providers)
