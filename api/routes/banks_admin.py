"""Administrators onboard banks at run time (issue 14): register a bank, issue or rotate its client
credentials (the secret is shown once), suspend and reinstate it, choose the MAC its callbacks are
signed with. The `participating_bank` rows are the one source of truth; config/banks.toml only
seeds the demo."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.fields import CreditCode
from api.guards import requires
from api.openapi import doc
from api.routes.properties import services
from api.validation import parse_json
from services.filings import BankRegistration
from services.filings.views import BankView, CallbackMac, Credentials

bp = Blueprint("banks_admin", url_prefix="/api/v1/admin/banks")

_NO_STORE = {"Cache-Control": "no-store"}
_TEXT = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
_CODE_PARAM = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,31}$"}
FilingTypeName = Literal["create", "change", "cancel"]
_MAC_DESCRIPTION = (
    "the MAC the bank verifies our callbacks with (hmac-sha256 or hmac-sm3); "
    "null: the cryptography profile's (HMAC-SHA256 international, HMAC-SM3 national)"
)


class BankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$", examples=["cmb-sh"])
    name: str = Field(min_length=1, max_length=128, pattern=_TEXT)
    credit_code: CreditCode
    branches: list[str] = Field(default_factory=list, max_length=200)
    filing_types: list[FilingTypeName] = Field(default=["create", "change", "cancel"], min_length=1)
    daily_quota: int = Field(default=1000, ge=1, le=1_000_000)
    callback_url: str = Field(max_length=512, description="https URL of the bank's receiver")
    callback_secret: str = Field(
        min_length=16, max_length=256, description="agreed with the bank; never shown again"
    )
    adapter: Literal["signed-json-v1", "signed-json-v2"] = "signed-json-v2"
    callback_mac: CallbackMac | None = Field(default=None, description=_MAC_DESCRIPTION)


class BankChange(BaseModel):
    """The fields an administrator may change after registration; a field left out is kept."""

    model_config = ConfigDict(extra="forbid")

    callback_mac: CallbackMac | None = Field(default=None, description=_MAC_DESCRIPTION)


class BankList(BaseModel):
    items: list[BankView]


@bp.post("")
@doc(
    summary="Register a participating bank",
    tag="admin",
    body=BankIn,
    ok=(201, BankView),
    errors=(403, 409, 422),
)
@requires("admin")
async def register_bank(request: Request) -> HTTPResponse:
    body = parse_json(request, BankIn)
    view = await services(request).banks.register(
        BankRegistration(
            code=body.code,
            name=body.name.strip(),
            credit_code=body.credit_code,
            callback_url=body.callback_url,
            callback_secret=body.callback_secret,
            branches=tuple(b.strip() for b in body.branches if b.strip()),
            filing_types=tuple(body.filing_types),
            daily_quota=body.daily_quota,
            adapter=body.adapter,
            callback_mac=body.callback_mac,
        )
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("")
@doc(summary="The participating banks", tag="admin", ok=(200, BankList), errors=(403,))
@requires("admin")
async def list_banks(request: Request) -> HTTPResponse:
    return json({"items": await services(request).banks.list()}, headers=_NO_STORE)


@bp.get("/<code:str>")
@doc(
    summary="One participating bank",
    tag="admin",
    path_params={"code": _CODE_PARAM},
    ok=(200, BankView),
    errors=(403, 404),
)
@requires("admin")
async def get_bank(request: Request, code: str) -> HTTPResponse:
    return json(await services(request).banks.view(code), headers=_NO_STORE)


@bp.patch("/<code:str>")
@doc(
    summary="Change a participating bank: the MAC of its callbacks",
    description="Takes effect on the bank's next callback, retries of earlier ones included.",
    tag="admin",
    path_params={"code": _CODE_PARAM},
    body=BankChange,
    ok=(200, BankView),
    errors=(403, 404, 422),
)
@requires("admin")
async def change_bank(request: Request, code: str) -> HTTPResponse:
    body = parse_json(request, BankChange)
    banks = services(request).banks
    if "callback_mac" in body.model_fields_set:
        return json(await banks.set_callback_mac(code, body.callback_mac), headers=_NO_STORE)
    return json(await banks.view(code), headers=_NO_STORE)


@bp.post("/<code:str>/credentials")
@doc(
    summary="Issue the bank's client credentials, or rotate its secret; the secret is shown only here",
    tag="admin",
    path_params={"code": _CODE_PARAM},
    ok=(201, Credentials),
    errors=(403, 404),
)
@requires("admin")
async def issue_credentials(request: Request, code: str) -> HTTPResponse:
    return json(await services(request).banks.issue_credentials(code), status=201, headers=_NO_STORE)


@bp.post("/<code:str>/suspension")
@doc(
    summary="Suspend the bank: refused from its next request on, whatever tokens it holds",
    tag="admin",
    path_params={"code": _CODE_PARAM},
    ok=(200, BankView),
    errors=(403, 404),
)
@requires("admin")
async def suspend(request: Request, code: str) -> HTTPResponse:
    return json(await services(request).banks.set_status(code, "suspended"), headers=_NO_STORE)


@bp.delete("/<code:str>/suspension")
@doc(
    summary="Reinstate a suspended bank",
    tag="admin",
    path_params={"code": _CODE_PARAM},
    ok=(200, BankView),
    errors=(403, 404),
)
@requires("admin")
async def reinstate(request: Request, code: str) -> HTTPResponse:
    return json(await services(request).banks.set_status(code, "active"), headers=_NO_STORE)
