"""Changes to the register, each with its alerts, in one transaction.

Every function here changes the register and, in the same transaction, writes for every
person holding the touched right an in-app message and an SMS through the outbox (template
`property_alert`): a holder learns of a mortgage, seizure or transfer they did not make without
signing up for anything. Once the transaction has committed, the cached property lists of those
persons are invalidated (services/registry/cache.py explains why after, and why that suffices).

Features that change the register (clerks' registration, banks' mortgage filings) call these
functions rather than writing the models themselves, or they lose the alerts and serve stale lists.
State changes are conditional updates on the state read (`WHERE status = 'active'`), so two
concurrent changes to the same entry cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from services.clock import SHANGHAI, Clock
from services.errors import NotFound, RegisterStateConflict
from services.kv import KeyValueStore
from services.messages import PROPERTY_CHANGE, SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.registry.cache import invalidate_persons
from services.registry.models import (
    Encumbrance,
    Mortgage,
    RealEstateUnit,
    Right,
    RightHolder,
)

DEFAULT_HOTLINE = "12345"
ALERT_TEMPLATE = "property_alert"

# 不动产登记暂行条例: the moves a case may make; a state missing as a key is final.
CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    "applied": frozenset({"accepted", "not_accepted"}),
    "accepted": frozenset({"reviewing"}),
    "reviewing": frozenset({"registered", "refused"}),
    "registered": frozenset({"issued"}),
}
CASE_KIND_NAMES = {
    "first": "首次登记",
    "transfer": "转移登记",
    "mortgage": "抵押权登记",
    "mortgage_cancel": "抵押权注销登记",
    "seizure": "查封登记",
    "objection": "异议登记",
    "change": "变更登记",
    "correction": "更正登记",
}
CASE_STATE_NAMES = {
    "applied": "已申请",
    "accepted": "已受理",
    "not_accepted": "不予受理",
    "reviewing": "审核中",
    "registered": "已登簿",
    "refused": "不予登记",
    "issued": "已发证",
}
_ENCUMBRANCE_EVENTS = {
    ("seizure", "registered"): "查封登记",
    ("seizure", "lifted"): "解除查封登记",
    ("objection", "registered"): "异议登记",
    ("objection", "lifted"): "异议注销登记",
}


# --- alerts --------------------------------------------------------------------------------------


async def _alert_holders(
    conn: BaseDBAsyncClient,
    *,
    right_ids: Sequence[int],
    unit: RealEstateUnit,
    event: str,
    data: dict[str, Any],
    clock: Clock,
    hotline: str,
) -> set[int]:
    """An in-app message and an SMS (if a phone is known) for each person holding these rights."""
    rows = (
        await RightHolder.filter(right_id__in=list(right_ids), person_id__isnull=False)
        .using_db(conn)
        .order_by("person_id")
        .values("person_id", "person__phone_index")
    )
    # The phone itself stays encrypted: the outbox handler decrypts it when it sends.
    has_phone = {int(r["person_id"]): r["person__phone_index"] is not None for r in rows}
    now = clock.now()
    when = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    for person_id, reachable in has_phone.items():
        message = await post_message(
            person_id=person_id,
            kind=PROPERTY_CHANGE,
            title=f"不动产变动提醒：{event}",
            body=(
                f"您名下的不动产（{unit.address}，单元号{unit.unit_number}）于{when}发生{event}。"
                f"如非本人办理，请致电{hotline}。"
            ),
            data={**data, "event": event, "unit_number": unit.unit_number},
            clock=clock,
            connection=conn,
        )
        if reachable:
            await enqueue(
                topic=SMS_SEND,
                payload=sms_to_person(
                    person_id=person_id,
                    template=ALERT_TEMPLATE,
                    params={
                        "unit_number": unit.unit_number,
                        "time": when,
                        "event": event,
                        "hotline": hotline,
                    },
                ),
                idempotency_key=f"property-alert:{message.id}",
                connection=conn,
                clock=clock,
            )
    return set(has_phone)


async def _right_for_update(conn: BaseDBAsyncClient, right_id: int) -> Right:
    """The right, its row locked until `conn` ends (PostgreSQL; SQLite runs one write transaction
    at a time anyway): a transfer and a mortgage or seizure on the same right happen one after
    the other, so a seizure can never land on a right that was transferred meanwhile."""
    right = (
        await Right.filter(id=right_id)
        .select_for_update(of=(Right._meta.db_table,))  # the right's row, not its unit's
        .select_related("unit")
        .using_db(conn)
        .first()
    )
    if right is None:
        raise NotFound(right_id=right_id)
    return right


def _require_current(right: Right) -> None:
    if right.status != "current":
        raise RegisterStateConflict(right_id=right.id, status=right.status)


# --- mortgages -----------------------------------------------------------------------------------


async def _end_record(
    model: type[Mortgage] | type[Encumbrance],
    record_id: int,
    *,
    ended_status: str,
    ended_at_field: str,
    event: str | None,
    key: str,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str,
) -> Any:
    """End an active mortgage or encumbrance (a conditional update, so two clerks cannot both end
    it) and alert the holders of its right, in one transaction; then refresh their cached lists."""
    ids: dict[str, Any] = {key: record_id}
    async with in_transaction() as conn:
        record = await model.get_or_none(id=record_id, using_db=conn)
        if record is None:
            raise NotFound(**ids)
        now = clock.now()
        changed = (
            await model.filter(id=record_id, status="active")
            .using_db(conn)
            .update(status=ended_status, **{ended_at_field: now})
        )
        if changed != 1:
            raise RegisterStateConflict(**ids, status=record.status)
        right = await _right_for_update(conn, record.right_id)  # type: ignore[union-attr]
        touched = await _alert_holders(
            conn,
            right_ids=[right.id],
            unit=right.unit,
            event=event or _ENCUMBRANCE_EVENTS[(getattr(record, "kind", ""), "lifted")],
            data={"right_id": right.id, key: record_id},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    record.status = ended_status
    setattr(record, ended_at_field, now)
    return record


