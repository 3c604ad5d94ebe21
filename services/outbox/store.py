"""The transactional outbox: external calls whose effect must not be lost.

A use case writes an outbox row in the same transaction as its business change (`enqueue`), so
the call is recorded if and only if the change commits. Workers (`services.outbox.worker`) claim
due rows under a time-limited lease, call the topic's handler with the row's idempotency key and
record the outcome. Delivery is at least once; the receiving system dedupes on the key, so the
effect happens once.

Every state change after a claim is a conditional update on the claim (lease owner and attempt
number): a worker whose lease expired and was taken over cannot overwrite the newer outcome.
See docs/outbox.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count

from services.clock import Clock, SystemClock
from services.db import dialect
from services.outbox.handlers import require_handler
from services.outbox.models import OutboxMessage
from services.outbox.topics import PayloadError, Topic, decode, encode

logger = logging.getLogger("services.outbox.store")

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

P = TypeVar("P")

_KEY_MAX = OutboxMessage._meta.fields_map["idempotency_key"].max_length  # type: ignore[attr-defined]
_ERROR_MAX = 4000


class OutboxKeyConflict(ValueError):
    """The idempotency key is already used by a message with another topic or payload: a bug."""


@dataclass(frozen=True)
class Claim:
    """A message this worker holds the lease on; `attempts` counts this attempt."""

    id: int
    topic: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    lease_owner: str


# --- enqueue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing(Generic[P]):
    """One call to record with `enqueue_many`; the fields are `enqueue`'s."""

    topic: Topic[P]
    payload: P
    idempotency_key: str
    after: int | None = None
    not_before: datetime | None = None


async def enqueue(
    *,
    topic: Topic[P],
    payload: P,
    idempotency_key: str,
    connection: BaseDBAsyncClient | None = None,
    clock: Clock,
    after: int | None = None,
    not_before: datetime | None = None,
) -> OutboxMessage:
    """Record a call in the caller's transaction (`connection`); a repeated key returns the existing row.

    `after` names an outbox message this one depends on: it is not claimed before that one is
    delivered (a revocation needs the licence id its filing returns). Dead predecessors hold
    their dependents back until redriven; purged ones were delivered.

    Refused before anything is written: a topic no handler is registered for in this process
    (`TopicWithoutHandler`, see services/outbox/handlers.py) and a payload that is not the topic's
    dataclass (`PayloadError`).

    Uniqueness is the database's: INSERT ... ON CONFLICT DO NOTHING, then read the row. A
    concurrent transaction inserting the same key makes this one wait for it to commit (then
    the row is found) or roll back (then this insert wins). No exception is raised inside the
    caller's transaction, so on PostgreSQL it stays usable.
    """
    outgoing = Outgoing(topic, payload, idempotency_key, after=after, not_before=not_before)
    (message,) = await enqueue_many([outgoing], connection=connection, clock=clock)
    return message


async def enqueue_many(
    messages: Sequence[Outgoing[Any]], *, connection: BaseDBAsyncClient | None = None, clock: Clock
) -> list[OutboxMessage]:
    """`enqueue` for several calls of one change in two statements (one INSERT, one SELECT), not
    two each; the rows in the order given. Keys must differ within one call."""
    keys = [m.idempotency_key for m in messages]
    if len(set(keys)) != len(keys):
        raise ValueError("enqueue_many: each message needs its own idempotency key")
    now = _utc(clock.now())
    rows = []
    for m in messages:
        _check(m)
        rows.append(
            OutboxMessage(
                topic=m.topic.name,
                payload=encode(m.payload),
                idempotency_key=m.idempotency_key,
                status=PENDING,
                attempts=0,
                next_attempt_at=max(now, _utc(m.not_before)) if m.not_before is not None else now,
                created_at=now,
                after_id=m.after,
            )
        )
    if not rows:
        return []
    await OutboxMessage.bulk_create(rows, ignore_conflicts=True, using_db=connection)
    stored = {
        row.idempotency_key: row
        for row in await OutboxMessage.filter(idempotency_key__in=keys).using_db(connection)
    }
    found = []
    for m in messages:
        row = stored[m.idempotency_key]
        if row.topic != m.topic.name or not _same_payload(m.topic, row.payload, m.payload):
            raise OutboxKeyConflict(
                f"idempotency key {m.idempotency_key!r} is already used by outbox message {row.id} "
                f"({row.topic}) with another payload"
            )
        found.append(row)
    return found


