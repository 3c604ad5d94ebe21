"""The in-app inbox: messages written in the transaction of the change they report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field
from tortoise.backends.base.client import BaseDBAsyncClient

from services.clock import SHANGHAI, Clock
from services.errors import NotFound
from services.messages.models import InboxMessage

PROPERTY_CHANGE = "property_change"
GUARDIAN_QUERY = "guardian_query"


async def post_message(
    *,
    person_id: int,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any],
    clock: Clock,
    connection: BaseDBAsyncClient | None = None,
) -> InboxMessage:
    return await InboxMessage.create(
        person_id=person_id,
        kind=kind,
        title=title[:100],
        body=body,
        data=data,
        created_at=clock.now(),
        using_db=connection,
    )


@dataclass(frozen=True, slots=True)
class MessageView:
    message_id: int
    kind: Annotated[str, Field(examples=[PROPERTY_CHANGE], description="property_change | guardian_query")]
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read: bool
    read_at: datetime | None


@dataclass(frozen=True, slots=True)
class InboxPage:
    """`next_before` is the last message id of the page when older messages follow."""

    items: tuple[MessageView, ...]
    unread_count: Annotated[int, Field(description="in the whole inbox, not only this page")]
    next_before: int | None


def _view(message: InboxMessage) -> MessageView:
    return MessageView(
        message_id=message.id,
        kind=message.kind,
        title=message.title,
        body=message.body,
        data=message.data,
        created_at=message.created_at.astimezone(SHANGHAI),
        read=message.read_at is not None,
        read_at=message.read_at.astimezone(SHANGHAI) if message.read_at else None,
    )


async def inbox(*, person_id: int, before_id: int | None, limit: int, unread_only: bool = False) -> InboxPage:
    """Newest first; the unread count covers the whole inbox, not the page."""
    query = InboxMessage.filter(person_id=person_id)
    if unread_only:
        query = query.filter(read_at__isnull=True)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    rows = await query.order_by("-id").limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    unread = await InboxMessage.filter(person_id=person_id, read_at__isnull=True).count()
    return InboxPage(
        items=tuple(_view(m) for m in rows),
        unread_count=unread,
        next_before=rows[-1].id if more and rows else None,
    )


async def mark_read(*, person_id: int, message_id: int, clock: Clock) -> MessageView:
    """Idempotent: the first read time stays. Someone else's message is NotFound."""
    await InboxMessage.filter(id=message_id, person_id=person_id, read_at__isnull=True).update(
        read_at=clock.now()
    )
    message = await InboxMessage.get_or_none(id=message_id, person_id=person_id)
    if message is None:
        raise NotFound(message_id=message_id)
    return _view(message)
