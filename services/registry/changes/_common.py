"""The sequence every change to the register follows, written once: `alerted_change`.

Invariant: a change to the register and the alerts to the holders of the rights it touches (an
in-app message, and an SMS through the outbox, template `property_alert`) commit together or not
at all; only after that commit are those holders' cached property lists invalidated
(services/registry/cache.py explains why after, and why that suffices). The use cases in this
package say what they change and whom it concerns; `alerted_change` does the rest, so none of
them can forget the alerts or invalidate before the commit.

Also here: the rules shared by several use cases (row locks, the case state machine, the names
of events shown to holders).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
    "cancellation": "注销登记",
    "mortgage": "抵押权登记",
    "mortgage_cancel": "抵押权注销登记",
    "mortgage_change": "抵押权变更登记",
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


# --- the sequence --------------------------------------------------------------------------------


class RegisterChange:
    """A change to the register in progress: its transaction and the persons it has alerted."""

    def __init__(self, conn: BaseDBAsyncClient, *, clock: Clock, hotline: str) -> None:
        self.conn = conn
        self.alerted: set[int] = set()
        self.holders_alerted = False
        self._clock = clock
        self._hotline = hotline

    async def alert_holders(
        self, *, right_ids: Sequence[int], unit: RealEstateUnit, event: str, data: dict[str, Any]
    ) -> None:
        """Alert, in this change's transaction, every person holding one of `right_ids`."""
        self.alerted |= await _alert_holders(
            self.conn,
            right_ids=right_ids,
            unit=unit,
            event=event,
            data=data,
            clock=self._clock,
            hotline=self._hotline,
        )
        self.holders_alerted = True


class RegisterTransaction:
    """A transaction that several changes to the register (and the caller's own rows, e.g. a
    case's move) share: everything commits together, and the persons alerted by any of them have
    their cached lists invalidated once, after that commit (`register_transaction`)."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.alerted: set[int] = set()


@asynccontextmanager
async def register_transaction(*, kv: KeyValueStore) -> AsyncIterator[RegisterTransaction]:
    """Open a transaction for a use case that changes the register; pass the yielded object as
    `tx=` to the change functions. Caches are invalidated only after the commit; a block that
    raises rolls back everything and invalidates nothing."""
    async with in_transaction() as conn:
        tx = RegisterTransaction(conn)
        yield tx
    await invalidate_persons(kv, tx.alerted)


@asynccontextmanager
async def alerted_change(
    *, kv: KeyValueStore, clock: Clock, hotline: str, tx: RegisterTransaction | None = None
) -> AsyncIterator[RegisterChange]:
    """A transaction for one change to the register; the block changes rows on `change.conn` and
    calls `change.alert_holders(...)`. An exception in the block rolls back the change and its
    alerts, and invalidates nothing. A block that never alerts is a bug and is rolled back too.

    With `tx`, the change runs in the caller's transaction and its alerted persons are handed to
    `tx`, which invalidates them after the caller's commit."""
    if tx is not None:
        change = RegisterChange(tx.conn, clock=clock, hotline=hotline)
        yield change
        if not change.holders_alerted:
            raise RuntimeError("a change to the register must alert the holders it touches")
        tx.alerted |= change.alerted
        return
    async with in_transaction() as conn:
        change = RegisterChange(conn, clock=clock, hotline=hotline)
        yield change
        if not change.holders_alerted:
            raise RuntimeError("a change to the register must alert the holders it touches")
    await invalidate_persons(kv, change.alerted)


# --- rows and states -----------------------------------------------------------------------------


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


# --- ending a mortgage or an encumbrance -------------------------------------------------------


# How each kind of record ends: its status, the field stamped with the time, the name of its id in
# alerts and errors.
_ENDINGS: dict[type[Mortgage] | type[Encumbrance], tuple[str, str, str]] = {
    Mortgage: ("cancelled", "cancelled_at", "mortgage_id"),
    Encumbrance: ("lifted", "lifted_at", "encumbrance_id"),
}


async def _end_record(
    model: type[Mortgage] | type[Encumbrance],
    record_id: int,
    *,
    event: str | None,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str,
    tx: RegisterTransaction | None = None,
) -> Any:
    """End an active mortgage or encumbrance: a conditional update, so two clerks cannot both end it.
    `event` None: named from the encumbrance's kind (seizure or objection)."""
    ended_status, ended_at_field, key = _ENDINGS[model]
    ids: dict[str, Any] = {key: record_id}
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        record = await model.get_or_none(id=record_id, using_db=change.conn)
        if record is None:
            raise NotFound(**ids)
        now = clock.now()
        changed = (
            await model.filter(id=record_id, status="active")
            .using_db(change.conn)
            .update(status=ended_status, **{ended_at_field: now})
        )
        if changed != 1:
            raise RegisterStateConflict(**ids, status=record.status)
        right = await _right_for_update(change.conn, record.right_id)  # type: ignore[union-attr]
        await change.alert_holders(
            right_ids=[right.id],
            unit=right.unit,
            event=event or _ENCUMBRANCE_EVENTS[(getattr(record, "kind", ""), "lifted")],
            data={"right_id": right.id, key: record_id},
        )
    record.status = ended_status
    setattr(record, ended_at_field, now)
    return record
