"""Database lifecycle: initialise Tortoise for this process and apply the real migrations.

Tortoise 1.x keeps its state in a context variable. Sanic runs listeners, request handlers and
our background workers in different tasks, so the process's context is registered as the
global fallback (`_enable_global_fallback`, as `tortoise.contrib.sanic.register_tortoise` does)
and closed, which clears the fallback, when the process stops.

Migrations that rewrite personal data need the keys: `apply_migrations(config, vault=...)` hands
the PII vault to them through a context variable (`migration_vault`), so a migration module
imports no settings and opens no key file. A migration that finds rows to encrypt and no vault
fails and says so.

On PostgreSQL a connection goes back to the pool without asyncpg's session reset (`RESET ALL;
UNLISTEN *; CLOSE ALL; SELECT pg_advisory_unlock_all()`), one round trip on every release, a
sixth of a worker's CPU in the appointment rush (bench/rush.py, py-spy). asyncpg still rolls back
a transaction left open. Nothing here keeps state in a session: settings are `SET LOCAL`,
advisory locks `pg_advisory_xact_lock`, no LISTEN, no cursor outlives its transaction. Code that
needs session state must not take a pooled connection for it.

On SQLite, migrations run with `foreign_keys=OFF`, as SQLite's own procedure for changing a
table asks (https://sqlite.org/lang_altertable.html#otheralter): a column with a UNIQUE
constraint can only be dropped by copying the table, and dropping a parent table with foreign
keys on deletes its children's rows (ON DELETE CASCADE) or fails (RESTRICT). The pragma cannot
change inside a transaction, so it is set on the migration connection itself; a migration that
copies a table checks `PRAGMA foreign_key_check` before it commits.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tortoise import connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as tortoise_migrate

if TYPE_CHECKING:
    from services.pii import PiiVault

_migration_vault: contextvars.ContextVar[PiiVault | None] = contextvars.ContextVar(
    "migration_vault", default=None
)


class MigrationNeedsKeys(RuntimeError):
    """A migration found personal data to encrypt but was given no vault."""


async def open_database(config: dict[str, Any]) -> TortoiseContext:
    ctx = TortoiseContext()
    with ctx:  # active while the models are bound; afterwards reached through the fallback
        await ctx.init(config=_pool_config(config), _enable_global_fallback=True)
    return ctx


async def _keep_session(connection: object) -> None:
    """asyncpg's pool `reset` hook: nothing beyond its own rollback of an open transaction."""


def _pool_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with PostgreSQL connections released to the pool without the session reset."""
    connections_: dict[str, Any] = {}
    for name, url in config["connections"].items():
        if isinstance(url, str) and url.startswith(("postgres://", "asyncpg://")):
            expanded = expand_db_url(url)
            expanded["credentials"]["reset"] = _keep_session
            connections_[name] = expanded
        else:
            connections_[name] = url
    return {**config, "connections": connections_}


async def close_database(ctx: TortoiseContext) -> None:
    await ctx.close_connections()


async def apply_migrations(
    config: dict[str, Any], *, vault: PiiVault | None = None, target: str | None = None
) -> None:
    """Apply every migration in services/migrations that is not applied yet (or up to `target`,
    e.g. `models.0004_sign_in_hardening`). `vault` is for the migrations that encrypt existing
    rows; without it they fail on a database that has such rows."""
    with _vault_for_migrations(vault):
        async with TortoiseContext():
            await tortoise_migrate(config=_migration_config(config), target=target)


def migration_vault(purpose: str) -> PiiVault:
    """The vault `apply_migrations` was given; for a migration that has rows to encrypt."""
    vault = _migration_vault.get()
    if vault is None:
        raise MigrationNeedsKeys(
            f"this migration must {purpose} and needs the PII keys: apply it with "
            "`python -m api migrate` (or services.db.apply_migrations(config, vault=...)) "
            "with ESTATE_PII_KEY and ESTATE_BLIND_INDEX_KEY set as the service runs"
        )
    return vault


def migration_vault_if_given() -> PiiVault | None:
    """The vault `apply_migrations` was given, or None (a migration that can do without)."""
    return _migration_vault.get()


@contextmanager
def _vault_for_migrations(vault: PiiVault | None) -> Iterator[None]:
    token = _migration_vault.set(vault)
    try:
        yield
    finally:
        _migration_vault.reset(token)


def _migration_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with SQLite connections opened with foreign_keys=OFF (see the module docstring)."""
    connections_: dict[str, Any] = {}
    for name, url in config["connections"].items():
        if isinstance(url, str) and url.startswith("sqlite://") and "foreign_keys=" not in url:
            url += ("&" if "?" in url else "?") + "foreign_keys=OFF"
        connections_[name] = url
    return {**config, "connections": connections_}


def dialect() -> str:
    return str(connections.get("default").capabilities.dialect)
