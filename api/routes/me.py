"""The signed-in caller's own profile."""

from __future__ import annotations

from pydantic import RootModel
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.guards import current_principal, requires
from api.openapi import doc
from services.identity.accounts import CitizenProfile, ClientProfile, StaffProfile, profile

bp = Blueprint("me", url_prefix="/api/v1")


class Profile(RootModel[CitizenProfile | StaffProfile | ClientProfile]):
    """A citizen's, a staff member's (clerk, admin, organisation) or an API client's profile
    (services/identity/accounts.py)."""


@bp.get("/me")
@doc(summary="Who am I (personal data masked)", tag="me", ok=(200, Profile), errors=(403, 404))
@requires("citizen", "clerk", "admin", "bank", "organisation")
async def me(request: Request) -> HTTPResponse:
    principal = await current_principal(request)
    return json(await profile(principal, vault=request.app.ctx.services.vault))