def _check(message: Outgoing[Any]) -> None:
    topic, payload, key = message.topic, message.payload, message.idempotency_key
    if not isinstance(topic, Topic):
        raise TypeError(f"topic must be a declared Topic, not {type(topic).__name__}")
    require_handler(topic)
    if not key or len(key) > _KEY_MAX:
        raise ValueError(f"idempotency_key must be 1..{_KEY_MAX} characters")
    if type(payload) is not topic.payload:
        wanted, given = topic.payload.__qualname__, type(payload).__qualname__
        raise PayloadError(f"{topic.name}: the payload must be a {wanted}, not {given}")


def _same_payload(topic: Topic[P], stored: Any, payload: P) -> bool:
    """Compared as dataclasses, so a row written in an older JSON form of the same payload
    (say, before a defaulted field was added) is the same message, not a conflict."""
    try:
        return decode(topic, _json(stored)) == payload
    except (PayloadError, TypeError):
        return False


# --- claiming --------------------------------------------------------------------------------------

# One statement: pick due, unleased rows, skip those another worker is claiming right now, and
# take the lease. Values are parameters; the status literal is a constant of this module.
_PG_CLAIM = """
UPDATE outbox_message
   SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
 WHERE id IN (
        SELECT m.id FROM outbox_message m
         WHERE m.status = 'pending'
           AND m.next_attempt_at <= $3
           AND (m.lease_until IS NULL OR m.lease_until < $3)
           AND (m.after_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox_message p WHERE p.id = m.after_id AND p.status <> 'delivered'))
         ORDER BY m.id
         LIMIT $4
           FOR UPDATE OF m SKIP LOCKED)
RETURNING id, topic, payload, idempotency_key, attempts
"""


def _due(now: datetime) -> Q:
    undelivered = Subquery(OutboxMessage.filter(status__not=DELIVERED).values("id"))
    return (
        Q(status=PENDING, next_attempt_at__lte=now)
        & (Q(lease_until=None) | Q(lease_until__lt=now))
        & (Q(after_id=None) | ~Q(after_id__in=undelivered))
    )


async def claim_batch(*, worker_id: str, limit: int, lease_s: float, clock: Clock) -> list[Claim]:
    """Lease up to `limit` due messages to `worker_id` for `lease_s` seconds, oldest first."""
    now = _utc(clock.now())
    lease_until = now + timedelta(seconds=lease_s)
    if dialect() == "postgres":
        rows = await connections.get("default").execute_query_dict(
            _PG_CLAIM, [worker_id, lease_until, now, limit]
        )
        claims = [
            Claim(
                id=int(row["id"]),
                topic=str(row["topic"]),
                payload=_json(row["payload"]),
                idempotency_key=str(row["idempotency_key"]),
                attempts=int(row["attempts"]),
                lease_owner=worker_id,
            )
            for row in rows
        ]
        return sorted(claims, key=lambda c: c.id)
    return await _claim_by_conditional_updates(worker_id, limit, now, lease_until)


async def _claim_by_conditional_updates(
    worker_id: str, limit: int, now: datetime, lease_until: datetime
) -> list[Claim]:
    """SQLite has no row locks: read candidates, then take each with an update that re-checks
    the lease, so of two workers racing for a row exactly one sees one affected row. A worker
    that lost some races reads again (a few rounds at most) to fill its batch."""
    won: list[int] = []
    for _ in range(3):
        wanted = limit - len(won)
        candidates = (
            await OutboxMessage.filter(_due(now)).order_by("id").limit(wanted).values_list("id", flat=True)
        )
        lost = False
        for message_id in candidates:
            taken = await OutboxMessage.filter(_due(now), id=message_id).update(
                lease_owner=worker_id, lease_until=lease_until, attempts=F("attempts") + 1
            )
            if taken == 1:
                won.append(int(message_id))  # type: ignore[call-overload]
            else:
                lost = True
        if not lost or len(won) >= limit:
            break
    if not won:
        return []
    rows = await OutboxMessage.filter(id__in=won, lease_owner=worker_id, status=PENDING).order_by("id")
    return [
        Claim(
            id=row.id,
            topic=row.topic,
            payload=row.payload,
            idempotency_key=row.idempotency_key,
            attempts=row.attempts,
            lease_owner=worker_id,
        )
        for row in rows
    ]


def _json(value: Any) -> dict[str, Any]:
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(decoded, dict):
        raise TypeError(f"outbox payload is not a JSON object: {type(decoded).__name__}")
    return decoded


# --- outcomes (each only while the claim is still ours) ---------------------------------------------


def _held(claim: Claim) -> Any:
    return OutboxMessage.filter(
        id=claim.id, status=PENDING, lease_owner=claim.lease_owner, attempts=claim.attempts
    )


