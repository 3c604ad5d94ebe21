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
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from services.clock import SHANGHAI, Clock
from services.errors import InvalidCaseTransition, NotFound, RegisterStateConflict, ValidationFailed
from services.kv import KeyValueStore
from services.messages import PROPERTY_CHANGE, SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.registry.cache import invalidate_persons
from services.registry.models import (
    Encumbrance,
    Mortgage,
    Organisation,
    RealEstateUnit,
    RegistrationCase,
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


def _shares(new_holders: Sequence[tuple[int, Decimal | str | int]]) -> list[tuple[int, Decimal]]:
    try:
        shares = [(int(pid), Decimal(str(share))) for pid, share in new_holders]
    except (InvalidOperation, ValueError):
        raise ValidationFailed("份额格式不正确", "A share is not a number") from None
    ids = [pid for pid, _ in shares]
    if (
        not shares
        or len(set(ids)) != len(ids)
        or any(s <= 0 for _, s in shares)
        or sum(s for _, s in shares) != 1
    ):
        raise ValidationFailed(
            "新权利人不能重复，份额须为正数且合计为1",
            "New holders must be distinct, with positive shares that add up to 1",
        )
    return shares


async def register_transfer(
    *,
    right_id: int,
    new_holders: Sequence[tuple[int, Decimal | str | int]],
    certificate_number: str,
    kv: KeyValueStore,
    clock: Clock,
    co_ownership: str | None = None,
    hotline: str = DEFAULT_HOTLINE,
) -> Right:
    """转移登记: the right becomes historical and a new right on the unit goes to `new_holders`
    ((person_id, share) pairs). Old and new holders are alerted.

    A seized right cannot be transferred (查封期间不得办理转移登记): RegisterStateConflict with
    `reason="seized"`. Active mortgages and objections follow the unit to the new right (民法典
    第406条: a transfer does not affect a mortgage), so the new holders see what burdens it."""
    shares = _shares(new_holders)
    async with in_transaction() as conn:
        old = await _right_for_update(conn, right_id)
        now = clock.now()
        changed = (
            await Right.filter(id=right_id, status="current")
            .using_db(conn)
            .update(status="historical", ended_at=now)
        )
        if changed != 1:
            raise RegisterStateConflict(right_id=right_id, status=old.status)
        seizures = await Encumbrance.filter(right_id=right_id, kind="seizure", status="active").using_db(conn)
        if seizures:
            raise RegisterStateConflict(
                "该权利已被查封，不能办理转移登记",
                "The right is seized and cannot be transferred",
                right_id=right_id,
                reason="seized",
                encumbrance_ids=[e.id for e in seizures],
            )
        new = await Right.create(
            certificate_number=certificate_number,
            unit_id=old.unit.id,
            right_type=old.right_type,
            co_ownership=co_ownership or ("sole" if len(shares) == 1 else "shares"),
            status="current",
            registered_at=now,
            district_code=old.district_code,
            using_db=conn,
        )
        await RightHolder.bulk_create(
            [RightHolder(right_id=new.id, person_id=pid, share=share) for pid, share in shares], using_db=conn
        )
        await Mortgage.filter(right_id=right_id, status="active").using_db(conn).update(right_id=new.id)
        await (
            Encumbrance.filter(right_id=right_id, kind="objection", status="active")
            .using_db(conn)
            .update(right_id=new.id)
        )
        touched = await _alert_holders(
            conn,
            right_ids=[old.id, new.id],
            unit=old.unit,
            event="转移登记",
            data={"right_id": new.id, "previous_right_id": old.id},
            clock=clock,
            hotline=hotline,
        )
    await invalidate_persons(kv, touched)
    return new


# --- registration cases --------------------------------------------------------------------------


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
