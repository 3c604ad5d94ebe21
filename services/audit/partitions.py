"""The access log's monthly partitions on PostgreSQL, and retention by dropping whole months.

Invariant: every entry lands in the partition of its `occurred_at` month (UTC calendar months,
`access_log_yYYYYmMM`, bounds `[first of the month 00:00 UTC, first of the next)`), and there is
no DEFAULT partition. A DEFAULT partition would be a trap, not a safety net: a row that lands in it
blocks creating its month's partition later (PostgreSQL refuses a new partition whose range holds
rows of the DEFAULT one), and moving the row out is a DELETE, which the append-only triggers refuse.
Instead partitions are made ahead (`ensure_partitions`: at service start and by every `audit`
command, from the current month to N months ahead), and an append whose month still has none makes
it in its own transaction (`ensure_months`), logged as a warning: a read is never refused for want
of a partition, at the cost of a short exclusive lock on the parent that month.

Making a partition (`CREATE TABLE ... PARTITION OF`) takes an ACCESS EXCLUSIVE lock on
`access_log`; so does dropping one. Both run with a lock timeout, so a long `audit verify` makes
them fail and be retried later instead of queueing every append behind them. An advisory lock
keeps two processes from making the same partition at once.

Row triggers of the parent (UPDATE and DELETE refused, migration 0003) are cloned by PostgreSQL
onto every partition; a statement trigger is not, so each partition gets its own TRUNCATE trigger
here. What still removes entries is DDL: `DROP TABLE` of a partition (which retention does, and
which someone with DDL rights could do: the chain and the checkpoints show it, see
services/audit/log.py).

Retention (`drop_expired_partitions`) drops a month only if all of it is older than the retention
period, every entry in it is at or before the latest trusted checkpoint (so that checkpoint anchors
the first kept entry), and every seq in it is below every seq kept (appends take `occurred_at`
before they queue for the head, so across processes two entries at a month boundary can land in
the months in the other order than their seqs; dropping then would leave a hole in the chain).
Months go oldest first and stop at the first that must stay: a kept older month never sits below a
dropped younger one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

log = logging.getLogger("estate.audit")

PARENT = "access_log"
_NAME = re.compile(r"^access_log_y(\d{4})m(\d{2})$")
_ADVISORY_KEY = 0x61636C6F67  # "aclog": serialises partition DDL between processes
_LOCK_TIMEOUT = "5s"
# Months known to have a partition, per database: appends check here before asking the catalogue.
_KNOWN: dict[tuple[Any, ...], set[datetime]] = {}


class PartitionsBusy(Exception):
    """Partition DDL waited longer than its lock timeout (a long query held the log): try later."""


def _busy(exc: BaseException) -> bool:
    """Lock timeout (55P03) or deadlock (40P01), raised as is or wrapped by Tortoise."""
    return any(getattr(error, "sqlstate", None) in ("55P03", "40P01") for error in (exc, exc.__cause__))


class RetentionUnavailable(Exception):
    """Retention drops PostgreSQL partitions; this database has none (SQLite)."""


def month_start(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def add_months(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def _dialect(conn: BaseDBAsyncClient) -> str:
    return str(conn.capabilities.dialect)


def _database_key(conn: BaseDBAsyncClient) -> tuple[Any, ...]:
    root: Any = conn
    while getattr(root, "_parent", None) is not None:
        root = root._parent
    return (getattr(root, "host", None), getattr(root, "port", None), getattr(root, "database", None))


async def is_partitioned(conn: BaseDBAsyncClient | None = None) -> bool:
    conn = conn or connections.get("default")
    if _dialect(conn) != "postgres":
        return False
    rows = await conn.execute_query_dict(
        "SELECT relkind::text AS relkind FROM pg_class WHERE oid = to_regclass($1)", [PARENT]
    )
    return bool(rows) and rows[0]["relkind"] == "p"


async def _existing_months(conn: BaseDBAsyncClient) -> set[datetime]:
    rows = await conn.execute_query_dict(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1)",
        [PARENT],
    )
    months = set()
    for row in rows:
        found = _NAME.match(str(row["relname"]))
        if found is None:
            raise RuntimeError(f"access_log has a partition not made here: {row['relname']}")
        months.add(datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC))
    return months


def _create_statements(month: datetime) -> str:
    name, ends = partition_name(month), add_months(month, 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{ends.isoformat()}');\n"
        f"CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();\n"
    )


async def _create_missing(conn: BaseDBAsyncClient, months: Iterable[datetime]) -> list[str]:
    """Inside `conn`'s transaction: take the DDL lock, then make the months that are still missing."""
    await conn.execute_query(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADVISORY_KEY])
    existing = await _existing_months(conn)
    missing = sorted(set(months) - existing)
    if missing:
        await conn.execute_script("".join(_create_statements(m) for m in missing))
    _KNOWN.setdefault(_database_key(conn), set()).update(existing)
    return [partition_name(m) for m in missing]


