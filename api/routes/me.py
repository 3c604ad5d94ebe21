"""The signed-in caller's own profile."""

from __future__ import annotations

from pydantic import BaseModel
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.guards import current_principal, requires
from api.openapi import doc
from services.identity.accounts import profile

bp = Blueprint("me", url_prefix="/api/v1")


class Profile(BaseModel):
    subject: str
    role: str
    name: str | None = None
    id_number: str | None = None
    phone: str | None = None
    username: str | None = None
    office_code: str | None = None
    bank_code: str | None = None
    scopes: list[str] | None = None


@bp.get("/me")
@doc(summary="Who am I (personal data masked)", tag="me", ok=(200, Profile), errors=(403, 404))
@requires("citizen", "clerk", "admin", "bank")
async def me(request: Request) -> HTTPResponse:
    principal = await current_principal(request)
    return json(await profile(principal, vault=request.app.ctx.services.vault))
