"""我的不动产: the rights a person holds, in one shape for the person and for their guardians.

A page is read in a fixed number of queries whatever its size (rights with their units, then
holders, active mortgages, active encumbrances and open cases for the whole page), and cached
per person (services/registry/cache.py). Who may read whose list is decided by the callers
(`api/routes/properties.py` for oneself, services/guardianship/links.py for a ward).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise.expressions import Q

from services.clock import SHANGHAI
from services.errors import NotFound
from services.identifiers import mask_name
from services.kv import KeyValueStore
from services.registry.cache import cached_property_list
from services.registry.models import (
    NO_ENCUMBRANCES,
    CaseView,
    CoHolder,
    EarlierRight,
    EncodedPropertyPage,
    Encumbrance,
    Encumbrances,
    EncumbranceView,
    History,
    Mortgage,
    MortgageView,
    PropertyItem,
    PropertyPage,
    PropertyRecord,
    RealEstateUnit,
    RegistrationCase,
    Right,
    RightHolder,
)
from standards.gb2260 import SHANGHAI_DISTRICTS

DISTRICT_NAMES = SHANGHAI_DISTRICTS  # GB/T 2260 (standards/gb2260.py)

# 不动产登记暂行条例: applied -> accepted -> reviewing -> registered (登簿) -> issued (发证).
# Until the certificate is issued, or the case is refused, a registration is in progress.
OPEN_CASE_STATES = ("applied", "accepted", "reviewing", "registered")
FINAL_CASE_STATES = ("not_accepted", "refused", "issued")


# --- the list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyFilters:
    district_code: str | None = None
    right_type: str | None = None
    include_historical: bool = False


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(SHANGHAI) if moment is not None else None


def _share(value: Decimal | float | int) -> str:
    return format(Decimal(value).normalize(), "f")


def _holder_name(row: dict[str, Any]) -> tuple[str, str]:
    if row.get("person_id") is not None:
        return "person", mask_name(str(row["person__name"]))
    return "organisation", str(row.get("organisation__name") or "")


async def _holders_by_right(right_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = (
        await RightHolder.filter(right_id__in=right_ids)
        .order_by("right_id", "id")
        .values("right_id", "person_id", "organisation_id", "share", "person__name", "organisation__name")
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[int(row["right_id"])].append(row)
    return out


def _mortgage(row: dict[str, Any]) -> MortgageView:
    return MortgageView(
        mortgage_id=row["id"],
        certificate_number=row["certificate_number"],
        mortgagee=row["mortgagee__name"],
        amount_fen=int(row["amount_fen"]),
        term_start=row["term_start"],
        term_end=row["term_end"],
        status=row["status"],
        registered_at=row["registered_at"].astimezone(SHANGHAI),
        cancelled_at=_local(row["cancelled_at"]),
    )


def _encumbrance(row: dict[str, Any]) -> EncumbranceView:
    return EncumbranceView(
        encumbrance_id=row["id"],
        authority=row["authority"],
        document_number=row["document_number"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        status=row["status"],
        registered_at=row["registered_at"].astimezone(SHANGHAI),
        lifted_at=_local(row["lifted_at"]),
    )


_MORTGAGE_FIELDS = (
    "id",
    "right_id",
    "certificate_number",
    "mortgagee__name",
    "amount_fen",
    "term_start",
    "term_end",
    "status",
    "registered_at",
    "cancelled_at",
)
_ENCUMBRANCE_FIELDS = (
    "id",
    "right_id",
    "kind",
    "authority",
    "document_number",
    "starts_on",
    "ends_on",
    "status",
    "registered_at",
    "lifted_at",
)


async def _encumbrances_by_right(right_ids: list[int], *, active_only: bool) -> dict[int, Encumbrances]:
    mortgages = Mortgage.filter(right_id__in=right_ids)
    others = Encumbrance.filter(right_id__in=right_ids)
    if active_only:
        mortgages, others = mortgages.filter(status="active"), others.filter(status="active")
    found: dict[int, dict[str, list[Any]]] = defaultdict(
        lambda: {"mortgages": [], "seizure": [], "objection": []}
    )
    for row in await mortgages.order_by("id").values(*_MORTGAGE_FIELDS):
        found[int(row["right_id"])]["mortgages"].append(_mortgage(row))
    for row in await others.order_by("id").values(*_ENCUMBRANCE_FIELDS):
        found[int(row["right_id"])].setdefault(str(row["kind"]), []).append(_encumbrance(row))
    return {
        right_id: Encumbrances(tuple(lists["mortgages"]), tuple(lists["seizure"]), tuple(lists["objection"]))
        for right_id, lists in found.items()
    }


def _active(encumbrances: Encumbrances) -> Encumbrances:
    return Encumbrances(
        tuple(m for m in encumbrances.mortgages if m.status == "active"),
        tuple(e for e in encumbrances.seizures if e.status == "active"),
        tuple(e for e in encumbrances.objections if e.status == "active"),
    )


async def _units_with_open_cases(unit_ids: list[int]) -> set[int]:
    rows = await RegistrationCase.filter(unit_id__in=unit_ids, state__in=OPEN_CASE_STATES).values_list(
        "unit_id", flat=True
    )
    return {int(u) for u in rows}  # type: ignore[call-overload]


def _item_fields(
    right: Right,
    unit: RealEstateUnit,
    person_id: int,
    holders: list[dict[str, Any]],
    encumbrances: Encumbrances,
    in_progress: bool,
) -> dict[str, Any]:
    """The fields of a PropertyItem, shared by the list's items and the detail's record."""
    mine = next((h for h in holders if h["person_id"] == person_id), None)
    co_holders = []
    for h in holders:
        if h is mine:
            continue
        kind, name = _holder_name(h)
        co_holders.append(CoHolder(kind, name, _share(h["share"])))  # type: ignore[arg-type]
    return {
        "right_id": right.id,
        "certificate_number": right.certificate_number,
        "right_type": right.right_type,
        "co_ownership": right.co_ownership,
        "status": right.status,
        "unit_number": unit.unit_number,
        "address": unit.address,
        "district_code": right.district_code,
        "district_name": DISTRICT_NAMES.get(right.district_code),
        "use": unit.use,
        "area_m2": f"{Decimal(unit.area_m2):.2f}",
        "share": _share(mine["share"]) if mine else "0",
        "co_holders": tuple(co_holders),
        "registered_at": right.registered_at.astimezone(SHANGHAI),
        "ended_at": _local(right.ended_at),
        "encumbrances": encumbrances,
        "registration_in_progress": in_progress and right.status == "current",
    }


async def list_properties(
    *, person_id: int, filters: PropertyFilters, after_id: int | None, limit: int
) -> PropertyPage:
    """One page, ordered by right id: keyset pagination, so rights added while a client pages
    appear at the end and nothing already listed moves (no duplicates, no omissions)."""
    query = Right.filter(holders__person_id=person_id)
    if not filters.include_historical:
        query = query.filter(status="current")
    if filters.district_code:
        query = query.filter(district_code=filters.district_code)
    if filters.right_type:
        query = query.filter(right_type=filters.right_type)
    if after_id is not None:
        query = query.filter(id__gt=after_id)
    rights = await query.order_by("id").limit(limit + 1).select_related("unit")
    more = len(rights) > limit
    rights = rights[:limit]
    ids = [r.id for r in rights]
    if not ids:
        return PropertyPage((), None)
    holders = await _holders_by_right(ids)
    encumbrances = await _encumbrances_by_right(ids, active_only=True)
    open_units = await _units_with_open_cases(sorted({r.unit_id for r in rights}))  # type: ignore[attr-defined]
    items = tuple(
        PropertyItem(
            **_item_fields(
                r,
                r.unit,
                person_id,
                holders[r.id],
                encumbrances.get(r.id, NO_ENCUMBRANCES),
                r.unit_id in open_units,  # type: ignore[attr-defined]
            )
        )
        for r in rights
    )
    return PropertyPage(items, ids[-1] if more else None)


async def cached_properties(
    *,
    person_id: int,
    filters: PropertyFilters,
    after_id: int | None,
    limit: int,
    kv: KeyValueStore,
    ttl_s: float,
) -> EncodedPropertyPage:
    params = {**asdict(filters), "after": after_id, "limit": limit}
    return await cached_property_list(
        kv=kv,
        person_id=person_id,
        params=params,
        ttl_s=ttl_s,
        load=lambda: list_properties(person_id=person_id, filters=filters, after_id=after_id, limit=limit),
    )


# --- one right -----------------------------------------------------------------------------------


async def property_detail(*, person_id: int, right_id: int) -> PropertyRecord:
    """The full record of a right the person holds or held; NotFound otherwise (not a refusal,
    so that right ids cannot be probed)."""
    if not await RightHolder.exists(person_id=person_id, right_id=right_id):
        raise NotFound(right_id=right_id)
    right = await Right.get(id=right_id).select_related("unit")
    unit: RealEstateUnit = right.unit
    earlier = (
        await Right.filter(unit_id=unit.id)
        .filter(
            Q(registered_at__lt=right.registered_at) | Q(registered_at=right.registered_at, id__lt=right.id)
        )
        .order_by("-registered_at", "-id")
    )
    holders = await _holders_by_right([right.id, *(e.id for e in earlier)])
    every = (await _encumbrances_by_right([right.id], active_only=False)).get(right.id, NO_ENCUMBRANCES)
    cases = (
        await RegistrationCase.filter(unit_id=unit.id)
        .order_by("-applied_at", "-id")
        .values("case_number", "kind", "state", "reason", "applied_at", "updated_at", "right_id")
    )
    in_progress = any(c["state"] in OPEN_CASE_STATES for c in cases)
    history = History(
        earlier_rights=tuple(
            EarlierRight(
                right_type=e.right_type,
                status=e.status,
                registered_at=e.registered_at.astimezone(SHANGHAI),
                ended_at=_local(e.ended_at),
                holders=tuple(_holder_name(h)[1] for h in holders[e.id]),
            )
            for e in earlier
        ),
        cases=tuple(
            CaseView(
                case_number=c["case_number"],
                kind=c["kind"],
                state=c["state"],
                in_progress=c["state"] in OPEN_CASE_STATES,
                reason=c["reason"],
                applied_at=c["applied_at"].astimezone(SHANGHAI),
                updated_at=c["updated_at"].astimezone(SHANGHAI),
            )
            for c in cases
        ),
    )
    return PropertyRecord(
        **_item_fields(right, unit, person_id, holders[right.id], _active(every), in_progress),
        encumbrance_history=every,
        history=history,
    )
