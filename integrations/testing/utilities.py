"""In-memory utility providers, and the real `UtilityRouter` over them.

`fake_utilities(catalogue)` gives every provider of a catalogue a `FakeUtilityProvider`, so the
routing (which provider serves a district, AdapterNotConfigured for a gap) is the production code.
Unlike the simulator, each fake numbers its own transfers and keeps its own idempotency keys.

The utilities simulator's rules are the same here (its module owns them): every unit has an
account (`account_number`), `remove_account` and `set_arrears` switch the refusals, a transfer
completes `processing_s` after it was filed by the fake's clock and then carries `meter_value`,
and a fake built with `dedupes=False` applies a repeated key again.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from integrations.testing.fake import FakeSystem, _KeyRecord
from integrations.utilities.base import (
    ARREARS,
    INVALID_ACCOUNT,
    TRANSFER_NOT_FOUND,
    MeterReading,
    TransferStatus,
    UtilityProvider,
    UtilityTransfer,
)
from integrations.utilities.config import ProviderCatalogue
from integrations.utilities.router import UtilityRouter
from integrations.utilities.simulator import (
    ACCOUNT_NUMBER,
    DEFAULT_REJECTION_REASON,
    METER_UNITS,
    account_number,
    meter_value,
)


class FakeUtilityProvider(FakeSystem, UtilityProvider):
    def __init__(self, *, processing_s: float = 0.0, **kwargs: Any) -> None:
        """Takes the contract's `name`, `kind` and `dedupes` besides the fake's options."""
        super().__init__(**kwargs)
        self.processing_s = processing_s
        self.transfers: dict[str, UtilityTransfer] = {}
        self._filed: dict[str, tuple[str, datetime]] = {}  # ref -> (our key, filed at)
        self._set: set[str] = set()  # refs whose status a test set
        self.removed_accounts: set[str] = set()
        self.arrears: dict[str, int] = {}  # account_no -> fen owed

    def _reset_effects(self) -> None:
        self.transfers.clear()
        self._filed.clear()
        self._set.clear()
        self.removed_accounts.clear()
        self.arrears.clear()

    def set_transfer_status(self, ref: str, status: TransferStatus, *, reason: str | None = None) -> None:
        """Move a transfer on, as the provider's clerks would."""
        rejected = status is TransferStatus.REJECTED
        self._set.add(ref)
        self.transfers[ref] = UtilityTransfer(
            ref=ref,
            status=status,
            reason=(reason or DEFAULT_REJECTION_REASON) if rejected else None,
            final_reading=self._reading(ref, self.clock()) if status is TransferStatus.COMPLETED else None,
        )

    def remove_account(self, unit_number: str) -> None:
        self.removed_accounts.add(unit_number)

    def set_arrears(self, account_no: str, amount_fen: int) -> None:
        if amount_fen > 0:
            self.arrears[account_no] = amount_fen
        else:
            self.arrears.pop(account_no, None)

    def applied_by_key(self) -> dict[str, int]:
        return dict(Counter(key for key, _ in self._filed.values() if key))

    def _reading(self, ref: str, at: datetime) -> MeterReading | None:
        unit = METER_UNITS.get(self.kind)
        return MeterReading(meter_value(self.name, ref), unit, at) if unit is not None else None

    def _current(self, ref: str) -> UtilityTransfer:
        """The stored transfer, completed once `processing_s` has passed (unless a test set it)."""
        transfer = self.transfers[ref]
        if ref in self._set or transfer.status is not TransferStatus.SUBMITTED:
            return transfer
        done_at = self._filed[ref][1] + timedelta(seconds=self.processing_s)
        if self.clock() < done_at:
            return transfer
        self.transfers[ref] = UtilityTransfer(
            ref=ref, status=TransferStatus.COMPLETED, final_reading=self._reading(ref, done_at)
        )
        return self.transfers[ref]

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
            if account_no in self.arrears:
                raise self._refuse(operation, 422, ARREARS, "账户欠费，结清后方可过户")
            ref = f"UT{len(self.transfers) + 1:08d}"
            self.transfers[ref] = UtilityTransfer(ref=ref, status=TransferStatus.SUBMITTED)
            self._filed[ref] = (idempotency_key, self.clock())
            return self._current(ref)

        arguments = (account_no, from_holder_ref, to_holder_ref, unit_number, address, effective_date)
        if self.dedupes:
            return await self._effect(operation, idempotency_key, arguments, apply)

        # No deduplication, so no automatic retry either (as the adapter): apply whatever arrives.
        fault = self._arrive(operation)
        if fault is not None and not fault.after_applying:
            fault.raise_for(self.system, operation)
        transfer = apply()
        self._applied[operation] += 1
        self._keys.setdefault(idempotency_key, _KeyRecord(operation, arguments)).applied += 1
        if fault is not None:
            fault.raise_for(self.system, operation)
        return transfer

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        def read() -> UtilityTransfer:
            if ref not in self.transfers:
                raise self._refuse("get_transfer", 404, TRANSFER_NOT_FOUND)
            return self._current(ref)

        return await self._read("get_transfer", read)

    async def _lookup_account(self, unit_number: str) -> str | None:
        def read() -> str | None:
            self._require_text("lookup_account", unit_number)
            return None if unit_number in self.removed_accounts else account_number(self.name, unit_number)

        return await self._read("lookup_account", read)

    async def _find_transfer(self, idempotency_key: str) -> UtilityTransfer | None:
        def read() -> UtilityTransfer | None:
            refs = [ref for ref, (key, _) in self._filed.items() if key == idempotency_key]
            return self._current(refs[0]) if refs else None

        return await self._read("find_transfer", read)


def fake_utilities(catalogue: ProviderCatalogue, **fake_options: Any) -> UtilityRouter:
    """The real router over one fake per configured provider; reach them with `router.provider(name)`."""
    providers = {
        p.name: FakeUtilityProvider(name=p.name, kind=p.kind, dedupes=p.dedupes, **fake_options)
        for p in catalogue.providers
    }
    return UtilityRouter(catalogue, providers)
