"""Changes to the register: seizures and objections: registration and lifting.

The sequence common to every change (transaction, alerts, cache invalidation) and the row
locks are in _common.py.
"""

from __future__ import annotations

from datetime import date

from services.clock import Clock
from services.errors import ValidationFailed
from services.kv import KeyValueStore
from services.registry.changes._common import (
    _ENCUMBRANCE_EVENTS,
    DEFAULT_HOTLINE,
    RegisterTransaction,
    _end_record,
    _require_current,
    _right_for_update,
    alerted_change,
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
    tx: RegisterTransaction | None = None,
) -> Encumbrance:
    """A seizure (查封) by a court or authority, or an objection (异议) by a party."""
    if kind not in ("seizure", "objection"):
        raise ValidationFailed("登记类型应为查封或异议", "The kind must be seizure or objection", kind=kind)
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        right = await _right_for_update(change.conn, right_id)
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
            using_db=change.conn,
        )
        await change.alert_holders(
            right_ids=[right.id],
            unit=right.unit,
            event=_ENCUMBRANCE_EVENTS[(kind, "registered")],
            data={"right_id": right.id, "encumbrance_id": encumbrance.id},
        )
    return encumbrance


async def lift_encumbrance(
    *,
    encumbrance_id: int,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> Encumbrance:
    encumbrance: Encumbrance = await _end_record(
        Encumbrance, encumbrance_id, event=None, kv=kv, clock=clock, hotline=hotline, tx=tx
    )
    return encumbrance
