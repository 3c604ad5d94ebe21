"""First registration (首次登记) of a new building's units, applied for online by its developer.

The case stands on the parcel's unit (the `W` unit of GB/T 37346, e.g.
`310115001001GB00001W00000000`): a developer registers the houses of a building on land whose
use right it holds in the register (不动产登记暂行条例实施细则 第24条), so the application
names that parcel and the case's `unit` and `right` are the parcel and its land-use right. The
units applied for live in the case's details until registration writes them to the register,
together with the organisation's rights and their certificate numbers, in the move's transaction.

Checks, each with its own code: the organisation holds the parcel's current land-use right
(PARCEL_NOT_HELD, 404 either way), the land is not seized (RIGHT_SEIZED), no unit is in the
register yet (UNITS_ALREADY_REGISTERED), one open first registration per building
(FIRST_REGISTRATION_IN_PROGRESS, by the case's `open_key`), and the tax bureau's clearance of the
project (TAX_CLEARANCE_PENDING, TAX_CLEARANCE_REFUSED) before acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.cases import numbers
from services.cases.clearance import request_clearance, require_cleared
from services.cases.opening import open_case
from services.cases.transfers import office_for
from services.clock import SHANGHAI, Clock
from services.errors import (
    FirstRegistrationInProgress,
    InvalidUnitNumber,
    ParcelNotHeld,
    RightSeized,
    UnitsAlreadyRegistered,
    ValidationFailed,
)
from services.identifiers import parse_unit_number
from services.registry.changes import NewUnit, RegisterTransaction, register_first
from services.registry.models import (
    CaseEvent,
    CaseParty,
    Encumbrance,
    Organisation,
    RealEstateUnit,
    RegistrationCase,
    Right,
    RightHolder,
)
from standards.gb2260 import SHANGHAI_DISTRICTS

FIRST = "first"
APPLICANT = "applicant"
UNIT_USES = ("residential", "commercial", "office", "industrial", "parking")
MAX_UNITS = 500
_PARCEL_PREFIX = 19  # county (6) + cadastral district (3) + sub-district (3) + type (2) + parcel (5)


@dataclass(frozen=True)
class UnitInput:
    unit_number: str
    area_m2: Decimal
    use: str
    address: str


@dataclass(frozen=True)
class FirstRegistrationApplication:
    organisation_id: int
    actor_id: str  # who applied: "staff:<id>" or "client:<client id>"
    parcel_unit_number: str
    building_number: str  # 4 digits, as in the units' numbers
    building_address: str
    units: tuple[UnitInput, ...]
    office_code: str | None = None


def open_key(parcel_unit_number: str, building_number: str) -> str:
    return f"{FIRST}:{parcel_unit_number[:_PARCEL_PREFIX]}:{building_number}"


def validate(app: FirstRegistrationApplication) -> tuple[str, list[UnitInput]]:
    """The parcel and the units, normalised; each problem names its field. Returns the parcel's
    unit number and the units."""
    try:
        parcel = parse_unit_number(app.parcel_unit_number)
    except InvalidUnitNumber as exc:
        exc.fields.setdefault("field", "parcel_unit_number")
        raise
    if parcel.fixture_type != "W":
        raise InvalidUnitNumber(
            "宗地的不动产单元号应以W00000000结尾（无定着物）",
            "A parcel's unit number ends in W00000000 (no fixture)",
            field="parcel_unit_number",
            reason="not_a_parcel",
        )
    if parcel.county_code not in SHANGHAI_DISTRICTS:
        raise InvalidUnitNumber(
            "宗地不在本市辖区内", "The parcel is not in a district of the city", field="parcel_unit_number"
        )
    if not (
        len(app.building_number) == 4 and app.building_number.isdigit() and app.building_number != "0000"
    ):
        raise ValidationFailed("幢号应为4位数字", "A building number has 4 digits", field="building.number")
    if not app.units or len(app.units) > MAX_UNITS:
        raise ValidationFailed(
            f"应申请1至{MAX_UNITS}个不动产单元", f"Apply for 1 to {MAX_UNITS} units", field="units"
        )
    units: list[UnitInput] = []
    seen: set[str] = set()
    for i, u in enumerate(app.units):
        where = f"units[{i}].unit_number"
        try:
            number = parse_unit_number(u.unit_number)
        except InvalidUnitNumber as exc:
            exc.fields.setdefault("field", where)
            raise
        if number.fixture_type != "F" or number.value[:_PARCEL_PREFIX] != parcel.value[:_PARCEL_PREFIX]:
            raise InvalidUnitNumber(
                "该房屋单元不在所申请的宗地上", "The unit is not a house on this parcel", field=where
            )
        if number.building != app.building_number:
            raise InvalidUnitNumber(
                "该房屋单元不在所申请的幢", "The unit is not in this building", field=where
            )
        if number.value in seen:
            raise ValidationFailed("不动产单元号重复", "A unit number is listed twice", field=where)
        seen.add(number.value)
        if u.use not in UNIT_USES:
            raise ValidationFailed("用途不合法", "Unknown use", field=f"units[{i}].use")
        if u.area_m2 <= 0:
            raise ValidationFailed("面积须为正数", "The area must be positive", field=f"units[{i}].area_m2")
        units.append(UnitInput(number.value, u.area_m2, u.use, u.address.strip()))
    return parcel.value, units


async def check_first(
    conn: BaseDBAsyncClient | None, *, organisation_id: int, parcel_unit_number: str, unit_numbers: list[str]
) -> Right:
    """The organisation holds the parcel's current land-use right, the land is not seized, and no
    unit is in the register yet. Returns the land-use right (with its unit)."""
    land = (
        await Right.filter(unit__unit_number=parcel_unit_number, status="current")
        .select_related("unit")
        .using_db(conn)
        .first()
    )
    if land is None or not await RightHolder.exists(
        right_id=land.id, organisation_id=organisation_id, using_db=conn
    ):
        raise ParcelNotHeld(field="parcel_unit_number")
    if await Encumbrance.exists(right_id=land.id, kind="seizure", status="active", using_db=conn):
        raise RightSeized(
            "该宗地已被查封，不能办理首次登记",
            "The parcel is seized: no first registration on it",
            right_id=land.id,
        )
    taken = (
        await RealEstateUnit.filter(unit_number__in=unit_numbers)
        .using_db(conn)
        .values_list("unit_number", flat=True)
    )
    if taken:
        raise UnitsAlreadyRegistered(unit_numbers=sorted(str(n) for n in taken))
    return land


async def open_first(
    tx: RegisterTransaction, app: FirstRegistrationApplication, *, kv: Any, clock: Clock, hotline: str
) -> int:
    """Write the case on the parcel, its applicant, its first event and the tax clearance request;
    returns the case id."""
    parcel, units = validate(app)
    conn = tx.conn
    unit_numbers = [u.unit_number for u in units]
    land = await check_first(
        conn, organisation_id=app.organisation_id, parcel_unit_number=parcel, unit_numbers=unit_numbers
    )
    organisation = await Organisation.get(id=app.organisation_id, using_db=conn)
    district = land.unit.district_code
    now = clock.now()
    office = await office_for(conn, app.office_code, district)
    number = await numbers.case_number(conn, year=now.astimezone(SHANGHAI).year, district_code=district)
    details: dict[str, Any] = {
        "parcel_unit_number": parcel,
        "building": {"number": app.building_number, "address": app.building_address.strip()},
        "units": [
            {"unit_number": u.unit_number, "area_m2": str(u.area_m2), "use": u.use, "address": u.address}
            for u in units
        ],
    }
    case = await open_case(
        tx,
        in_progress=FirstRegistrationInProgress(field="building.number"),
        unit_id=land.unit.id,
        kind=FIRST,
        case_number=number,
        right_id=land.id,
        kv=kv,
        clock=clock,
        hotline=hotline,
        office_id=office,
        details=details,
        open_key=open_key(parcel, app.building_number),
    )
    await CaseParty.create(
        case_id=case.id, role=APPLICANT, organisation_id=app.organisation_id, confirmed_at=now, using_db=conn
    )
    await CaseEvent.create(
        case_id=case.id,
        from_state=None,
        to_state="applied",
        actor_kind="organisation",
        actor_id=app.actor_id,
        at=now,
        using_db=conn,
    )
    await request_clearance(
        conn,
        case_number=number,
        taxpayer_ref=organisation.credit_code,
        unit_numbers=unit_numbers,
        clock=clock,
    )
    return int(case.id)


async def _applicant_id(conn: BaseDBAsyncClient, case_id: int) -> int:
    party = await CaseParty.filter(case_id=case_id, role=APPLICANT).using_db(conn).first()
    return int(party.organisation_id) if party is not None else 0  # type: ignore[attr-defined]


class FirstRegistrationKind:
    """The first registration's rules for the case workflow (services/cases/kinds.py)."""

    name = FIRST

    def __init__(self, *, kv: Any, clock: Clock, hotline: str) -> None:
        self.kv = kv
        self.clock = clock
        self.hotline = hotline

    async def check_move(self, tx: RegisterTransaction, case: RegistrationCase, to_state: str) -> None:
        if to_state != "accepted":
            return
        details = dict(case.details or {})
        await check_first(
            tx.conn,
            organisation_id=await _applicant_id(tx.conn, case.id),
            parcel_unit_number=details["parcel_unit_number"],
            unit_numbers=[u["unit_number"] for u in details["units"]],
        )
        require_cleared(case)

    async def register(self, tx: RegisterTransaction, case: RegistrationCase) -> str | None:
        """登簿: the units and the organisation's rights, each right with its certificate number.
        The case keeps them in its details (`registered`); its own certificate_number stays empty,
        since one case produces a certificate per unit."""
        conn = tx.conn
        details = dict(case.details or {})
        year = self.clock.now().astimezone(SHANGHAI).year
        new_units = []
        for u in details["units"]:
            district = u["unit_number"][:6]
            new_units.append(
                NewUnit(
                    unit_number=u["unit_number"],
                    district_code=district,
                    address=u["address"],
                    use=u["use"],
                    area_m2=Decimal(u["area_m2"]),
                    certificate_number=await numbers.certificate_number(
                        conn, year=year, district_code=district, kind="right"
                    ),
                )
            )
        rights = await register_first(
            units=new_units,
            organisation_id=await _applicant_id(conn, case.id),
            kv=self.kv,
            clock=self.clock,
            hotline=self.hotline,
            tx=tx,
        )
        details["registered"] = [
            {"unit_number": u.unit_number, "right_id": r.id, "certificate_number": r.certificate_number}
            for u, r in zip(new_units, rights, strict=True)
        ]
        await RegistrationCase.filter(id=case.id).using_db(conn).update(details=details)
        return None
