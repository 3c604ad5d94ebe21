"""A database of a test module's own, migrated under the international profile, for the tests
that switch a database's cryptography profile (test_national_profile, test_switch_legacy_subjects)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from config.settings import tortoise_config
from services.db import apply_migrations
from services.pii import PiiVault
from tests.conftest import TEST_DATABASE_URL
from tests.support.postgres import scratch_postgres
from tests.support.tortoise_state import tortoise_for_this_test


def international_vault() -> PiiVault:
    """Fresh keys of both profiles; the international one seals and indexes."""
    return PiiVault(
        key_b64=base64.b64encode(secrets.token_bytes(32)).decode(),
        blind_index_key=secrets.token_urlsafe(32),
        sm4_key_b64=base64.b64encode(secrets.token_bytes(16)).decode(),
        profile="international",
    )


@asynccontextmanager
async def migrated_database(
    tmp_path_factory: pytest.TempPathFactory, vault: PiiVault, *, prefix: str
) -> AsyncIterator[Path | None]:
    """PostgreSQL (a scratch database) when TEST_DATABASE_URL is set, else a SQLite file, built by
    the real migrations with `vault` and opened as the current Tortoise context; yields the
    SQLite file's path (None on PostgreSQL)."""
    if TEST_DATABASE_URL:
        async with scratch_postgres(TEST_DATABASE_URL, prefix=prefix) as url, _opened(url, vault):
            yield None
    else:
        path = tmp_path_factory.mktemp(prefix) / "estate.sqlite3"
        async with _opened(f"sqlite://{path}", vault):
            yield path


@asynccontextmanager
async def _opened(url: str, vault: PiiVault) -> AsyncIterator[None]:
    config = tortoise_config(url)
    await apply_migrations(config, vault=vault)
    async with tortoise_for_this_test(config):
        yield
