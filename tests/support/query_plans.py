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
on a table whose `pg_class.reltuples` is over the threshold is a finding; small tables (offices,
banks, heads, configuration) may be scanned, as the planner rightly prefers there.
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
class SeqScan:
    label: str
    query: str
    relation: str
    table_rows: int  # pg_class.reltuples
    plan_rows: int  # the planner's estimate of rows out of the scan

    def __str__(self) -> str:
        query = _LONG_SELECT_LIST.sub(r"\1 … FROM", " ".join(self.query.split()))
        return (
            f"{self.label}: Seq Scan on {self.relation} ({self.table_rows:,} rows, "
            f"{self.plan_rows:,} estimated out)\n      {query[:600]}"
        )


def explainable(query: str) -> bool:
    """One statement that may scan; not asyncpg's multi-statement reset of a released connection."""
    single = ";" not in query.strip().rstrip(";")
    return single and bool(_EXPLAINABLE.match(query)) and not _VALUES_INSERT.match(query)


def _seq_scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if plan.get("Node Type") == "Seq Scan":
        yield plan
    for child in plan.get("Plans", ()):
        yield from _seq_scans(child)


async def table_sizes(conn: asyncpg.Connection) -> dict[str, int]:
    """Estimated rows of every ordinary and partitioned table (run ANALYZE first)."""
    rows = await conn.fetch(
        "SELECT c.relname, c.reltuples::bigint AS n FROM pg_class c "
        "JOIN pg_namespace s ON s.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND s.nspname = current_schema()"
    )
    return {str(r["relname"]): max(0, int(r["n"])) for r in rows}


async def seq_scans_of_large_tables(
    dsn: str, statements: list[Statement], *, threshold: int = LARGE_TABLE_ROWS
) -> tuple[list[SeqScan], int]:
    """The sequential scans of tables over `threshold` rows in the plans of `statements`, and how
    many distinct statements were explained."""
    conn = await asyncpg.connect(dsn)
    try:
        sizes = await table_sizes(conn)
        found: list[SeqScan] = []
        seen: set[tuple[str, str, str]] = set()
        explained: set[tuple[str, tuple[Any, ...]]] = set()
        for s in statements:
            if not explainable(s.query) or (s.query, s.args) in explained:
                continue
            explained.add((s.query, s.args))
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {s.query}", *s.args)
            plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
            for node in _seq_scans(plan):
                relation = str(node["Relation Name"])
                if sizes.get(relation, 0) > threshold and (s.label, s.query, relation) not in seen:
                    seen.add((s.label, s.query, relation))
                    found.append(SeqScan(s.label, s.query, relation, sizes[relation], int(node["Plan Rows"])))
        return found, len(explained)
    finally:
        await conn.close()


async def settle() -> None:
    """Let the query loggers' callbacks (scheduled with call_soon) run."""
    for _ in range(3):
        await asyncio.sleep(0)
