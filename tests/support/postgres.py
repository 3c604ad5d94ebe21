"""Scratch PostgreSQL databases for the tests: one helper for the session database (tests/conftest.py),
the per-test databases of the outbox tests and the processes of the scale-out test.

`base_url` is TEST_DATABASE_URL, a server without a database (`postgres://postgres@127.0.0.1:5432`);
a path or query on it is kept apart from the database name. The admin connection goes to the
`postgres` maintenance database. Names are random, so parallel runs on one server do not meet,
and a database is dropped WITH (FORCE) even when a test left a connection open.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit


def database_url_for(base_url: str, name: str) -> str:
    """`base_url` with its path replaced by database `name` (query kept, fragment dropped)."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def _admin(base_url: str, statement: str) -> None:
    import asyncpg  # only the PostgreSQL pass needs it

    admin = await asyncpg.connect(database_url_for(base_url, "postgres"))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_postgres(base_url: str, *, prefix: str = "estate_test") -> AsyncIterator[str]:
    """The URL of a new, empty database `<prefix>_<random>` on the server of `base_url`, dropped on exit."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix):
        raise ValueError(f"a database name prefix is lower-case letters, digits and _: {prefix!r}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url_for(base_url, name)
    finally:
        await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
