"""Every statement the app sends to PostgreSQL, recorded, then EXPLAINed: a sequential scan of a
large table fails the plan test (tests/integration/test_query_plans.py, docs/scale.md).

Recording: Tortoise's asyncpg client builds its pool with `connection_class`; `recording()` swaps
in `RecordingConnection`, which gives each connection an asyncpg query logger from birth, so every
statement on every pooled connection (transactions and savepoints included) reaches the recorder
with its arguments. The recorder files each statement under the label of the request being made
(`recorder.during("GET /api/v1/me/properties")`); the test makes one request at a time and runs no
background worker, so what runs during a request is what that request sent.

Explaining: each distinct (statement, arguments) that reads or changes rows by a condition
(SELECT, UPDATE, DELETE, INSERT ... SELECT, WITH) is run as `EXPLAIN (FORMAT JSON)` with the same
arguments on a separate connection, so the planner makes the custom plan the request got. Plain
INSERT ... VALUES, transaction control and SET are skipped: they scan nothing. A `Seq Scan` node
on a table whose `pg_class.reltuples` is over the threshold is a finding; a partition (a month
of the access log, `access_log_y2026m11`) that holds rows counts with the rows of its whole
partitioned table, since the plan of a request reads each month (`Size`). Small tables (offices,
banks, heads, configuration) may be scanned, as the planner rightly prefers there. The report
also names every table and partition the plans touch, with its size: the tables a test register
must make large (tests/support/padding.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient

LARGE_TABLE_ROWS = 10_000

_EXPLAINABLE = re.compile(r"^\s*(SELECT|UPDATE|DELETE|WITH|INSERT\b.*\bSELECT\b)", re.IGNORECASE | re.DOTALL)
_LONG_SELECT_LIST = re.compile(r"^(SELECT(?: DISTINCT)?) [^()]{60,}? FROM", re.IGNORECASE)
_VALUES_INSERT = re.compile(r"^\s*INSERT\b(?:(?!\bSELECT\b).)*\bVALUES\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Statement:
    label: str  # the request it was sent for, e.g. "GET /api/v1/me/properties"
    query: str
    args: tuple[Any, ...]


@dataclass
class QueryRecorder:
    statements: list[Statement] = field(default_factory=list)
    label: str | None = None  # None: not during a request of the test, not recorded

    def log(self, record: asyncpg.connection.LoggedQuery) -> None:
        if self.label is not None and record.exception is None:
            self.statements.append(Statement(self.label, record.query, tuple(record.args or ())))

    @contextmanager
    def during(self, label: str) -> Iterator[None]:
        self.label = label
        try:
            yield
        finally:
            self.label = None

    def labels(self) -> set[str]:
        return {s.label for s in self.statements}


_active: QueryRecorder | None = None


class RecordingConnection(asyncpg.connection.Connection):  # type: ignore[misc]
    """An asyncpg connection that reports every statement to the active recorder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_query_logger(_log)


def _log(record: asyncpg.connection.LoggedQuery) -> None:
    if _active is not None:
        _active.log(record)


@contextmanager
def recording(recorder: QueryRecorder) -> Iterator[QueryRecorder]:
    """Pools created inside the block record into `recorder` (the app must start inside it)."""
    global _active
    original = AsyncpgDBClient.connection_class
    AsyncpgDBClient.connection_class = RecordingConnection
    _active = recorder
    try:
        yield recorder
    finally:
        AsyncpgDBClient.connection_class = original
        _active = None


