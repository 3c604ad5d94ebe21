"""Changes to the register: registration cases: start and state moves.

The rules common to every change (alerts, row locks) are in _common.py.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from services.clock import Clock
from services.errors import InvalidCaseTransition, NotFound
from services.kv import KeyValueStore
from services.registry.cache import invalidate_persons
from services.registry.changes._common import (
    CASE_KIND_NAMES,
    CASE_STATE_NAMES,
    CASE_TRANSITIONS,
    DEFAULT_HOTLINE,
    _alert_holders,
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
) -> RegistrationCase:
    """申请: a case on the unit; the current holders see `registration_in_progress` until it ends."""
    async with in_transaction() as conn:
        unit = await RealEstateUnit.get_or_none(id=unit_id, using_db=conn)
        if unit is None:
            raise NotFound(unit_id=unit_id)
        case = await RegistrationCase.create(
            case_number=case_number,
            unit_id=unit.id,
            right_id=right_id,
            kind=kind,
            state="applied",
            applied_at=clock.now(),
            using_db=conn,
        )
        touched = await _alert_holders(
            conn,
            right_ids=await _current_right_ids(conn, unit.id),
            unit=unit,
            event=f"{CASE_KIND_NAMES.get(kind, kind)}申请",
            data={"case_number": case_number, "state": "applied"},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    return case


async def advance_case(
    *,
    case_id: int,
    state: str,
    kv: KeyValueStore,
    clock: Clock,
    reason: str | None = None,
    hotline: str = DEFAULT_HOTLINE,
) -> RegistrationCase:
    async with in_transaction() as conn:
        case = await RegistrationCase.get_or_none(id=case_id, using_db=conn)
        if case is None:
            raise NotFound(case_id=case_id)
        if state not in CASE_TRANSITIONS.get(case.state, frozenset()):
            raise InvalidCaseTransition(case_id=case_id, state=case.state, requested=state)
        changed = (
            await RegistrationCase.filter(id=case_id, state=case.state)
            .using_db(conn)
            .update(state=state, reason=reason, updated_at=clock.now())
        )
        if changed != 1:
            raise InvalidCaseTransition(case_id=case_id, state=case.state, requested=state)
        unit = await RealEstateUnit.get(id=case.unit_id, using_db=conn)  # type: ignore[attr-defined]
        touched = await _alert_holders(
            conn,
            right_ids=await _current_right_ids(conn, unit.id),
            unit=unit,
            event=f"{CASE_KIND_NAMES.get(case.kind, case.kind)}{CASE_STATE_NAMES.get(state, state)}",
            data={"case_number": case.case_number, "state": state},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    case.state, case.reason = state, reason
    return case