async def mark_delivered(claim: Claim, *, result: dict[str, Any] | None, clock: Clock) -> bool:
    """False if the lease was lost (another worker took the message over)."""
    updated = await _held(claim).update(
        status=DELIVERED,
        result=result,
        delivered_at=_utc(clock.now()),
        lease_owner=None,
        lease_until=None,
    )
    return bool(updated == 1)


async def schedule_retry(claim: Claim, *, error: str, next_attempt_at: datetime) -> bool:
    updated = await _held(claim).update(
        next_attempt_at=_utc(next_attempt_at),
        last_error=error[:_ERROR_MAX],
        lease_owner=None,
        lease_until=None,
    )
    return bool(updated == 1)


async def mark_dead(claim: Claim, *, error: str) -> bool:
    updated = await _held(claim).update(
        status=DEAD, last_error=error[:_ERROR_MAX], lease_owner=None, lease_until=None
    )
    return bool(updated == 1)


async def release(claim: Claim) -> bool:
    """Give back a claim that was never attempted (the worker is stopping); the attempt is not counted."""
    updated = await _held(claim).update(lease_owner=None, lease_until=None, attempts=F("attempts") - 1)
    return bool(updated == 1)


# --- operations ------------------------------------------------------------------------------------


async def redrive(
    *, ids: Iterable[int] | None = None, topic: str | None = None, clock: Clock | None = None
) -> int:
    """Send dead messages again (by id and/or topic; neither = every dead message).

    Attempts restart at zero and the message is due now. last_error is kept until the next outcome.
    """
    query = OutboxMessage.filter(status=DEAD)
    if ids is not None:
        id_list = [int(i) for i in ids]
        if not id_list:
            return 0
        query = query.filter(id__in=id_list)
    if topic is not None:
        query = query.filter(topic=topic)
    now = _utc((clock or SystemClock()).now())
    count = await query.update(
        status=PENDING, attempts=0, next_attempt_at=now, lease_owner=None, lease_until=None
    )
    logger.info(
        "outbox: %d dead message(s) re-driven",
        count,
        extra={"event": "outbox_redrive", "count": count, "topic": topic},
    )
    return int(count)


async def purge_delivered(*, older_than_days: float, clock: Clock, batch_size: int = 5000) -> int:
    """Delete messages delivered more than `older_than_days` ago, in batches (short transactions,
    no long lock). Pending and dead messages are never purged.

    A delivered row is also the record that its idempotency key was used: once it is gone, an
    enqueue with the same key sends again. Keep delivered rows longer than anything may retry
    with an old key (the default retention, `ESTATE_OUTBOX_RETENTION_DAYS`, is 90 days).
    """
    if older_than_days < 1:
        raise ValueError("keep delivered messages at least a day: their keys stop repeats")
    cutoff = _utc(clock.now()) - timedelta(days=older_than_days)
    total = 0
    while True:
        ids = (
            await OutboxMessage.filter(status=DELIVERED, delivered_at__lt=cutoff)
            .order_by("id")
            .limit(batch_size)
            .values_list("id", flat=True)
        )
        if not ids:
            break
        total += await OutboxMessage.filter(id__in=list(ids), status=DELIVERED).delete()
    if total:
        logger.info(
            "outbox: %d delivered message(s) purged", total, extra={"event": "outbox_purge", "count": total}
        )
    return total


async def outbox_stats(*, clock: Clock | None = None) -> dict[str, Any]:
    """Counts by status and by topic and status, and the age of the oldest pending message."""
    rows = (
        await OutboxMessage.all()
        .annotate(n=Count("id"))
        .group_by("topic", "status")
        .values_list("topic", "status", "n")
    )
    by_status = dict.fromkeys((PENDING, DELIVERED, DEAD), 0)
    by_topic: dict[str, dict[str, int]] = {}
    for topic, status, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        by_topic.setdefault(topic, {})[status] = int(n)
    oldest = (
        await OutboxMessage.filter(status=PENDING)
        .order_by("created_at")
        .limit(1)
        .values_list("created_at", flat=True)
    )
    now = _utc((clock or SystemClock()).now())
    return {
        "by_status": by_status,
        "by_topic": by_topic,
        "oldest_pending_age_s": (now - oldest[0]).total_seconds() if oldest else None,  # type: ignore[operator]
    }


async def pending_counts() -> dict[str, int]:
    """Pending messages per topic (cheap: uses the status index); feeds the pending gauge."""
    rows = (
        await OutboxMessage.filter(status=PENDING)
        .annotate(n=Count("id"))
        .group_by("topic")
        .values_list("topic", "n")
    )
    return {str(topic): int(n) for topic, n in rows}


def _utc(moment: datetime) -> datetime:
    """Store UTC only: on SQLite datetimes compare as text, which is right only with one offset."""
    if moment.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    return moment.astimezone(UTC)
