"""Opening a case of any kind: `start_case` in a savepoint of the caller's transaction, so the
unique `open_key` decides between two concurrent openings (the loser gets the kind's own
"in progress" error and its transaction carries on), and the holders the opening alerted join the
caller's transaction, whose commit invalidates their cached lists."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError

from services.errors import DomainError
from services.registry.changes import RegisterTransaction, start_case
from services.registry.models import RegistrationCase


async def open_case(tx: RegisterTransaction, *, in_progress: DomainError, **start: Any) -> RegistrationCase:
    """`start` are `start_case`'s arguments without `tx`; `in_progress` is raised when another
    open case holds the same `open_key`."""
    try:
        async with tx.conn._in_transaction() as savepoint:
            opened = RegisterTransaction(savepoint)
            case = await start_case(tx=opened, **start)
    except IntegrityError:
        raise in_progress from None
    tx.alerted |= opened.alerted
    return case
