"""Changes to the register: transfers of a right to new holders.

The sequence common to every change (transaction, alerts, cache invalidation) and the row
locks are in _common.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from services.certificates import housing_acquired
from services.clock import Clock
from services.errors import RegisterStateConflict, ValidationFailed
from services.kv import KeyValueStore
from services.pii import PiiVault
from services.registry.changes._common import (
    DEFAULT_HOTLINE,
    RegisterTransaction,
    _right_for_update,
    alerted_change,
)
from services.registry.models import (
    Encumbrance,
    Mortgage,
    Right,
    RightHolder,
)


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
    tx: RegisterTransaction | None = None,
    vault: PiiVault | None = None,
) -> Right:
    """转移登记: the right becomes historical and a new right on the unit goes to `new_holders`
    ((person_id, share) pairs). Old and new holders are alerted. `vault` lets revocation match a
    new holder by the index they had before a crypto-profile switch (certificates/revocation.py);
    the case workflow passes it.

    A seized right cannot be transferred (查封期间不得办理转移登记): RegisterStateConflict with
    `reason="seized"`. Active mortgages and objections follow the unit to the new right (民法典
    第406条: a transfer does not affect a mortgage), so the new holders see what burdens it."""
    shares = _shares(new_holders)
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        conn = change.conn
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
        # New holders of housing lose their no-housing certificates in this same transaction.
        await housing_acquired(
            conn, unit=old.unit, person_ids=[pid for pid, _ in shares], clock=clock, vault=vault
        )
        await change.alert_holders(
            right_ids=[old.id, new.id],
            unit=old.unit,
            event="转移登记",
            data={"right_id": new.id, "previous_right_id": old.id},
        )
    return new
