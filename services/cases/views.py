"""What the case routes return: one view for the parties (masked names of the others) and the clerk
(names in full), built from the rows in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from services.cases.models import UtilityTransferRecord
from services.cases.utilities import dead_keys, shown_state
from services.clock import SHANGHAI
from services.identifiers import mask_name
from services.registry.models import CaseEvent, CaseParty, RegistrationCase, Right

CASE_STATE_NAMES = {
    "applied": "已申请",
    "accepted": "已受理",
    "not_accepted": "不予受理",
    "reviewing": "审核中",
    "registered": "已登簿",
    "refused": "不予登记",
    "issued": "已发证",
}


@dataclass(frozen=True, slots=True)
class PartyView:
    role: Annotated[str, Field(examples=["buyer"], description="seller | buyer | applicant | mortgagor")]
    name: Annotated[str, Field(description="masked (张*) for citizens, except their own; in full for clerks")]
    you: bool
    share: Annotated[str | None, Field(examples=["0.5"])]
    confirmed: bool
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class MeterReadingView:
    value: Annotated[str, Field(examples=["1234.5"])]
    unit: Annotated[str, Field(examples=["m3"])]
    read_at: str


@dataclass(frozen=True, slots=True)
class UtilityView:
    kind: Annotated[str, Field(examples=["water"], description="water | electricity | gas | cable_tv")]
    provider: Annotated[str, Field(examples=["water.pudong"])]
    account_no: Annotated[str | None, Field(description="null until looked up at the provider")]
    state: Annotated[
        str,
        Field(examples=["confirmed"], description="pending | sent | confirmed | refused | needs_attention"),
    ]
    reason: str | None
    final_reading: MeterReadingView | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CaseEventView:
    from_state: str | None
    to_state: str
    by: Annotated[str, Field(description="person | staff | bank | organisation | system")]
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TaxView:
    status: Annotated[
        str | None, Field(description="null until the tax system answered: assessed | paid | rejected")
    ]
    ref: str | None


@dataclass(frozen=True, slots=True)
class CaseView:
    case_id: int
    case_number: Annotated[str, Field(examples=["20263101150000123"])]
    kind: Annotated[str, Field(examples=["transfer"])]
    state: Annotated[str, Field(examples=["applied"])]
    state_name: Annotated[str, Field(examples=["已申请"])]
    reason: str | None
    office_code: str | None
    unit_number: str
    address: str
    details: dict[str, Any]
    tax: TaxView
    certificate_number: str | None
    parties: tuple[PartyView, ...]
    utilities: tuple[UtilityView, ...]
    events: tuple[CaseEventView, ...]
    applied_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CaseSummary:
    case_id: int
    case_number: str
    kind: str
    state: str
    state_name: str
    unit_number: str
    address: str
    applied_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrganisationRight:
    """A right an organisation holds, as its own list shows it (a developer's new units)."""

    right_id: int
    certificate_number: str
    right_type: Annotated[str, Field(examples=["house_ownership"])]
    status: Annotated[str, Field(description="current | historical")]
    unit_number: str
    address: str
    use: str
    area_m2: Annotated[str, Field(examples=["89.50"])]
    registered_at: datetime
    ended_at: datetime | None


def organisation_right(right: Right) -> OrganisationRight:
    return OrganisationRight(
        right_id=right.id,
        certificate_number=right.certificate_number,
        right_type=right.right_type,
        status=right.status,
        unit_number=right.unit.unit_number,
        address=right.unit.address,
        use=right.unit.use,
        area_m2=str(right.unit.area_m2),
        registered_at=_local(right.registered_at),
        ended_at=_local(right.ended_at) if right.ended_at else None,
    )


def _local(moment: datetime) -> datetime:
    return moment.astimezone(SHANGHAI)


def summary(case: RegistrationCase) -> CaseSummary:
    return CaseSummary(
        case_id=case.id,
        case_number=case.case_number,
        kind=case.kind,
        state=case.state,
        state_name=CASE_STATE_NAMES.get(case.state, case.state),
        unit_number=case.unit.unit_number,
        address=case.unit.address,
        applied_at=_local(case.applied_at),
        updated_at=_local(case.updated_at),
    )


async def case_view(case_id: int, *, viewer_person_id: int | None, full_names: bool) -> CaseView:
    case = await RegistrationCase.get(id=case_id).select_related("unit")
    parties = await CaseParty.filter(case_id=case_id).select_related("person", "organisation").order_by("id")
    records = await UtilityTransferRecord.filter(case_id=case_id).order_by("id")
    events = await CaseEvent.filter(case_id=case_id).order_by("id")
    dead = await dead_keys([k for r in records for k in (r.idempotency_key, f"{r.idempotency_key}:check")])

    def party(p: CaseParty) -> PartyView:
        you = viewer_person_id is not None and p.person_id == viewer_person_id  # type: ignore[attr-defined]
        raw = p.person.name if p.person is not None else (p.organisation.name if p.organisation else "")
        name = raw if (full_names or you or p.organisation is not None) else mask_name(raw)
        return PartyView(
            role=p.role,
            name=name,
            you=you,
            share=str(p.share.normalize()) if p.share is not None else None,
            confirmed=p.confirmed_at is not None,
            confirmed_at=_local(p.confirmed_at) if p.confirmed_at else None,
        )

    def utility(r: UtilityTransferRecord) -> UtilityView:
        reading = r.final_reading
        return UtilityView(
            kind=r.kind,
            provider=r.provider,
            account_no=r.account_no or None,
            state=shown_state(r, dead),
            reason=r.reason,
            final_reading=MeterReadingView(**reading) if isinstance(reading, dict) else None,
            updated_at=_local(r.updated_at),
        )

    return CaseView(
        case_id=case.id,
        case_number=case.case_number,
        kind=case.kind,
        state=case.state,
        state_name=CASE_STATE_NAMES.get(case.state, case.state),
        reason=case.reason,
        office_code=case.office_id,  # type: ignore[attr-defined]
        unit_number=case.unit.unit_number,
        address=case.unit.address,
        details=dict(case.details or {}),
        tax=TaxView(status=case.tax_status, ref=case.tax_ref),
        certificate_number=case.certificate_number,
        parties=tuple(party(p) for p in parties),
        utilities=tuple(utility(r) for r in records),
        events=tuple(
            CaseEventView(
                from_state=e.from_state,
                to_state=e.to_state,
                by=e.actor_kind,
                reason=e.reason,
                at=_local(e.at),
            )
            for e in events
        ),
        applied_at=_local(case.applied_at),
        updated_at=_local(case.updated_at),
    )
