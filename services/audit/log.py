"""Who read whose property data: an append-only access log that shows tampering.

Every entry holds the SHA-256 of its own canonical serialisation, and that serialisation includes
the previous entry's hash, so the entries form one chain. Editing a row breaks its own hash,
deleting one leaves a gap in `seq` and a broken link, removing the tail disagrees with the head
row. (Someone who can rewrite the table *and* recompute every later hash and the head is not
detected by the chain alone: a signed checkpoint of the head, published outside the database
with `audit checkpoint --publish FILE`, is what they cannot recompute.)
Before any of that, the database refuses UPDATE and DELETE of entries (triggers of migration
0003): the chain is what catches someone allowed to drop or disable those triggers.

The canonical serialisation (version 1) is UTF-8 JSON with sorted keys, no whitespace, these
fields only: seq, occurred_at (UTC, ISO 8601 with microseconds), reader_subject, reader_role,
reader_display, person_id, person_index, action, object_type, object_id, purpose, request_id,
prev_hash; the hash input is `estate.access_log.v1\\n` followed by that JSON. The first entry's
prev_hash is 64 zeros.

The hash is SHA-256, or SM3 after a profile switch to the national profile (issue 16). The
algorithm of an entry is decided by the chain itself: every entry is hashed with the algorithm
named by the last marker entry before it (action `crypto.hash_switch`, object_id `sm3` or
`sha256`; SHA-256 before the first), and the marker itself with the algorithm it replaces. So the
change is covered by the chain like any entry (editing the marker breaks its hash), `verify`
needs nothing outside the table, and the head row's `hash_algorithm` (what appends use) must
agree with the chain's last marker.

Appends must never fork the chain, whatever the concurrency: the head row (`access_log_head`,
id 1) holds the last seq and hash. On PostgreSQL an append locks it (`SELECT ... FOR UPDATE`),
so appenders queue on one row for a few milliseconds; on SQLite the connection's transaction
lock serialises them within the process. In both, the head moves with a conditional update
(`WHERE last_seq = <what we read>`), so even an unforeseen interleaving makes one append retry
instead of two entries sharing a predecessor. Within a process, reads that arrive together are
group-committed: one transaction, one head lock, many entries.

`seq` is unique. On SQLite a UNIQUE constraint says so too. On PostgreSQL the log is partitioned
by month (services/audit/partitions.py) and a unique constraint must include the partition key,
so the database only holds (seq, occurred_at) unique; what keeps seq itself unique there is the
head: an append inserts seqs last_seq+1 .. last_seq+n only in the transaction whose conditional
update moved the head from exactly last_seq, under the head's row lock, and committed moves never
go back, so two committed appends never hold the same seq. That covers every writer that goes
through this module; a row inserted by hand with a taken seq is not refused, but `verify` reports
it (`duplicate_seq`). The chain runs across partitions unchanged: a partition is storage, not part
of what is hashed.

At city scale (hundreds of millions of entries) a walk from the genesis takes hours, so `verify`
normally starts from a signed checkpoint of an earlier head (services/audit/checkpoints.py) and
walks only what came after it; old months leave only as whole partitions, past the retention and
covered by a checkpoint, which then anchors the first kept entry. Someone with DDL rights can drop
a partition too: a month dropped that no checkpoint covers, or one after the latest checkpoint,
fails `verify` (`unanchored_start`, `missing_entries`); dropping old months a checkpoint covers is
indistinguishable from retention, except that `verify` reports where the kept log starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from services.audit.models import AccessLogEntry, AccessLogHead, AccessLogItem, AccessLogPage
from services.audit.partitions import ensure_months
from services.clock import SHANGHAI, Clock
from services.crypto.models import CryptoIndexAlias
from services.db import dialect
from services.identifiers import mask_name
from services.identity import Principal
from services.identity.models import ApiClient, StaffUser
from services.registry.models import Organisation, Person
from standards.crypto_profile import INTERNATIONAL, NATIONAL, hash_bytes

log = logging.getLogger("estate.audit")

GENESIS_HASH = "0" * 64
HEAD_ID = 1
_HASH_DOMAIN = b"estate.access_log.v1\n"
_APPEND_ATTEMPTS = 5
_MAX_BATCH = 256
SHA256 = "sha256"
SM3 = "sm3"
_PROFILE_OF_HASH = {SHA256: INTERNATIONAL, SM3: NATIONAL}
HASH_SWITCH = "crypto.hash_switch"

# What a read was, in the log's words; the routes for clerks and banks add theirs.
PROPERTY_LIST = "property.list"
PROPERTY_DETAIL = "property.detail"
PURPOSE_SELF = "self_query"
PURPOSE_GUARDIAN = "guardian_query"
# Reads for an authority (a court preparing a seizure, say): the data subject sees that the
# authority read, not the letter it read under; the log itself keeps the reference.
CONFIDENTIAL_REFERENCE_PURPOSES = frozenset({"authority_request"})
SELF_DISPLAY = "本人"


@dataclass(frozen=True)
class Reader:
    subject: str  # the token subject: person:42, staff:7, client:icbc-sh-app
    role: str  # citizen | guardian | clerk | admin | bank
    display: str  # what the data subject is shown: a masked name or an organisation's name


async def reader_for(principal: Principal) -> Reader:
    """The reader as the data subject will see them, for any role (clerk and bank routes use this)."""
    if principal.role == "citizen":
        person = await Person.get_or_none(id=principal.person_id).only("id", "name")
        return Reader(principal.subject, "citizen", mask_name(person.name) if person else "")
    if principal.role in ("clerk", "admin"):
        staff = await StaffUser.get_or_none(id=int(principal.subject.split(":", 1)[1]))
        name = mask_name(staff.display_name) if staff else ""
        office = f"（{staff.office_code}）" if staff and staff.office_code else ""
        return Reader(principal.subject, principal.role, f"登记工作人员 {name}{office}".strip())
    organisation = None
    if principal.organisation_id is not None:
        organisation = await Organisation.get_or_none(id=principal.organisation_id)
    if organisation is None:
        client = await ApiClient.get_or_none(client_id=principal.subject.split(":", 1)[1])
        organisation = await Organisation.get_or_none(id=client.organisation_id) if client else None
    return Reader(principal.subject, principal.role, organisation.name if organisation else principal.subject)


# --- the chain -----------------------------------------------------------------------------------

_LIMITS = {
    f: AccessLogEntry._meta.fields_map[f].max_length  # type: ignore[attr-defined]
    for f in (
        "reader_subject",
        "reader_role",
        "reader_display",
        "person_index",
        "action",
        "object_type",
        "object_id",
        "purpose",
        "request_id",
    )
}


def _fit(name: str, value: str | None) -> str | None:
    return None if value is None else str(value)[: _LIMITS[name]]


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(fields: dict[str, Any]) -> bytes:
    document = {
        "seq": int(fields["seq"]),
        "occurred_at": _utc_text(fields["occurred_at"]),
        "reader_subject": fields["reader_subject"],
        "reader_role": fields["reader_role"],
        "reader_display": fields["reader_display"],
        "person_id": None if fields["person_id"] is None else int(fields["person_id"]),
        "person_index": fields["person_index"],
        "action": fields["action"],
        "object_type": fields["object_type"],
        "object_id": fields["object_id"],
        "purpose": fields["purpose"],
        "request_id": fields["request_id"],
        "prev_hash": fields["prev_hash"],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(fields: dict[str, Any], algorithm: str = SHA256) -> str:
    return hash_bytes(_PROFILE_OF_HASH[algorithm], _HASH_DOMAIN + canonical(fields)).hex()


def hash_algorithm_of(profile: str) -> str:
    return SHA256 if profile == INTERNATIONAL else SM3


class _HeadMoved(Exception):
    """Another append moved the head between our read and our update: retry from the new head."""


async def _locked_head(conn: BaseDBAsyncClient) -> tuple[int, str, str]:
    for _ in range(2):
        if dialect() == "postgres":
            rows = await conn.execute_query_dict(
                "SELECT last_seq, last_hash, hash_algorithm FROM access_log_head WHERE id = $1 FOR UPDATE",
                [HEAD_ID],
            )
        else:
            rows = await conn.execute_query_dict(
                "SELECT last_seq, last_hash, hash_algorithm FROM access_log_head WHERE id = ?", [HEAD_ID]
            )
        if rows:
            return int(rows[0]["last_seq"]), str(rows[0]["last_hash"]), str(rows[0]["hash_algorithm"])
        # First append ever: create the head (a concurrent creator makes this a no-op).
        await AccessLogHead.bulk_create(
            [AccessLogHead(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)],
            ignore_conflicts=True,
            using_db=conn,
        )
    raise RuntimeError("access log head row cannot be created")


async def _append_in(
    conn: BaseDBAsyncClient, batch: list[dict[str, Any]], *, switch_to: str | None = None
) -> list[AccessLogEntry]:
    """Chain `batch` onto the head inside the caller's transaction `conn`. `switch_to`: `batch` is
    one marker entry, hashed with the present algorithm; later entries use `switch_to`."""
    first_seq, last_hash, algorithm = await _locked_head(conn)
    seq, rows = first_seq, []
    for fields in batch:
        seq += 1
        chained = {**fields, "seq": seq, "prev_hash": last_hash}
        last_hash = entry_hash(chained, algorithm)
        rows.append(AccessLogEntry(**chained, hash=last_hash))
    moved = (
        await AccessLogHead.filter(id=HEAD_ID, last_seq=first_seq, hash_algorithm=algorithm)
        .using_db(conn)
        .update(
            last_seq=seq,
            last_hash=last_hash,
            updated_at=batch[-1]["occurred_at"],
            hash_algorithm=switch_to or algorithm,
        )
    )
    if moved != 1:
        raise _HeadMoved()
    await ensure_months(conn, {fields["occurred_at"] for fields in batch})
    await AccessLogEntry.bulk_create(rows, using_db=conn)
    return rows


async def _append(batch: list[dict[str, Any]]) -> list[AccessLogEntry]:
    for attempt in range(1, _APPEND_ATTEMPTS + 1):
        try:
            async with in_transaction() as conn:
                return await _append_in(conn, batch)
        except (_HeadMoved, IntegrityError):
            if attempt == _APPEND_ATTEMPTS:
                raise
            log.info("access log append raced; retrying", extra={"attempt": attempt})
    raise AssertionError("unreachable")


class _GroupCommit:
    """Appends from concurrent requests of one process share a transaction (group commit).

    The chain is one sequence, so every append serialises on the head row: one transaction per
    read would cap the whole read API at one lock holder's round trips. Instead the first caller
    starts a writer task; callers arriving while a batch is being written queue up and go into
    the next batch together. Every caller still waits until its own entry has committed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: list[tuple[dict[str, Any], asyncio.Future[AccessLogEntry]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, fields: dict[str, Any]) -> AccessLogEntry:
        future: asyncio.Future[AccessLogEntry] = self._loop.create_future()
        self._queue.append((fields, future))
        if self._writer is None:
            # A fresh context: the writer must never run inside a caller's transaction.
            self._writer = self._loop.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                try:
                    entries = await _append([fields for fields, _ in batch])
                except Exception as exc:  # every waiting caller fails: their reads are not served
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), entry in zip(batch, entries, strict=True):
                        if not future.done():
                            future.set_result(entry)
        finally:
            self._writer = None


