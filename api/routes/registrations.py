"""First registration and cancellation registration (issue 13): organisations (a developer's staff
signed in with a password, or its own system with client credentials and scopes) apply for the
first registration of a building's units and for cancellations and follow their cases and rights;
citizens apply for cancellations of rights they hold and follow them. Clerks move these cases with
the routes of api/routes/cases.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.fields import CreditCode, UnitNumber
from api.guards import current_principal, requires
from api.idempotency import idempotent
from api.openapi import doc
from api.routes.cases import _TEXT, CaseList
from api.routes.properties import ID_PARAM, object_id, person_id_of, services
from api.validation import parse_json, parse_query
from services.cases import (
    CancellationApplication,
    CaseView,
    FirstRegistrationApplication,
    OrganisationRight,
    UnitInput,
)
from services.errors import NotFound
from services.registry.organisations import OrganisationView, add_organisation

bp = Blueprint("registrations", url_prefix="/api/v1")

_NO_STORE = {"Cache-Control": "no-store"}
APPLY_SCOPE = "registration:apply"  # an organisation's client: apply for registrations
READ_SCOPE = "registration:read"  # an organisation's client: follow its cases and rights
UnitUse = Literal["residential", "commercial", "office", "industrial", "parking"]
CancellationReason = Literal["demolished", "lost", "given_up"]
DocumentRef = Annotated[
    str, Field(min_length=1, max_length=64, pattern=_TEXT, examples=["浦东征收〔2026〕12号"])
]


class BuildingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(
        pattern=r"^[0-9]{4}$", description="幢号, as in the units' numbers", examples=["0003"]
    )
    address: str = Field(
        min_length=1, max_length=160, pattern=_TEXT, examples=["上海市浦东新区锦绣路1888弄3号"]
    )


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_number: UnitNumber
    area_m2: Decimal = Field(
        gt=0, max_digits=10, decimal_places=2, description="m2, as decimal text", examples=["89.50"]
    )
    use: UnitUse
    address: str = Field(
        min_length=1, max_length=200, pattern=_TEXT, examples=["上海市浦东新区锦绣路1888弄3号1202室"]
    )


class FirstRegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parcel_unit_number: UnitNumber = Field(
        description="the parcel's unit (fixture W00000000) whose land-use right your organisation holds"
    )
    building: BuildingIn
    units: list[UnitIn] = Field(min_length=1, max_length=500)
    office_code: str | None = Field(default=None, min_length=1, max_length=16, pattern=r"^[A-Z0-9-]+$")


class CancellationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    right_id: int = Field(ge=1, le=2**63 - 1, description="a right you hold")
    reason: CancellationReason = Field(description="demolished (拆除灭失) | lost (灭失) | given_up (放弃)")
    supporting_refs: list[DocumentRef] = Field(
        min_length=1,
        max_length=10,
        description="references of the supporting documents (demolition notice, ...)",
    )
    mortgagee_consent_ref: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=_TEXT, description="required when mortgaged"
    )
    office_code: str | None = Field(default=None, min_length=1, max_length=16, pattern=r"^[A-Z0-9-]+$")

    def application(
        self, *, person_id: int | None = None, organisation_id: int | None = None, actor_id: str = ""
    ) -> CancellationApplication:
        return CancellationApplication(
            right_id=self.right_id,
            reason=self.reason,
            supporting_refs=tuple(r.strip() for r in self.supporting_refs),
            person_id=person_id,
            organisation_id=organisation_id,
            actor_id=actor_id,
            mortgagee_consent_ref=self.mortgagee_consent_ref,
            office_code=self.office_code,
        )


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=_TEXT, examples=["上海锦绣置业有限公司"])
    credit_code: CreditCode
    kind: Literal["developer", "company", "authority"] = Field(description="developer: 房地产开发企业")


class RightsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_historical: bool = False


class OrganisationRights(BaseModel):
    items: list[OrganisationRight]


async def _organisation(request: Request) -> tuple[int, str]:
    """The organisation the caller acts for, and who they are (`staff:<id>`, `client:<id>`)."""
    principal = await current_principal(request)
    if principal.organisation_id is None:  # an organisation's token always names it
        raise NotFound()
    return int(principal.organisation_id), principal.subject


# --- organisations --------------------------------------------------------------------------------


@bp.post("/org/first-registrations")
@doc(
    summary="Apply for the first registration (首次登记) of a building's units",
    description=(
        "Your organisation holds the parcel's land-use right (`PARCEL_NOT_HELD`, 404, otherwise); every "
        "unit is a house (`F`) of that parcel and building with a valid GB/T 37346 number "
        "(`INVALID_UNIT_NUMBER`, 422, naming the field); none is in the register yet "
        "(`UNITS_ALREADY_REGISTERED`); one open application per building (`FIRST_REGISTRATION_IN_PROGRESS`). "
        "The tax bureau's clearance of the project is asked afterwards: a clerk accepts only once it is "
        "cleared (`TAX_CLEARANCE_PENDING`, `TAX_CLEARANCE_REFUSED`). Send an `Idempotency-Key`."
    ),
    tag="organisations",
    body=FirstRegistrationIn,
    ok=(201, CaseView),
    errors=(403, 404, 409, 422, 503),
)
@requires("organisation", scope=APPLY_SCOPE)
@idempotent()
async def apply_first_registration(request: Request) -> HTTPResponse:
    body = parse_json(request, FirstRegistrationIn)
    organisation_id, actor = await _organisation(request)
    view = await services(request).cases.open_first_registration(
        FirstRegistrationApplication(
            organisation_id=organisation_id,
            actor_id=actor,
            parcel_unit_number=body.parcel_unit_number,
            building_number=body.building.number,
            building_address=body.building.address,
            units=tuple(UnitInput(u.unit_number, u.area_m2, u.use, u.address) for u in body.units),
            office_code=body.office_code,
        )
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.post("/org/cancellations")
@doc(
    summary="Apply for the cancellation registration (注销登记) of a right your organisation holds",
    description=(
        "`RIGHT_NOT_HELD` (404) for a right your organisation does not hold; `RIGHT_SEIZED`; "
        "`MORTGAGEE_CONSENT_REQUIRED` when mortgaged without `mortgagee_consent_ref`; `CASE_IN_PROGRESS`. "
        "Tax clearance is asked afterwards, as for a first registration. Send an `Idempotency-Key`."
    ),
    tag="organisations",
    body=CancellationIn,
    ok=(201, CaseView),
    errors=(403, 404, 409, 422, 503),
)
@requires("organisation", scope=APPLY_SCOPE)
@idempotent()
async def apply_org_cancellation(request: Request) -> HTTPResponse:
    body = parse_json(request, CancellationIn)
    organisation_id, actor = await _organisation(request)
    view = await services(request).cases.open_cancellation(
        body.application(organisation_id=organisation_id, actor_id=actor)
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/org/cases")
@doc(
    summary="Your organisation's cases, newest first", tag="organisations", ok=(200, CaseList), errors=(403,)
)
@requires("organisation", scope=READ_SCOPE)
async def org_cases(request: Request) -> HTTPResponse:
    organisation_id, _ = await _organisation(request)
    items = await services(request).cases.list_for_organisation(organisation_id=organisation_id)
    return json({"items": items}, headers=_NO_STORE)


@bp.get("/org/cases/<case_id:int>")
@doc(
    summary="A case your organisation is a party to: state, tax side, events, what was registered",
    description="404 for a case your organisation is not a party to.",
    tag="organisations",
    path_params={"case_id": ID_PARAM},
    ok=(200, CaseView),
    errors=(403, 404),
)
@requires("organisation", scope=READ_SCOPE)
async def org_case(request: Request, case_id: int) -> HTTPResponse:
    organisation_id, _ = await _organisation(request)
    view = await services(request).cases.for_organisation(
        case_id=object_id(case_id, "case_id"), organisation_id=organisation_id
    )
    return json(view, headers=_NO_STORE)


@bp.get("/org/properties")
@doc(
    summary="The rights your organisation holds (a developer's units once first-registered)",
    tag="organisations",
    query=RightsQuery,
    ok=(200, OrganisationRights),
    errors=(403, 422),
)
@requires("organisation", scope=READ_SCOPE)
async def org_properties(request: Request) -> HTTPResponse:
    query = parse_query(request, RightsQuery)
    organisation_id, _ = await _organisation(request)
    items = await services(request).cases.organisation_rights(
        organisation_id=organisation_id, include_historical=query.include_historical
    )
    return json({"items": items}, headers=_NO_STORE)


# --- administrators -------------------------------------------------------------------------------


@bp.post("/admin/organisations")
@doc(
    summary="Put an organisation (e.g. a developer) on record by its unified social credit code",
    description=(
        "The credit code is checked (GB 32100 and its embedded GB 11714 organisation code): "
        "`INVALID_CREDIT_CODE` (422, naming the field). `ORGANISATION_EXISTS` (409) for a code on record."
    ),
    tag="admin",
    body=OrganisationIn,
    ok=(201, OrganisationView),
    errors=(403, 409, 422),
)
@requires("admin")
async def add_organisation_route(request: Request) -> HTTPResponse:
    body = parse_json(request, OrganisationIn)
    view = await add_organisation(name=body.name, credit_code=body.credit_code, kind=body.kind)
    return json(view, status=201)


# --- citizens -------------------------------------------------------------------------------------


@bp.post("/me/cancellations")
@doc(
    summary="Apply for the cancellation registration (注销登记) of a right you hold",
    description=(
        "Every holder of the right is a party and is told. `RIGHT_NOT_HELD` (404) for a right you do not "
        "hold; `RIGHT_SEIZED`; `MORTGAGEE_CONSENT_REQUIRED` when mortgaged without "
        "`mortgagee_consent_ref`; `CASE_IN_PROGRESS`. The tax bureau's clearance is asked afterwards; a "
        "clerk accepts only once cleared. On registration the right shows as historical in 我的不动产 "
        "(`include_historical=true`). Send an `Idempotency-Key`."
    ),
    tag="cases",
    body=CancellationIn,
    ok=(201, CaseView),
    errors=(403, 404, 409, 422, 503),
)
@requires("citizen")
@idempotent()
async def apply_cancellation(request: Request) -> HTTPResponse:
    body = parse_json(request, CancellationIn)
    view = await services(request).cases.open_cancellation(
        body.application(person_id=await person_id_of(request))
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/me/cancellations")
@doc(
    summary="The cancellation cases you are a party to, newest first",
    tag="cases",
    ok=(200, CaseList),
    errors=(403,),
)
@requires("citizen")
async def list_cancellations(request: Request) -> HTTPResponse:
    items = await services(request).cases.list_for_party(
        person_id=await person_id_of(request), kind="cancellation"
    )
    return json({"items": items}, headers=_NO_STORE)


@bp.get("/me/cancellations/<case_id:int>")
@doc(
    summary="A cancellation case you are a party to",
    description="404 for a case you are not a party to.",
    tag="cases",
    path_params={"case_id": ID_PARAM},
    ok=(200, CaseView),
    errors=(403, 404),
)
@requires("citizen")
async def get_cancellation(request: Request, case_id: int) -> HTTPResponse:
    view = await services(request).cases.for_party(
        case_id=object_id(case_id, "case_id"), person_id=await person_id_of(request), kind="cancellation"
    )
    return json(view, headers=_NO_STORE)
