"""Registration cases: the citizen's transfer cases (seller opens, the other parties confirm, both
follow the utilities), the clerks' case list and moves, the administrators' re-drive of a utility
transfer the outbox gave up on."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.fields import IdNumber
from api.guards import current_principal, requires
from api.idempotency import idempotent
from api.openapi import doc
from api.routes.properties import ID_PARAM, object_id, person_id_of, services
from api.validation import parse_json, parse_query
from services.cases import (
    Actor,
    BuyerInput,
    CaseSummary,
    CaseView,
    TransferApplication,
    UtilityChoice,
)

bp = Blueprint("cases", url_prefix="/api/v1")

_NO_STORE = {"Cache-Control": "no-store"}
_TEXT = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
UtilityKindName = Literal["water", "electricity", "gas", "cable_tv"]
CaseState = Literal["applied", "accepted", "not_accepted", "reviewing", "registered", "refused", "issued"]


class BuyerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber
    name: str = Field(min_length=1, max_length=64, pattern=_TEXT, examples=["李四"])
    share: str = Field(
        pattern=r"^(0\.[0-9]{1,6}|1(\.0{1,6})?)$",
        description="the buyer's share as a decimal fraction; the buyers' shares add up to 1",
        examples=["1", "0.5"],
    )


class UtilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: UtilityKindName
    move: StrictBool = Field(default=True, description="false: this utility stays as it is")
    account_no: str | None = Field(
        default=None,
        pattern=r"^\d{6,20}$",
        description="the account at the provider; looked up there by the unit when absent",
    )


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    right_id: int = Field(ge=1, le=2**63 - 1, description="a right you hold (from /me/properties)")
    buyers: list[BuyerIn] = Field(min_length=1, max_length=10)
    price_fen: int = Field(ge=1, le=10**14, description="the price in fen (分)", examples=[350000000])
    contract_number: str = Field(min_length=1, max_length=64, pattern=_TEXT, examples=["HT2026-000123"])
    utilities: list[UtilityIn] = Field(
        default_factory=list,
        max_length=4,
        description="per utility: move it (default) or not, with or without the account number",
    )
    mortgage_handling: Literal["cancel_in_case", "bank_consent"] | None = Field(
        default=None, description="required when the property is mortgaged"
    )
    bank_consent_ref: str | None = Field(default=None, min_length=1, max_length=64, pattern=_TEXT)
    objection_consent_ref: str | None = Field(default=None, min_length=1, max_length=64, pattern=_TEXT)
    office_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        pattern=r"^[A-Z0-9-]+$",
        description="any office in the city",
    )


class CaseList(BaseModel):
    items: list[CaseSummary]


class ClerkCaseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CaseState | None = None
    kind: Literal["transfer", "first", "cancellation", "mortgage", "mortgage_cancel"] | None = None
    before_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="the last case_id of a page")
    limit: int = Field(default=50, ge=1, le=200)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseState
    reason: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=_TEXT, description="required to refuse"
    )


class Redriven(BaseModel):
    redriven: int


# --- citizens ---------------------------------------------------------------------------------------


@bp.post("/me/transfers")
@doc(
    summary="Open a transfer case for a right you hold (with the utility account transfers)",
    description=(
        "Every current holder is a seller; the buyers are named by ID number and confirmed with the "
        "civil registry (`BUYER_NOT_IN_CIVIL_REGISTRY`, `BUYER_IDENTITY_MISMATCH`). Refused when you "
        "do not hold the right (`RIGHT_NOT_HELD`, 404), it is seized (`RIGHT_SEIZED`), an objection "
        "or a mortgage is not dealt with (`OBJECTION_PENDING`, `MORTGAGE_NOT_RESOLVED`) or a transfer "
        "is already open (`TRANSFER_IN_PROGRESS`). The tax declaration is filed with the tax system "
        "afterwards; the other parties confirm from their own accounts. Send an `Idempotency-Key`."
    ),
    tag="cases",
    body=TransferIn,
    ok=(201, CaseView),
    errors=(403, 404, 409, 422, 503),
)
@requires("citizen")
@idempotent()
async def open_transfer(request: Request) -> HTTPResponse:
    body = parse_json(request, TransferIn)
    view = await services(request).cases.open_transfer(
        TransferApplication(
            seller_person_id=await person_id_of(request),
            right_id=body.right_id,
            buyers=tuple(
                BuyerInput(id_number=b.id_number, name=b.name, share=Decimal(b.share)) for b in body.buyers
            ),
            price_fen=body.price_fen,
            contract_number=body.contract_number.strip(),
            utilities=tuple(
                UtilityChoice(kind=u.kind, move=u.move, account_no=u.account_no) for u in body.utilities
            ),
            mortgage_handling=body.mortgage_handling,
            bank_consent_ref=body.bank_consent_ref,
            objection_consent_ref=body.objection_consent_ref,
            office_code=body.office_code,
        )
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/me/transfers")
@doc(
    summary="The transfer cases you are a party to, newest first",
    tag="cases",
    ok=(200, CaseList),
    errors=(403,),
)
@requires("citizen")
async def list_transfers(request: Request) -> HTTPResponse:
    items = await services(request).cases.list_for_party(
        person_id=await person_id_of(request), kind="transfer"
    )
    return json({"items": items}, headers=_NO_STORE)


@bp.get("/me/transfers/<case_id:int>")
@doc(
    summary="A transfer case you are a party to: its state, parties, tax side and each utility",
    description="404 for a case you are not a party to.",
    tag="cases",
    path_params={"case_id": ID_PARAM},
    ok=(200, CaseView),
    errors=(403, 404),
)
@requires("citizen")
async def get_transfer(request: Request, case_id: int) -> HTTPResponse:
    view = await services(request).cases.for_party(
        case_id=object_id(case_id, "case_id"), person_id=await person_id_of(request)
    )
    return json(view, headers=_NO_STORE)


@bp.post("/me/transfers/<case_id:int>/confirm")
@doc(
    summary="Confirm a transfer case from your own account (a buyer, or a co-holder who sells too)",
    description="`NOTHING_TO_CONFIRM` (409) when you have confirmed already or the case has ended.",
    tag="cases",
    path_params={"case_id": ID_PARAM},
    ok=(200, CaseView),
    errors=(403, 404, 409),
)
@requires("citizen")
async def confirm_transfer(request: Request, case_id: int) -> HTTPResponse:
    view = await services(request).cases.confirm(
        case_id=object_id(case_id, "case_id"), person_id=await person_id_of(request)
    )
    return json(view, headers=_NO_STORE)


# --- clerks ---------------------------------------------------------------------------------------


@bp.get("/clerk/cases")
@doc(
    summary="The cases handled at your office, newest first",
    tag="clerk",
    query=ClerkCaseQuery,
    ok=(200, CaseList),
    errors=(403, 422),
)
@requires("clerk")
async def clerk_cases(request: Request) -> HTTPResponse:
    query = parse_query(request, ClerkCaseQuery)
    principal = await current_principal(request)
    items = await services(request).cases.list_for_office(
        office_code=principal.office_code or "",
        state=query.state,
        kind=query.kind,
        limit=query.limit,
        before_id=query.before_id,
    )
    return json({"items": items}, headers=_NO_STORE)


@bp.get("/clerk/cases/<case_id:int>")
@doc(
    summary="A case of your office, with its parties, events and utility transfers",
    description="404 for a case of another office.",
    tag="clerk",
    path_params={"case_id": ID_PARAM},
    ok=(200, CaseView),
    errors=(403, 404),
)
@requires("clerk")
async def clerk_case(request: Request, case_id: int) -> HTTPResponse:
    principal = await current_principal(request)
    view = await services(request).cases.for_clerk(
        case_id=object_id(case_id, "case_id"), office_code=principal.office_code or ""
    )
    return json(view, headers=_NO_STORE)


@bp.post("/clerk/cases/<case_id:int>/moves")
@doc(
    summary="Move a case of your office to its next state (受理, 不予受理, 审核, 登簿, 不予登记, 发证)",
    description=(
        "Refusals need a `reason` (`REASON_REQUIRED`). Accepting a transfer checks the register again "
        "and needs the tax declaration's answer (`TAX_DECLARATION_PENDING`, `TAX_DECLARATION_REJECTED`); "
        "review needs every party's confirmation (`PARTIES_NOT_CONFIRMED`); registering moves the right "
        "and starts the utility transfers, in one transaction. A move not allowed from the case's state, "
        "or made meanwhile by another clerk, is `INVALID_CASE_TRANSITION` (409)."
    ),
    tag="clerk",
    path_params={"case_id": ID_PARAM},
    body=MoveIn,
    ok=(200, CaseView),
    errors=(403, 404, 409, 422),
)
@requires("clerk")
async def move_case(request: Request, case_id: int) -> HTTPResponse:
    body = parse_json(request, MoveIn)
    principal = await current_principal(request)
    view = await services(request).cases.move(
        case_id=object_id(case_id, "case_id"),
        to_state=body.to,
        reason=body.reason,
        actor=Actor(kind="staff", id=principal.subject, office_code=principal.office_code),
    )
    return json(view, headers=_NO_STORE)


# --- administrators -------------------------------------------------------------------------------


@bp.post("/admin/cases/<case_id:int>/utilities/<kind:str>/redrive")
@doc(
    summary="Send a utility transfer the outbox gave up on (needs_attention) again",
    tag="admin",
    path_params={
        "case_id": ID_PARAM,
        "kind": {"type": "string", "enum": ["water", "electricity", "gas", "cable_tv"]},
    },
    ok=(200, Redriven),
    errors=(403, 404),
)
@requires("admin")
async def redrive_utility(request: Request, case_id: int, kind: str) -> HTTPResponse:
    count = await services(request).cases.redrive_utility(case_id=object_id(case_id, "case_id"), kind=kind)
    return json({"redriven": count})