# --- plans ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """A relation's estimated rows; a partition counts as the whole partitioned table (`of`): a
    month of the access log may hold few rows, but a scan of it is one of the log's scans. An
    empty partition (a month not begun: `own` 0) is not counted: there the planner rightly scans
    nothing, and once the month fills, ANALYZE gives it the index plan of the other months."""

    rows: int
    of: str | None = None  # the partitioned table a partition belongs to
    own: int = 0  # a partition's own rows

    @property
    def counted(self) -> int:
        return self.rows if self.of is None or self.own > 0 else 0

    def __str__(self) -> str:
        if self.of is None:
            return f"{self.rows:,} rows"
        return f"a partition of {self.of}: {self.rows:,} rows, {self.own:,} in this one"


@dataclass(frozen=True)
class SeqScan:
    label: str
    query: str
    relation: str
    size: Size  # pg_class.reltuples, of the whole table for a partition
    plan_rows: int  # the planner's estimate of rows out of the scan

    def __str__(self) -> str:
        query = _LONG_SELECT_LIST.sub(r"\1 … FROM", " ".join(self.query.split()))
        return (
            f"{self.label}: Seq Scan on {self.relation} ({self.size}, "
            f"{self.plan_rows:,} estimated out)\n      {query[:600]}"
        )


@dataclass
class PlanReport:
    scans: list[SeqScan]  # of tables over the threshold: the findings
    explained: int  # distinct statements with their arguments
    relations: dict[str, Size]  # every table and partition a plan reads or changes, and its size


def explainable(query: str) -> bool:
    """One statement that may scan; not asyncpg's multi-statement reset of a released connection."""
    single = ";" not in query.strip().rstrip(";")
    return single and bool(_EXPLAINABLE.match(query)) and not _VALUES_INSERT.match(query)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def table_sizes(conn: asyncpg.Connection) -> dict[str, Size]:
    """Estimated rows of every ordinary and partitioned table and partition (run ANALYZE first);
    a partition and its partitioned table get the sum over all its partitions (`Size`)."""
    rows = await conn.fetch(
        "SELECT c.relname, GREATEST(c.reltuples, 0)::bigint AS n, r.relname AS root FROM pg_class c "
        "JOIN pg_namespace s ON s.oid = c.relnamespace "
        "LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid) "
        "WHERE c.relkind IN ('r', 'p') AND s.nspname = current_schema()"
    )
    whole: dict[str, int] = {}
    for r in rows:
        if r["root"] is not None:
            whole[str(r["root"])] = whole.get(str(r["root"]), 0) + int(r["n"])
    sizes: dict[str, Size] = {}
    for r in rows:
        name, root = str(r["relname"]), r["root"]
        if root is not None:
            sizes[name] = Size(whole[str(root)], str(root), int(r["n"]))
        else:
            sizes[name] = Size(whole.get(name, int(r["n"])))
    return sizes


async def seq_scans_of_large_tables(
    dsn: str, statements: list[Statement], *, threshold: int = LARGE_TABLE_ROWS
) -> PlanReport:
    """The sequential scans of tables over `threshold` rows in the plans of `statements` (a
    partition counts as its whole table), and every relation the plans touch."""
    conn = await asyncpg.connect(dsn)
    try:
        sizes = await table_sizes(conn)
        found: list[SeqScan] = []
        seen: set[tuple[str, str, str]] = set()
        explained: set[tuple[str, tuple[Any, ...]]] = set()
        touched: dict[str, Size] = {}
        for s in statements:
            if not explainable(s.query) or (s.query, s.args) in explained:
                continue
            explained.add((s.query, s.args))
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {s.query}", *s.args)
            plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
            for node in _nodes(plan):
                if "Relation Name" not in node:
                    continue
                relation = str(node["Relation Name"])
                size = sizes.get(relation, Size(0))
                touched[relation] = size
                if node["Node Type"] != "Seq Scan" or size.counted <= threshold:
                    continue
                if (s.label, s.query, relation) not in seen:
                    seen.add((s.label, s.query, relation))
                    found.append(SeqScan(s.label, s.query, relation, size, int(node["Plan Rows"])))
        return PlanReport(found, len(explained), touched)
    finally:
        await conn.close()


async def settle() -> None:
    """Let the query loggers' callbacks (scheduled with call_soon) run."""
    for _ in range(3):
        await asyncio.sleep(0)
