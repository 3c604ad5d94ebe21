"""The inbound Idempotency-Key store (IETF draft-ietf-httpapi-idempotency-key-header).

Invariant: for one scope (the caller) and key, the operation runs at most once while the row
lives, and every later request with the same fingerprint gets the first answer. Threat covered:
a client (or a proxy) that retries a write after a lost response or a timeout, also many times
at once. Not covered: the window between the operation's commit and `finish` (a process killed
there leaves the row `running`; it is replaced after `stale_after_s`, so a retry then runs
again), and a caller that sends a new key for the same intent.

Exactly one request wins, by the database and not by a read in Python:
1. INSERT the row in state `new`, ON CONFLICT (scope, key) DO NOTHING (`bulk_create(...,
   ignore_conflicts=True)`, as the outbox's enqueue); a concurrent inserter waits for the first
   one's commit (PostgreSQL) or for the one SQLite writer;
2. claim it: UPDATE ... SET status = 'running' WHERE scope, key, fingerprint match AND status =
   'new'. Of any number of requests exactly one sees one affected row, and only that one runs;
3. the others read the row and decide: another fingerprint -> `IdempotencyKeyReused` (422);
   `done` -> replay the stored answer; `running` -> `IdempotencyKeyInFlight` (409).
An expired row (or a `running` one older than `stale_after_s`, its process is gone) is deleted
by a conditional delete that names the row and the condition it was found in, then the loop
inserts afresh; of two requests replacing it, the claim again picks one.

`finish` and `abandon` are conditional on the row's id and on `running`: a request whose row was
replaced meanwhile changes nothing. A 4xx answer (a domain refusal) is stored and replayed like
a success, as the draft asks; an unexpected error or a 5xx is `abandon`ed, so a retry runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.clock import Clock
from services.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from services.idempotency.models import DONE, NEW, RUNNING, IdempotencyRecord

logger = logging.getLogger("services.idempotency")

_FIELDS = IdempotencyRecord._meta.fields_map
SCOPE_MAX: int = _FIELDS["scope"].max_length  # type: ignore[attr-defined]
KEY_MAX: int = _FIELDS["key"].max_length  # type: ignore[attr-defined]
FINGERPRINT_LENGTH = 64  # SHA-256, hex
_ROUNDS = 5  # a round is lost only to a concurrent replacement or abandon; a few are plenty


@dataclass(frozen=True)
class StoredResponse:
    """The first answer, as replayed: status, body bytes, the headers worth repeating."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Begun:
    """The outcome of `begin`: run the operation (`replay` is None; this request holds `record`),
    or answer with `replay`."""

    record: IdempotencyRecord
    replay: StoredResponse | None = None

    @property
    def proceed(self) -> bool:
        return self.replay is None


class IdempotencyStore:
    def __init__(self, clock: Clock, ttl_s: float, *, stale_after_s: float = 600.0) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_s)
        # Longer than any request may run (Sanic's response timeout is 60 s): a `running` row
        # this old belongs to a process that died before finish/abandon.
        self.stale_after = timedelta(seconds=stale_after_s)

    def _now(self) -> datetime:
        now = self.clock.now()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now.astimezone(UTC)  # SQLite compares datetimes as text: one offset only

    async def begin(self, scope: str, key: str, fingerprint: str) -> Begun:
        """Claim (scope, key) for this request, or say why not (module docstring).

        Raises `IdempotencyKeyReused` (another fingerprint) or `IdempotencyKeyInFlight`."""
        if not 0 < len(scope) <= SCOPE_MAX or not 0 < len(key) <= KEY_MAX:
            raise ValueError(f"scope must be 1..{SCOPE_MAX} and key 1..{KEY_MAX} characters")
        if len(fingerprint) != FINGERPRINT_LENGTH:
            raise ValueError("fingerprint must be a SHA-256 hex digest")
        for _ in range(_ROUNDS):
            now = self._now()
            await IdempotencyRecord.bulk_create(
                [
                    IdempotencyRecord(
                        scope=scope,
                        key=key,
                        fingerprint=fingerprint,
                        status=NEW,
                        created_at=now,
                        expires_at=now + self.ttl,
                    )
                ],
                ignore_conflicts=True,
            )
            claimed = await IdempotencyRecord.filter(
                scope=scope, key=key, fingerprint=fingerprint, status=NEW, expires_at__gt=now
            ).update(status=RUNNING)
            record = await IdempotencyRecord.get_or_none(scope=scope, key=key)
            if record is None:  # abandoned or purged since: insert again
                continue
            if claimed == 1 and record.status == RUNNING and record.fingerprint == fingerprint:
                return Begun(record)
            if await self._replace_if_dead(record, now):
                continue
            if record.fingerprint != fingerprint:
                raise IdempotencyKeyReused()
            if record.status == DONE:
                return Begun(record, replay=_stored(record))
            if record.status == NEW:  # replaced between our claim and read: claim again
                continue
            raise IdempotencyKeyInFlight()
        raise IdempotencyKeyInFlight()

    async def _replace_if_dead(self, record: IdempotencyRecord, now: datetime) -> bool:
        """Delete an expired row, or an unfinished one past `stale_after`; True if it is gone
        (by us or by a concurrent request). The delete names the condition it was found in."""
        if _aware(record.expires_at) <= now:
            await IdempotencyRecord.filter(id=record.id, expires_at__lte=now).delete()
            return True
        stale_before = now - self.stale_after
        if record.status in (NEW, RUNNING) and _aware(record.created_at) <= stale_before:
            deleted = await IdempotencyRecord.filter(
                id=record.id, status__in=(NEW, RUNNING), created_at__lte=stale_before
            ).delete()
            if deleted:
                logger.warning(
                    "idempotency: a stale running request was replaced",
                    extra={"event": "idempotency_stale_replaced", "record_id": record.id},
                )
            return True
        return False

    async def finish(
        self, record: IdempotencyRecord, status: int, body: bytes, headers: dict[str, str]
    ) -> bool:
        """Store the answer; False if the row is no longer this request's (replaced meanwhile)."""
        updated = await IdempotencyRecord.filter(id=record.id, status=RUNNING).update(
            status=DONE, response_status=status, response_body=body, response_headers=dict(headers)
        )
        return bool(updated == 1)

    async def abandon(self, record: IdempotencyRecord) -> bool:
        """Forget a request that failed unexpectedly or with a 5xx, so that a retry runs."""
        deleted = await IdempotencyRecord.filter(id=record.id, status=RUNNING).delete()
        return bool(deleted == 1)

    async def purge_expired(self, *, batch_size: int = 5000) -> int:
        """Delete rows past `expires_at`, in batches (short statements, no long lock). Expired rows
        are already ignored and replaced by `begin`; this only keeps the table small."""
        now = self._now()
        total = 0
        while True:
            ids = (
                await IdempotencyRecord.filter(expires_at__lte=now)
                .order_by("id")
                .limit(batch_size)
                .values_list("id", flat=True)
            )
            if not ids:
                break
            total += await IdempotencyRecord.filter(id__in=list(ids), expires_at__lte=now).delete()
        if total:
            logger.info(
                "idempotency: %d expired record(s) purged",
                total,
                extra={"event": "idempotency_purge", "count": total},
            )
        return total


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stored(record: IdempotencyRecord) -> StoredResponse:
    body = record.response_body
    return StoredResponse(
        status=int(record.response_status or 0),
        body=bytes(body) if body is not None else b"",
        headers=dict(record.response_headers or {}),
    )
