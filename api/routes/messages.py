"""The in-app inbox: property-change alerts and guardian-query notices."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.guards import requires
from api.openapi import doc
from api.routes.properties import (
    ID_PARAM,
    MESSAGES_CURSOR,
    decode_cursor,
    object_id,
    page_out,
    person_id_of,
    services,
)
from api.validation import parse_query
from services.messages import inbox as messages
from services.messages.inbox import MessageView

bp = Blueprint("messages", url_prefix="/api/v1")


class MessageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unread_only: bool = False
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class MessagePage(BaseModel):
    """The envelope of InboxPage: its fields, the position replaced by the cursor."""

    items: list[MessageView]
    unread_count: int = Field(description="in the whole inbox, not only this page")
    next_cursor: str | None


@bp.get("/me/messages")
@doc(
    summary="My in-app messages, newest first",
    tag="messages",
    query=MessageQuery,
    ok=(200, MessagePage),
    errors=(403,),
)
@requires("citizen")
async def list_messages(request: Request) -> HTTPResponse:
    query = parse_query(request, MessageQuery)
    page = await messages.inbox(
        person_id=await person_id_of(request),
        before_id=decode_cursor(MESSAGES_CURSOR, query.cursor),
        limit=query.limit,
        unread_only=query.unread_only,
    )
    return json(page_out(page, MESSAGES_CURSOR, "next_before"))


@bp.post("/me/messages/<message_id:int>/read")
@doc(
    summary="Mark a message read (idempotent)",
    tag="messages",
    path_params={"message_id": ID_PARAM},
    ok=(200, MessageView),
    errors=(403, 404),
)
@requires("citizen")
async def read_message(request: Request, message_id: int) -> HTTPResponse:
    message = await messages.mark_read(
        person_id=await person_id_of(request),
        message_id=object_id(message_id, "message_id"),
        clock=services(request).clock,
    )
    return json(message)
