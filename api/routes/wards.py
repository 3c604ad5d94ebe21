"""Guardians: link a minor (verified by the civil registry) and read the minor's real estate."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import empty, json

from api.fields import IdNumber
from api.guards import requires
from api.openapi import doc
from api.routes.properties import (
    ID_PARAM,
    RIGHTS_CURSOR,
    PropertyPage,
    PropertyQuery,
    PropertyRecord,
    object_id,
    page_out,
    person_id_of,
    services,
)
from api.validation import parse_json, parse_query
from services.guardianship import links as guardianship
from services.guardianship.links import WardView

bp = Blueprint("wards", url_prefix="/api/v1")

WARD_404 = (
    "404 whether the ward is not linked to you, the link is suspended (the civil registry refused "
    "the guardianship), ended (the ward turned 18, or you ended it): ward ids reveal nothing. "
    "Before every read the civil registry's guardianship changes are checked; a link they name is "
    "verified again first. 503 UPSTREAM_UNAVAILABLE when the registry cannot be reached."
)


class WardLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber
    relation: str | None = Field(
        default=None, max_length=32, description="as you describe it; the civil registry's record wins"
    )


class WardList(BaseModel):
    items: list[WardView]


def _request_id(request: Request) -> str | None:
    return getattr(request.ctx, "request_id", None)


@bp.post("/me/wards")
@doc(
    summary="Link a minor I am guardian of (verified with the civil registry)",
    description=(
        "The civil registry verifies the guardianship before anything is stored. 403 "
        "GUARDIANSHIP_NOT_VERIFIED when it does not confirm it, 422 WARD_NOT_MINOR when the ward "
        "is 18 or older, 503 UPSTREAM_UNAVAILABLE when it cannot be reached, 429 after too many "
        "attempts in a day. Linking again renews a suspended link."
    ),
    tag="wards",
    body=WardLinkRequest,
    ok=(201, WardView),
    errors=(403, 429, 503),
)
@requires("citizen")
async def link_ward(request: Request) -> HTTPResponse:
    body = parse_json(request, WardLinkRequest)
    s = services(request)
    ward = await guardianship.link_ward(
        guardian_person_id=await person_id_of(request),
        ward_id_number=body.id_number,
        relation=body.relation,
        vault=s.vault,
        civil_registry=s.integrations.civil_registry,
        limiter=s.limiter,
        clock=s.clock,
        attempts_per_day=s.settings.ward_link_attempts_per_day,
    )
    return json(ward, status=201)


@bp.get("/me/wards")
@doc(
    summary="The minors I have linked, with each link's status",
    description=(
        "The civil registry's guardianship changes are checked first and links they name are "
        "verified again, so a withdrawn guardianship shows `suspended`. When the registry cannot "
        "be reached the last known states are shown."
    ),
    tag="wards",
    ok=(200, WardList),
    errors=(403,),
)
@requires("citizen")
async def list_wards(request: Request) -> HTTPResponse:
    s = services(request)
    items = await guardianship.list_wards(
        guardian_person_id=await person_id_of(request),
        vault=s.vault,
        civil_registry=s.integrations.civil_registry,
        feed=s.guardianship_feed,
        clock=s.clock,
    )
    return json({"items": items})


@bp.delete("/me/wards/<ward_id:int>")
@doc(
    summary="End my link to a minor",
    description=(
        "The link becomes `ended` (reason ENDED_BY_GUARDIAN) and the ward's data is 404 from then "
        "on. Idempotent: 204 again for a link already ended or suspended. 404 for a ward id that "
        "is not yours. Linking the minor again asks the civil registry again."
    ),
    tag="wards",
    path_params={"ward_id": ID_PARAM},
    ok=(204, None),
    errors=(403, 404),
)
@requires("citizen")
async def end_ward_link(request: Request, ward_id: int) -> HTTPResponse:
    await guardianship.end_link(
        guardian_person_id=await person_id_of(request),
        link_id=object_id(ward_id, "ward_id"),
        clock=services(request).clock,
    )
    return empty(status=204)


@bp.get("/me/wards/<ward_id:int>/properties")
@doc(
    summary="A ward's real estate, in the shape of my own list",
    description=WARD_404 + " The ward's other guardians are notified; the read is logged under the ward.",
    tag="wards",
    path_params={"ward_id": ID_PARAM},
    query=PropertyQuery,
    ok=(200, PropertyPage),
    errors=(403, 404, 503),
)
@requires("citizen")
async def ward_properties(request: Request, ward_id: int) -> HTTPResponse:
    query = parse_query(request, PropertyQuery)
    page = await services(request).ward_reads.properties(
        guardian_person_id=await person_id_of(request),
        link_id=object_id(ward_id, "ward_id"),
        page=query.page(),
        request_id=_request_id(request),
    )
    return json(page_out(page, RIGHTS_CURSOR))


@bp.get("/me/wards/<ward_id:int>/properties/<right_id:int>")
@doc(
    summary="One of a ward's rights in full",
    description=WARD_404 + " Also 404 for a right the ward does not hold.",
    tag="wards",
    path_params={"ward_id": ID_PARAM, "right_id": ID_PARAM},
    ok=(200, PropertyRecord),
    errors=(403, 404, 503),
)
@requires("citizen")
async def ward_property(request: Request, ward_id: int, right_id: int) -> HTTPResponse:
    record = await services(request).ward_reads.property(
        guardian_person_id=await person_id_of(request),
        link_id=object_id(ward_id, "ward_id"),
        right_id=object_id(right_id, "right_id"),
        request_id=_request_id(request),
    )
    return json(record)
