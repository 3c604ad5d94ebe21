"""Database lifecycle: initialise Tortoise for this process and apply the real migrations.

Tortoise 1.x keeps its state in a context variable. Sanic runs listeners, request handlers and
our background workers in different tasks, so the process's context is registered as the
global fallback (`_enable_global_fallback`, as `tortoise.contrib.sanic.register_tortoise` does)
and closed, which clears the fallback, when the process stops.
"""

from __future__ import annotations

from typing import Any

from tortoise import connections
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as tortoise_migrate


async def open_database(config: dict[str, Any]) -> TortoiseContext:
    ctx = TortoiseContext()
    with ctx:  # active while the models are bound; afterwards reached through the fallback
        await ctx.init(config=config, _enable_global_fallback=True)
    return ctx


async def close_database(ctx: TortoiseContext) -> None:
    await ctx.close_connections()


async def apply_migrations(config: dict[str, Any]) -> None:
    """Apply every migration in services/migrations that is not applied yet."""
    async with TortoiseContext():
        await tortoise_migrate(config=config)


def dialect() -> str:
    return str(connections.get("default").capabilities.dialect)
