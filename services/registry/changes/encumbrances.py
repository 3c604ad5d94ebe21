"""Changes to the register: seizures and objections: registration and lifting.

The rules common to every change (alerts, row locks) are in _common.py.
"""

from __future__ import annotations

from datetime import date

from tortoise.transactions import in_transaction

from services.clock import Clock
from services.errors import ValidationFailed
from services.kv import KeyValueStore
from services.registry.cache import invalidate_persons
from services.registry.changes._common import (
    _ENCUMBRANCE_EVENTS,
    DEFAULT_HOTLINE,
    _alert_holders,
    _end_record,
    _require_current,
    _right_for_update,
)
from services.registry.models import (
    Encumbrance,
)


async def register_encumbrance(
    *,
    right_id: int,
    kind: str,
    authority: str,
    document_number: str,
    starts_on: date,
    kv: KeyValueStore,
    clock: Clock,
    ends_on: date | None = None,
    hotline: str = DEFAULT_HOTLINE,
) -> Encumbrance:
    """A seizure (查封) by a court or authority, or an objection (异议) by a party."""
    if kind not in ("seizure", "objection"):
        raise ValidationFailed("登记类型应为查封或异议", "The kind must be seizure or objection", kind=kind)
    async with in_transaction() as conn:
        right = await _right_for_update(conn, right_id)
        _require_current(right)
        encumbrance = await Encumbrance.create(
            right_id=right.id,
            kind=kind,
            authority=authority,
            document_number=document_number,
            starts_on=starts_on,
            ends_on=ends_on,
            status="active",
            registered_at=clock.now(),
            using_db=conn,
        )
        touched = await _alert_holders(
            conn,
            right_ids=[right.id],
            unit=right.unit,
            event=_ENCUMBRANCE_EVENTS[(kind, "registered")],
            data={"right_id": right.id, "encumbrance_id": encumbrance.id},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    return encumbrance


async def lift_encumbrance(
    *, encumbrance_id: int, kv: KeyValueStore, clock: Clock, hotline: str = DEFAULT_HOTLINE
) -> Encumbrance:
    encumbrance: Encumbrance = await _end_record(
        Encumbrance,
        encumbrance_id,
        ended_status="lifted",
        ended_at_field="lifted_at",
        event=None,  # from the kind: seizure or objection
        key="encumbrance_id",
        kv=kv,
        clock=clock,
        hotline=hotline,
    )
    return encumbrance


