"""Registration staff at the window: property lookups by ID number, on a recorded ground."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.fields import IdNumber
from api.guards import current_principal, requires
from api.openapi import doc
from api.routes.properties import RIGHTS_CURSOR, PropertyQuery, page_out
from api.validation import parse_json
from services.registry.models import PropertyItem, QuerySubject
from services.registry.reads import CLERK_PURPOSES

bp = Blueprint("clerk", url_prefix="/api/v1/clerk")

Purpose = Literal["holder_request", "interested_party", "authority_request", "case_processing"]
if set(get_args(Purpose)) != set(CLERK_PURPOSES):
    raise RuntimeError("api.routes.clerk.Purpose and services.registry.reads.CLERK_PURPOSES disagree")


class ClerkPropertyQuery(PropertyQuery):
    """The filters and paging of /me/properties, plus whose data and on what ground."""

    id_number: IdNumber
    purpose: Purpose = Field(
        description="; ".join(f"{k}: {v}" for k, v in CLERK_PURPOSES.items()),
    )
    reference: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
        description="the application, case or official letter number the query rests on",
        examples=["查询申请 2026-310115-000123"],
    )


class ClerkPropertyPage(BaseModel):
    subject: QuerySubject
    items: list[PropertyItem]
    next_cursor: str | None


@bp.post("/property-queries")
@doc(
    summary="Look up the real estate registered to a person (registration staff)",
    description=(
        "The ID number travels in the body, never in a URL. The read is written to the person's "
        "access log with the clerk's office, the ground (`purpose`) and the `reference`; for "
        "`authority_request` the person sees the ground but not the reference. A person with no "
        "record gets `in_register: false` and no items; the read is still logged and shown to them "
        "once they are in the register."
    ),
    tag="clerk",
    body=ClerkPropertyQuery,
    ok=(200, ClerkPropertyPage),
    errors=(403, 429),
)
@requires("clerk")
async def property_query(request: Request) -> HTTPResponse:
    body = parse_json(request, ClerkPropertyQuery)
    page = await request.app.ctx.services.property_reads.clerk_lookup(
        principal=await current_principal(request),
        id_number=body.id_number,
        purpose=body.purpose,
        reference=body.reference.strip(),
        page=body.page(),
        request_id=getattr(request.ctx, "request_id", None),
    )
    return json(page_out(page, RIGHTS_CURSOR))
