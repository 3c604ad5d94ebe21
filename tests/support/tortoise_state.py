"""Tortoise state shared by every context in the process, and how a test module gives it back.

Tortoise keeps each model's base query on the model class and its INSERT statements in a
process-wide cache keyed by connection name, not by dialect, both shared by every context. A
module that opens databases of its own (a SQLite file, a scratch PostgreSQL database) would leave
its statements, SQLite's `?` placeholders say, to the session app's database (PostgreSQL in CI's
second pass). `queries_given_back` clears the cache around the module and rebuilds the app's base
queries afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext


@asynccontextmanager
async def queries_given_back(app: Any) -> AsyncIterator[None]:
    """`app` is the session's RunningApp (tests/conftest.py)."""
    EXECUTOR_CACHE.clear()
    try:
        yield
    finally:
        EXECUTOR_CACHE.clear()
        apps = app.services.db.apps
        if apps is not None:
            apps._build_initial_querysets()


@asynccontextmanager
async def tortoise_for_this_test(config: dict[str, Any]) -> AsyncIterator[None]:
    """Tortoise bound to this test's context (pytest-asyncio carries it from fixture to test), not
    the process-wide fallback: the session app of tests/conftest.py may hold that, and its
    in-process outbox worker must not see these databases."""
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=config)
        try:
            yield
        finally:
            await ctx.close_connections()
