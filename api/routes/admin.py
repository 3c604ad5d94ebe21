"""Operations for administrators: the outbox's state and re-driving dead messages."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.guards import requires
from api.openapi import doc
from api.validation import parse_json
from services.outbox import store as outbox

bp = Blueprint("admin", url_prefix="/api/v1/admin")


class OutboxStats(BaseModel):
    by_status: dict[str, int]
    by_topic: dict[str, dict[str, int]]
    oldest_pending_age_s: float | None


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(default=None, max_length=1000)
    topic: str | None = Field(default=None, min_length=1, max_length=64)


class RedriveResult(BaseModel):
    redriven: int


@bp.get("/outbox")
@doc(
    summary="Outbox counts by status and topic, oldest pending age",
    tag="admin",
    ok=(200, OutboxStats),
    errors=(403,),
)
@requires("admin")
async def outbox_stats(request: Request) -> HTTPResponse:
    stats: dict[str, Any] = await outbox.outbox_stats(clock=request.app.ctx.services.clock)
    return json(stats, default=str)


@bp.post("/outbox/redrive")
@doc(
    summary="Return dead outbox messages to pending (all, by id, or by topic)",
    tag="admin",
    body=RedriveRequest,
    ok=(200, RedriveResult),
    errors=(403,),
)
@requires("admin")
async def redrive(request: Request) -> HTTPResponse:
    body = parse_json(request, RedriveRequest)
    count = await outbox.redrive(ids=body.ids, topic=body.topic)
    return json({"redriven": count})
