"""Changes to the register: rights that begin with their units (首次登记) and rights that end
(注销登记).

The sequence common to every change (transaction, alerts, cache invalidation) and the row
locks are in _common.py.

Invariant (first registration): the units and their rights enter together or not at all; a unit
number already in the register stops the whole change (the unique constraint on
`real_estate_unit.unit_number` stands behind the check, so two registrations of one building
cannot both land).

Invariant (cancellation): a right ends once, by a conditional update on `status = 'current'`; a
seized right never ends here (a court's seizure is lifted by the court first), and a mortgage
never survives the right it burdens: either the change cancels it (the mortgagee consented) or
the right does not end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tortoise.exceptions import IntegrityError

from services.clock import Clock
from services.errors import RegisterStateConflict, UnitsAlreadyRegistered, ValidationFailed
from services.kv import KeyValueStore
from services.registry.changes._common import (
    DEFAULT_HOTLINE,
    RegisterTransaction,
    _right_for_update,
    alerted_change,
)
from services.registry.models import Encumbrance, Mortgage, RealEstateUnit, Right, RightHolder


@dataclass(frozen=True, slots=True)
class NewUnit:
    """A unit entering the register with its first right, and that right's certificate number."""

    unit_number: str
    district_code: str
    address: str
    use: str
    area_m2: Decimal
    certificate_number: str


async def register_first(
    *,
    units: Sequence[NewUnit],
    organisation_id: int,
    kv: KeyValueStore,
    clock: Clock,
    right_type: str = "house_ownership",
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> list[Right]:
    """首次登记: each unit enters the register with a current right held solely by the
    organisation (e.g. the developer of a new building). Returns the rights, in `units` order."""
    if not units:
        raise ValidationFailed(
            "首次登记至少包含一个不动产单元", "A first registration names at least one unit"
        )
    numbers = [u.unit_number for u in units]
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        conn = change.conn
        taken = (
            await RealEstateUnit.filter(unit_number__in=numbers)
            .using_db(conn)
            .values_list("unit_number", flat=True)
        )
        if taken:
            raise UnitsAlreadyRegistered(unit_numbers=sorted(str(n) for n in taken))
        now = clock.now()
        rights: list[Right] = []
        try:
            async with conn._in_transaction() as savepoint:  # a concurrent twin: the constraint decides
                for u in units:
                    unit = await RealEstateUnit.create(
                        unit_number=u.unit_number,
                        district_code=u.district_code,
                        address=u.address,
                        use=u.use,
                        area_m2=u.area_m2,
                        using_db=savepoint,
                    )
                    right = await Right.create(
                        certificate_number=u.certificate_number,
                        unit_id=unit.id,
                        right_type=right_type,
                        co_ownership="sole",
                        status="current",
                        registered_at=now,
                        district_code=u.district_code,
                        using_db=savepoint,
                    )
                    await RightHolder.create(
                        right_id=right.id,
                        organisation_id=organisation_id,
                        share=Decimal(1),
                        using_db=savepoint,
                    )
                    rights.append(right)
        except IntegrityError:
            raise UnitsAlreadyRegistered(unit_numbers=numbers) from None
        first_unit = await RealEstateUnit.get(id=rights[0].unit_id, using_db=conn)  # type: ignore[attr-defined]
        # The holder is an organisation: no person to alert, but the sequence is the same.
        await change.alert_holders(
            right_ids=[r.id for r in rights],
            unit=first_unit,
            event="首次登记",
            data={"right_ids": [r.id for r in rights]},
        )
    return rights


async def end_right(
    *,
    right_id: int,
    kv: KeyValueStore,
    clock: Clock,
    cancel_mortgages: bool = False,
    hotline: str = DEFAULT_HOTLINE,
    tx: RegisterTransaction | None = None,
) -> Right:
    """注销登记: the right becomes historical (the house was demolished or lost, or the holder gave
    it up); its holders are alerted. Active mortgages are cancelled with it when
    `cancel_mortgages` (the mortgagee consented), else the right does not end
    (RegisterStateConflict, `reason="mortgaged"`); a seized right does not end (`reason="seized"`)."""
    async with alerted_change(kv=kv, clock=clock, hotline=hotline, tx=tx) as change:
        conn = change.conn
        right = await _right_for_update(conn, right_id)
        seizures = await Encumbrance.filter(right_id=right_id, kind="seizure", status="active").using_db(conn)
        if seizures:
            raise RegisterStateConflict(
                "该权利已被查封，不能办理注销登记",
                "The right is seized and cannot be cancelled",
                right_id=right_id,
                reason="seized",
                encumbrance_ids=[e.id for e in seizures],
            )
        now = clock.now()
        mortgages = Mortgage.filter(right_id=right_id, status="active").using_db(conn)
        if await mortgages.exists():
            if not cancel_mortgages:
                raise RegisterStateConflict(
                    "该权利存在有效抵押，不能办理注销登记",
                    "The right is mortgaged and cannot be cancelled",
                    right_id=right_id,
                    reason="mortgaged",
                )
            await mortgages.update(status="cancelled", cancelled_at=now)
        changed = (
            await Right.filter(id=right_id, status="current")
            .using_db(conn)
            .update(status="historical", ended_at=now)
        )
        if changed != 1:
            raise RegisterStateConflict(right_id=right_id, status=right.status)
        await change.alert_holders(
            right_ids=[right.id], unit=right.unit, event="注销登记", data={"right_id": right.id}
        )
    right.status, right.ended_at = "historical", now
    return right