_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = weakref.WeakKeyDictionary()


def _writer() -> _GroupCommit:
    loop = asyncio.get_running_loop()
    writer = _WRITERS.get(loop)
    if writer is None:
        writer = _WRITERS[loop] = _GroupCommit(loop)
    return writer


async def record_access(
    *,
    reader: Reader,
    person_id: int | None,
    action: str,
    object_type: str,
    purpose: str,
    clock: Clock,
    object_id: str | int | None = None,
    person_index: str | None = None,
    request_id: str | None = None,
) -> AccessLogEntry:
    """Append one read to the chain, committed before this returns: a read that cannot be logged
    must not be served, so callers call this before they answer. Called inside a transaction,
    the entry is written in that transaction (and shares its fate); otherwise it is group-committed
    with the process's concurrent reads."""
    if person_id is None and person_index is None:
        raise ValueError("a read is about someone: give person_id or person_index")
    fields: dict[str, Any] = {
        "occurred_at": clock.now().astimezone(UTC),
        "reader_subject": _fit("reader_subject", reader.subject),
        "reader_role": _fit("reader_role", reader.role),
        "reader_display": _fit("reader_display", reader.display),
        "person_id": person_id,
        "person_index": _fit("person_index", person_index),
        "action": _fit("action", action),
        "object_type": _fit("object_type", object_type),
        "object_id": _fit("object_id", None if object_id is None else str(object_id)),
        "purpose": _fit("purpose", purpose),
        "request_id": _fit("request_id", request_id),
    }
    current = connections.get("default")
    if isinstance(current, TransactionalDBClient):
        return (await _append_in(current, [fields]))[0]
    return await _writer().append(fields)


