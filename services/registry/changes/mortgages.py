"""Changes to the register: mortgages: registration and cancellation.

The rules common to every change (alerts, row locks) are in _common.py.
"""

from __future__ import annotations

from datetime import date

from tortoise.transactions import in_transaction

from services.clock import Clock
from services.errors import NotFound, ValidationFailed
from services.kv import KeyValueStore
from services.registry.cache import invalidate_persons
from services.registry.changes._common import (
    DEFAULT_HOTLINE,
    _alert_holders,
    _end_record,
    _require_current,
    _right_for_update,
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
) -> Mortgage:
    if amount_fen <= 0 or term_end < term_start:
        raise ValidationFailed(
            "抵押金额须为正数，期限终止日不得早于起始日",
            "The amount must be positive and the term must not end before it starts",
        )
    async with in_transaction() as conn:
        right = await _right_for_update(conn, right_id)
        _require_current(right)
        if not await Organisation.exists(id=mortgagee_id, using_db=conn):
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
            using_db=conn,
        )
        touched = await _alert_holders(
            conn,
            right_ids=[right.id],
            unit=right.unit,
            event="抵押权登记",
            data={"right_id": right.id, "mortgage_id": mortgage.id},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    return mortgage


async def cancel_mortgage(
    *, mortgage_id: int, kv: KeyValueStore, clock: Clock, hotline: str = DEFAULT_HOTLINE
) -> Mortgage:
    mortgage: Mortgage = await _end_record(
        Mortgage,
        mortgage_id,
        ended_status="cancelled",
        ended_at_field="cancelled_at",
        event="抵押权注销登记",
        key="mortgage_id",
        kv=kv,
        clock=clock,
        hotline=hotline,
    )
    return mortgage


# --- seizures and objections ---------------------------------------------------------------------


