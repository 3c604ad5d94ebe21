"""PostgreSQL bulk loading: the bulk tables' secondary indexes and unique and foreign-key
constraints dropped before COPY and made again after it, from the definitions the catalog held
(`pg_get_indexdef`, `pg_get_constraintdef`), so they stay exactly what the migrations made.

Primary keys stay: other tables' foreign keys point at them, and rows arrive in key order, so
keeping them costs little. Check constraints stay too (checked row by row, cheaply). Everything
runs on one connection in the loader's transaction: a failed load leaves the database as it was,
indexes included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Definition:
    table: str
    name: str
    kind: str  # index | unique | foreign key
    sql: str  # the statement that makes it again

    @property
    def drop(self) -> str:
        if self.kind == "index":
            return f'DROP INDEX "{self.name}"'
        return f'ALTER TABLE "{self.table}" DROP CONSTRAINT "{self.name}"'


async def secondary_definitions(conn: asyncpg.Connection, tables: Sequence[str]) -> list[Definition]:
    """What to drop before the load, in an order that can be dropped (foreign keys first) and,
    reversed, made again (indexes, then unique constraints, then foreign keys)."""
    constraints = await conn.fetch(
        """
        SELECT c.conrelid::regclass::text AS tab, c.conname, c.contype::text AS contype,
               pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c
        WHERE c.conrelid IN (SELECT unnest($1::text[])::regclass) AND c.contype IN ('f', 'u')
        ORDER BY c.contype, c.conrelid::regclass::text, c.conname
        """,
        [f'"{t}"' for t in tables],
    )
    indexes = await conn.fetch(
        """
        SELECT i.indrelid::regclass::text AS tab, ci.relname, pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
        WHERE i.indrelid IN (SELECT unnest($1::text[])::regclass) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1, 2
        """,
        [f'"{t}"' for t in tables],
    )
    out = [
        Definition(_bare(r["tab"]), r["conname"], "foreign key", _add(r["tab"], r["conname"], r["def"]))
        for r in constraints
        if r["contype"] == "f"
    ]
    out += [
        Definition(_bare(r["tab"]), r["conname"], "unique", _add(r["tab"], r["conname"], r["def"]))
        for r in constraints
        if r["contype"] == "u"
    ]
    out += [Definition(_bare(r["tab"]), r["relname"], "index", r["def"]) for r in indexes]
    return out


def _bare(regclass: str) -> str:
    return regclass.strip('"')


def _add(table: str, name: str, definition: str) -> str:
    return f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'


async def table_columns(conn: asyncpg.Connection, tables: Sequence[str]) -> dict[str, list[str]]:
    rows = await conn.fetch(
        """
        SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
        """,
        list(tables),
    )
    out: dict[str, list[str]] = {t: [] for t in tables}
    for r in rows:
        out[r["relname"]].append(r["attname"])
    return out


async def copy_chunk(
    conn: asyncpg.Connection, chunk: dict[str, list[tuple[Any, ...]]], columns: dict[str, list[str]]
) -> None:
    """Binary COPY of each table's rows."""
    for table, rows in chunk.items():
        if rows:
            await conn.copy_records_to_table(table, records=rows, columns=columns[table])