async def append_hash_switch(conn: BaseDBAsyncClient, *, profile: str, occurred_at: datetime) -> bool:
    """Append the marker that moves the chain to `profile`'s hash, in the caller's transaction
    (the profile switch's last one); False if the chain hashes with it already."""
    algorithm = hash_algorithm_of(profile)
    if (await _locked_head(conn))[2] == algorithm:
        return False
    marker = {
        "occurred_at": occurred_at.astimezone(UTC),
        "reader_subject": "system:crypto-profile",
        "reader_role": "system",
        "reader_display": "系统",
        "person_id": None,
        "person_index": None,
        "action": HASH_SWITCH,
        "object_type": "hash_algorithm",
        "object_id": algorithm,
        "purpose": f"crypto_profile_{profile}",
        "request_id": None,
    }
    await _append_in(conn, [marker], switch_to=algorithm)
    return True


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStart:
    """Where a walk starts: right after entry `seq` (0: the genesis), whose hash is `hash` and after
    which entries are hashed with `algorithm` (a trusted checkpoint says all three). `hash` None:
    entries before the first kept one were dropped with their partition, so the first kept entry's
    link and algorithm are taken from the entry itself; a checkpoint later in the walk (`anchors`)
    must then bind them, or the walk fails."""

    seq: int = 0
    hash: str | None = GENESIS_HASH
    algorithm: str | None = SHA256