async def ensure_partitions(*, now: datetime, months_ahead: int, since: datetime | None = None) -> list[str]:
    """Make the monthly partitions from `since`'s month (default: `now`'s) to `months_ahead`
    months after `now`'s, those that do not exist yet; their names. Nothing on SQLite."""
    conn = connections.get("default")
    if not await is_partitioned(conn):
        return []
    first, last = month_start(since or now), add_months(month_start(now), months_ahead)
    months, month = [], first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    try:
        async with in_transaction() as tx:
            made = await _create_missing(tx, months)
    except Exception as exc:
        if _busy(exc):
            raise PartitionsBusy(f"making access log partitions: {exc}") from exc
        raise
    if made:
        log.info("access log partitions made", extra={"partitions": made})
    _KNOWN.setdefault(_database_key(conn), set()).update(months)
    return made


async def ensure_months(conn: BaseDBAsyncClient, moments: Iterable[datetime]) -> None:
    """Called by an append before it inserts, in its transaction: the months of `moments` have
    partitions (a dictionary look-up once each month is known; see the module docstring)."""
    if _dialect(conn) != "postgres":
        return
    months = {month_start(m) for m in moments}
    known = _KNOWN.setdefault(_database_key(conn), set())
    if months <= known:
        return
    if not await is_partitioned(conn):
        known.update(months)  # not partitioned (yet): nothing to make
        return
    made = await _create_missing(conn, months)
    known.update(months)
    if made:
        log.warning(
            "access log partitions made by an append: run the service or `audit checkpoint` "
            "often enough that they are made ahead",
            extra={"partitions": made},
        )


# --- retention -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionSpan:
    name: str
    starts: datetime
    ends: datetime
    min_seq: int | None  # None: empty
    max_seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.name,
            "from": self.starts.isoformat(),
            "to": self.ends.isoformat(),
            "min_seq": self.min_seq,
            "max_seq": self.max_seq,
        }


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    checkpoint_seq: int | None
    dry_run: bool
    dropped: list[PartitionSpan] = field(default_factory=list)
    kept_because: str | None = None  # why the oldest kept month older than the cutoff stays

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "checkpoint_seq": self.checkpoint_seq,
            "dry_run": self.dry_run,
            "dropped" if not self.dry_run else "would_drop": [p.as_dict() for p in self.dropped],
            "kept_because": self.kept_because,
        }


async def partition_spans(conn: BaseDBAsyncClient | None = None) -> list[PartitionSpan]:
    """Every partition, oldest first, with its lowest and highest seq (index look-ups)."""
    conn = conn or connections.get("default")
    spans = []
    for month in sorted(await _existing_months(conn)):
        name = partition_name(month)
        row = (
            await conn.execute_query_dict(f"SELECT min(seq) AS lo, max(seq) AS hi FROM {name}")  # noqa: S608 - our name
        )[0]
        lo, hi = (None if row[k] is None else int(row[k]) for k in ("lo", "hi"))
        spans.append(PartitionSpan(name, month, add_months(month, 1), lo, hi))
    return spans


async def drop_expired_partitions(
    *, now: datetime, retention_months: int, checkpoint_seq: int | None, dry_run: bool
) -> RetentionReport:
    """Drop the months the module docstring allows, oldest first; what was (or would be) dropped."""
    conn = connections.get("default")
    if not await is_partitioned(conn):
        raise RetentionUnavailable(
            "retention drops monthly partitions of the access log, which only PostgreSQL has "
            "(migration 0014); on SQLite entries are kept"
        )
    cutoff = add_months(month_start(now), -retention_months)
    spans = await partition_spans(conn)
    report = RetentionReport(cutoff, checkpoint_seq, dry_run)
    for i, span in enumerate(spans):
        why = _must_keep(span, spans[i + 1 :], cutoff, checkpoint_seq)
        if why is not None:
            report = RetentionReport(cutoff, checkpoint_seq, dry_run, report.dropped, why)
            break
        report.dropped.append(span)
    if dry_run or not report.dropped:
        return report
    try:
        async with in_transaction() as tx:
            await tx.execute_query(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            await tx.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADVISORY_KEY])
            for span in report.dropped:
                await tx.execute_script(f"DROP TABLE {span.name}")
    except Exception as exc:
        if _busy(exc):
            raise PartitionsBusy(f"dropping access log partitions: {exc}") from exc
        raise
    known = _KNOWN.get(_database_key(conn))
    if known is not None:
        known.difference_update(s.starts for s in report.dropped)
    log.warning("access log partitions dropped", extra={"partitions": [s.name for s in report.dropped]})
    return report


def _must_keep(
    span: PartitionSpan, later: list[PartitionSpan], cutoff: datetime, checkpoint_seq: int | None
) -> str | None:
    if span.ends > cutoff:
        return f"{span.name} holds entries younger than the retention (cutoff {cutoff.date()})"
    if span.max_seq is None:
        return None  # an empty month
    if checkpoint_seq is None or span.max_seq > checkpoint_seq:
        return (
            f"{span.name} holds entries up to seq {span.max_seq}, after the latest trusted checkpoint "
            f"({checkpoint_seq if checkpoint_seq is not None else 'none'}): take a checkpoint first"
        )
    later_min = min((s.min_seq for s in later if s.min_seq is not None), default=None)
    if later_min is not None and later_min < span.max_seq:
        return f"{span.name} holds seq {span.max_seq}, after seq {later_min} of a later month"
    return None
