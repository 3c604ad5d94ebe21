"""Changes to the register: mortgages: registration, change and cancellation.

The sequence common to every change (transaction, alerts, cache invalidation) and the row
locks are in _common.py.
"""

from __future__ import annotations

from datetime import date, datetime

from services.clock import Clock
from services.errors import NotFound, RegisterStateConflict, ValidationFailed
from services.kv import KeyValueStore
from services.registry.changes._common import (
    DEFAULT_HOTLINE,
    RegisterTransaction,
    _end_record,
    _require_current,
    _right_for_update,
    alerted_change,
)
from services.registry.models import (
    Mortgage,
    Organisation,
)


async def register_mortgage(
    *,
    right_id: int,
    mortgagee_id: int,
    amount_fen: int,
    term_start: date,
    term_end: date,
    certificate_number: str,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
    contract_number: str | None = None,
    borrower_name: str | None = None,
    priority_at: datetime | None = None,
) -> Mortgage:
    """`contract_number`, `borrower_name` (when not the mortgagor) and `priority_at` (the filing's
    acceptance) come with a bank's filing; mortgages registered otherwise leave them empty."""
    if amount_fen <= 0 or term_end < term_start:
        raise ValidationFailed(
            "抵押金额须为正数，期限终止日不得早于起始日",
            "The amount must be positive and the term must not end before it starts",
        )
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        right = await _right_for_update(change.conn, right_id)
        _require_current(right)
        if not await Organisation.exists(id=mortgagee_id, using_db=change.conn):
            raise NotFound(organisation_id=mortgagee_id)
        mortgage = await Mortgage.create(
            certificate_number=certificate_number,
            right_id=right.id,
            mortgagee_id=mortgagee_id,
            amount_fen=amount_fen,
            term_start=term_start,
            term_end=term_end,
            status="active",
            registered_at=clock.now(),
            contract_number=contract_number,
            borrower_name=borrower_name,
            priority_at=priority_at,
            using_db=change.conn,
        )
        await change.alert_holders(
            right_ids=[right.id],
            unit=right.unit,
            event="抵押权登记",
            data={"right_id": right.id, "mortgage_id": mortgage.id},
        )
    return mortgage


async def cancel_mortgage(
    *,
    mortgage_id: int,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> Mortgage:
    mortgage: Mortgage = await _end_record(
        Mortgage, mortgage_id, event="抵押权注销登记", kv=kv, clock=clock, hotline=hotline, tx=tx
    )
    return mortgage


async def change_mortgage(
    *,
    mortgage_id: int,
    amount_fen: int,
    term_start: date,
    term_end: date,
    certificate_number: str,
    kv: KeyValueStore,
    clock: Clock,
    contract_number: str | None = None,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> Mortgage:
    """抵押权变更登记: a new amount or term for an active mortgage, under a new 不动产登记证明
    number; its priority stays. A conditional update on `active`: a concurrent cancel wins or loses
    whole."""
    if amount_fen <= 0 or term_end < term_start:
        raise ValidationFailed(
            "抵押金额须为正数，期限终止日不得早于起始日",
            "The amount must be positive and the term must not end before it starts",
        )
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        mortgage = await Mortgage.get_or_none(id=mortgage_id, using_db=change.conn)
        if mortgage is None:
            raise NotFound(mortgage_id=mortgage_id)
        right = await _right_for_update(change.conn, mortgage.right_id)  # type: ignore[attr-defined]
        _require_current(right)
        updates: dict[str, object] = {
            "amount_fen": amount_fen,
            "term_start": term_start,
            "term_end": term_end,
            "certificate_number": certificate_number,
        }
        if contract_number is not None:
            updates["contract_number"] = contract_number
        changed = (
            await Mortgage.filter(id=mortgage_id, status="active").using_db(change.conn).update(**updates)
        )
        if changed != 1:
            raise RegisterStateConflict(mortgage_id=mortgage_id, status=mortgage.status)
        await change.alert_holders(
            right_ids=[right.id],
            unit=right.unit,
            event="抵押权变更登记",
            data={"right_id": right.id, "mortgage_id": mortgage_id},
        )
    return await Mortgage.get(id=mortgage_id, using_db=tx.conn if tx is not None else None)