GENESIS = ChainStart()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    # hash_mismatch | broken_link | missing_entries | duplicate_seq | head_mismatch |
    # unknown_hash_algorithm | checkpoint_mismatch | unanchored_start | and, from
    # services/audit/checkpoints.py, checkpoint_bad_signature | checkpoint_unknown_key
    problem: str | None = None
    head_algorithm: str = SHA256
    start_seq: int = 0  # the walk began after this entry (0: the genesis)
    anchor_seq: int | None = None  # the checkpoint that anchored the walk, if any
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "head_algorithm": self.head_algorithm,
            "start_seq": self.start_seq,
            "anchor_seq": self.anchor_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "detail": self.detail,
        }


async def _page(conn: BaseDBAsyncClient, after: int, until: int, limit: int) -> list[dict[str, Any]]:
    """Entries with `after` < seq <= `until`, in seq order: a keyset page (constant memory)."""
    if dialect() == "postgres":
        return await conn.execute_query_dict(
            "SELECT seq, occurred_at, reader_subject, reader_role, reader_display, person_id, "
            "person_index, action, object_type, object_id, purpose, request_id, prev_hash, hash "
            "FROM access_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            [after, until, limit],
        )
    return list(
        await AccessLogEntry.filter(seq__gt=after, seq__lte=until).order_by("seq").limit(limit).values()
    )


def _algorithm_of(row: dict[str, Any]) -> str | None:
    """The algorithm an entry's stored hash was made with, found by trying each; None if neither."""
    return next((a for a in _PROFILE_OF_HASH if entry_hash(row, a) == row["hash"]), None)


