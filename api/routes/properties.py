"""我的不动产 and the access log: what I hold, and who read it. Guide: docs/properties.md."""

from __future__ import annotations

import base64
import binascii
import json as jsonlib
from dataclasses import fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.guards import current_principal, requires
from api.openapi import doc
from api.validation import parse_query
from services import audit
from services.audit import AccessLogItem
from services.errors import InvalidCursor, NotFound
from services.registry import PageRequest
from services.registry.models import PropertyItem, PropertyRecord
from services.registry.properties import PropertyFilters

bp = Blueprint("properties", url_prefix="/api/v1")

MAX_ID = 2**63 - 1
ID_PARAM = {"type": "integer", "format": "int64", "minimum": 1}
RIGHTS_CURSOR = "rights"
ACCESS_LOG_CURSOR = "access_log"
MESSAGES_CURSOR = "messages"


# --- opaque cursors (shared by the /me list routes) ----------------------------------------------


def encode_cursor(kind: str, position: int | None) -> str | None:
    """base64url of {"k": list kind, "p": last position}; clients must treat it as opaque."""
    if position is None:
        return None
    raw = jsonlib.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        data = jsonlib.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = data["p"]
        if data["k"] != kind or type(position) is not int or not 0 <= position <= MAX_ID:
            raise ValueError(kind)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidCursor(field="cursor") from None
    return position


def object_id(value: int, name: str) -> int:
    """Ids beyond BIGINT cannot exist; answer them like any other unknown id."""
    if not 1 <= value <= MAX_ID:
        error = NotFound()
        error.fields[name] = value
        raise error
    return value


def services(request: Request) -> Any:
    return request.app.ctx.services


async def person_id_of(request: Request) -> int:
    principal = await current_principal(request)
    if principal.person_id is None:  # a citizen token always names its person
        raise NotFound()
    return int(principal.person_id)


# --- request and response models ----------------------------------------------------------------


class PropertyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district_code: str | None = Field(
        default=None, pattern=r"^[0-9]{6}$", description="GB/T 2260, e.g. 310115"
    )
    right_type: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$", examples=["house_ownership"])
    include_historical: bool = Field(default=False, description="also rights I held before a transfer")
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")
    limit: int = Field(default=20, ge=1, le=100)

    def filters(self) -> PropertyFilters:
        return PropertyFilters(self.district_code, self.right_type, self.include_historical)

    def page(self) -> PageRequest:
        return PageRequest(self.filters(), decode_cursor(RIGHTS_CURSOR, self.cursor), self.limit)


class PropertyPage(BaseModel):
    """The envelope of a property list: the items are the service's PropertyItem."""

    items: list[PropertyItem]
    next_cursor: str | None


class AccessLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    others_only: bool = Field(default=False, description="leave out my own reads")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class AccessLogPage(BaseModel):
    items: list[AccessLogItem]
    next_cursor: str | None


def page_out(page: Any, kind: str, position_key: str = "next_after") -> dict[str, Any]:
    """A service's page (a dataclass) as the response body: its fields in order, the position
    (`position_key`) replaced by the opaque `next_cursor`."""
    body = {f.name: getattr(page, f.name) for f in fields(page) if f.name != position_key}
    body["next_cursor"] = encode_cursor(kind, getattr(page, position_key))
    return body


# --- routes --------------------------------------------------------------------------------------


@bp.get("/me/properties")
@doc(
    summary="My real estate: every right I hold, in all 16 districts",
    description="Ordered by right id; pass `next_cursor` back as `cursor` for the next page. Each read is "
    "written to the access log.",
    tag="properties",
    query=PropertyQuery,
    ok=(200, PropertyPage),
    errors=(403,),
)
@requires("citizen")
async def my_properties(request: Request) -> HTTPResponse:
    query = parse_query(request, PropertyQuery)
    page = await services(request).property_reads.own_list(
        person_id=await person_id_of(request),
        page=query.page(),
        request_id=getattr(request.ctx, "request_id", None),
    )
    return json(page_out(page, RIGHTS_CURSOR))


@bp.get("/me/properties/<right_id:int>")
@doc(
    summary="One of my rights in full, with its registration history",
    description="404 for a right you do not hold (or never held), exactly as for one that does not exist.",
    tag="properties",
    path_params={"right_id": ID_PARAM},
    ok=(200, PropertyRecord),
    errors=(403, 404),
)
@requires("citizen")
async def my_property(request: Request, right_id: int) -> HTTPResponse:
    record = await services(request).property_reads.own_detail(
        person_id=await person_id_of(request),
        right_id=object_id(right_id, "right_id"),
        request_id=getattr(request.ctx, "request_id", None),
    )
    return json(record)


@bp.get("/me/access-log")
@doc(
    summary="Who read my property data, newest first",
    description="Reads by me, my guardians (also those made while I was a minor), clerks and banks.",
    tag="properties",
    query=AccessLogQuery,
    ok=(200, AccessLogPage),
    errors=(403,),
)
@requires("citizen")
async def my_access_log(request: Request) -> HTTPResponse:
    query = parse_query(request, AccessLogQuery)
    page = await audit.access_log_for(
        person_id=await person_id_of(request),
        before_seq=decode_cursor(ACCESS_LOG_CURSOR, query.cursor),
        limit=query.limit,
        others_only=query.others_only,
    )
    return json(page_out(page, ACCESS_LOG_CURSOR, "next_before"))
