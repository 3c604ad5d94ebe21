"""Changes to the register: registration cases: start and state moves.

The sequence common to every change (transaction, alerts, cache invalidation) and the row
locks are in _common.py.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.clock import Clock
from services.errors import InvalidCaseTransition, NotFound
from services.kv import KeyValueStore
from services.registry.changes._common import (
    CASE_KIND_NAMES,
    CASE_STATE_NAMES,
    CASE_TRANSITIONS,
    DEFAULT_HOTLINE,
    RegisterTransaction,
    alerted_change,
)
from services.registry.models import (
    RealEstateUnit,
    RegistrationCase,
    Right,
)


async def _current_right_ids(conn: BaseDBAsyncClient, unit_id: int) -> list[int]:
    ids = await Right.filter(unit_id=unit_id, status="current").using_db(conn).values_list("id", flat=True)
    return [int(i) for i in ids]  # type: ignore[call-overload]


async def start_case(
    *,
    unit_id: int,
    kind: str,
    case_number: str,
    kv: KeyValueStore,
    clock: Clock,
    right_id: int | None = None,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
    **case_fields: Any,
) -> RegistrationCase:
    """申请: a case on the unit; the current holders see `registration_in_progress` until it ends.
    `case_fields`: the case's other columns (office, details, open_key)."""
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        unit = await RealEstateUnit.get_or_none(id=unit_id, using_db=change.conn)
        if unit is None:
            raise NotFound(unit_id=unit_id)
        case = await RegistrationCase.create(
            case_number=case_number,
            unit_id=unit.id,
            right_id=right_id,
            kind=kind,
            state="applied",
            applied_at=clock.now(),
            **case_fields,
            using_db=change.conn,
        )
        await change.alert_holders(
            right_ids=await _current_right_ids(change.conn, unit.id),
            unit=unit,
            event=f"{CASE_KIND_NAMES.get(kind, kind)}申请",
            data={"case_number": case_number, "state": "applied"},
        )
    return case


async def advance_case(
    *,
    case_id: int,
    state: str,
    kv: KeyValueStore,
    clock: Clock,
    reason: str | None = None,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> RegistrationCase:
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        case = await RegistrationCase.get_or_none(id=case_id, using_db=change.conn)
        if case is None:
            raise NotFound(case_id=case_id)
        if state not in CASE_TRANSITIONS.get(case.state, frozenset()):
            raise InvalidCaseTransition(case_id=case_id, state=case.state, requested=state)
        changed = (
            await RegistrationCase.filter(id=case_id, state=case.state)
            .using_db(change.conn)
            .update(state=state, reason=reason, updated_at=clock.now())
        )
        if changed != 1:
            raise InvalidCaseTransition(case_id=case_id, state=case.state, requested=state)
        unit = await RealEstateUnit.get(id=case.unit_id, using_db=change.conn)  # type: ignore[attr-defined]
        await change.alert_holders(
            right_ids=await _current_right_ids(change.conn, unit.id),
            unit=unit,
            event=f"{CASE_KIND_NAMES.get(case.kind, case.kind)}{CASE_STATE_NAMES.get(state, state)}",
            data={"case_number": case.case_number, "state": state},
        )
    case.state, case.reason = state, reason
    return case