async def verify_chain(
    *,
    start: ChainStart = GENESIS,
    anchors: Mapping[int, tuple[str, str]] | None = None,
    anchor_seq: int | None = None,
    batch_size: int = 5000,
) -> ChainReport:
    """Walk the chain from `start` up to the head as it was when the walk began (appends that
    commit during the walk are left for the next run) and report the first bad entry. `anchors`:
    seq -> (hash, algorithm after it) of trusted checkpoints the walk passes; each must agree.

    Entries are read in keyset pages of `batch_size` by seq, the next page fetched while this one
    is hashed; memory does not grow with the log."""
    anchors = anchors or {}
    head = await AccessLogHead.get_or_none(id=HEAD_ID)
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    head_algorithm = head.hash_algorithm if head else SHA256
    prev_hash, algorithm = start.hash, start.algorithm
    expected_seq, checked, bound = start.seq + 1, 0, start.hash is not None
    conn = connections.get("default")

    def bad(seq: int, problem: str, detail: str | None = None) -> ChainReport:
        return ChainReport(
            False, checked, head_seq, head_hash, seq, problem, head_algorithm, start.seq, anchor_seq, detail
        )

    if start.seq > head_seq:
        return bad(
            start.seq, "checkpoint_mismatch", "the checkpoint is ahead of the head: entries were removed"
        )
    if start.seq > 0 and start.hash is not None:
        # The checkpoint's own entry, if its partition is still kept, must hold the signed hash.
        at = await AccessLogEntry.filter(seq=start.seq).values_list("hash", flat=True)
        if at and at[0] != start.hash:
            return bad(start.seq, "checkpoint_mismatch", "the entry at the checkpoint has another hash")
    pending = asyncio.ensure_future(_page(conn, start.seq, head_seq, batch_size))
    try:
        while expected_seq <= head_seq:
            rows = await pending
            if not rows:
                return bad(expected_seq, "missing_entries")
            last = int(rows[-1]["seq"])
            if last < head_seq:
                pending = asyncio.ensure_future(_page(conn, last, head_seq, batch_size))
            for row in rows:
                seq = int(row["seq"])
                if seq != expected_seq:
                    return bad(expected_seq, "duplicate_seq" if seq < expected_seq else "missing_entries")
                if prev_hash is None:  # the first kept entry after dropped partitions
                    prev_hash, algorithm = str(row["prev_hash"]), _algorithm_of(row)
                    if algorithm is None:
                        return bad(seq, "hash_mismatch")
                if row["prev_hash"] != prev_hash:
                    return bad(seq, "broken_link")
                if entry_hash(row, algorithm or SHA256) != row["hash"]:
                    return bad(seq, "hash_mismatch")
                if row["action"] == HASH_SWITCH:
                    if row["object_id"] not in _PROFILE_OF_HASH:
                        return bad(seq, "unknown_hash_algorithm")
                    algorithm = str(row["object_id"])
                prev_hash = str(row["hash"])
                if seq in anchors:
                    if anchors[seq] != (prev_hash, algorithm):
                        return bad(
                            seq, "checkpoint_mismatch", "a trusted checkpoint disagrees with the chain"
                        )
                    bound = True
                expected_seq += 1
                checked += 1
    finally:
        if not pending.done():
            pending.cancel()
    if not bound:
        return bad(start.seq + 1, "unanchored_start", "no trusted checkpoint covers the first kept entry")
    if (prev_hash or GENESIS_HASH) != head_hash or head_algorithm != (algorithm or SHA256):
        return bad(head_seq, "head_mismatch")
    return ChainReport(True, checked, head_seq, head_hash, None, None, head_algorithm, start.seq, anchor_seq)


# --- the citizen's view --------------------------------------------------------------------------


def _entry_view(row: AccessLogEntry, person_id: int) -> AccessLogItem:
    return AccessLogItem(
        seq=row.seq,
        occurred_at=row.occurred_at.astimezone(SHANGHAI),
        reader_role=row.reader_role,
        reader=row.reader_display,
        by_self=row.reader_subject == f"person:{person_id}",
        action=row.action,
        object_type=row.object_type,
        object_id=None if row.purpose in CONFIDENTIAL_REFERENCE_PURPOSES else row.object_id,
        purpose=row.purpose,
        request_id=row.request_id,
    )


async def access_log_for(
    *, person_id: int, before_seq: int | None, limit: int, others_only: bool = False
) -> AccessLogPage:
    """Reads of the person's data, newest first. Reads made by a guardian while the person had
    no row in the register were logged under their ID number's blind index: they are included,
    and so are those logged under the index of an earlier cryptography profile (its alias)."""
    person = await Person.get_or_none(id=person_id).only("id", "id_number_index")
    who = Q(person_id=person_id)
    if person is not None:
        aliases = await CryptoIndexAlias.filter(new_index=person.id_number_index).values_list(
            "old_index", flat=True
        )
        who |= Q(person_index__in=[person.id_number_index, *aliases])
    query = AccessLogEntry.filter(who)
    if others_only:
        query = query.exclude(reader_subject=f"person:{person_id}")
    if before_seq is not None:
        query = query.filter(seq__lt=before_seq)
    rows = await query.order_by("-seq").limit(limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AccessLogPage(
        items=tuple(_entry_view(r, person_id) for r in rows),
        next_before=rows[-1].seq if more and rows else None,
    )
