"""Session fixtures: one database built by the real migrations, the real app on a real port,
the simulators over real HTTP.

Backends: SQLite by default. Set TEST_DATABASE_URL (postgres://user@host:port) and
TEST_REDIS_URL (redis://host:port/db) to run the same suite on PostgreSQL and Redis; CI does
both passes.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from services.clock import AdjustableClock
from services.pii import PiiVault
from tests import factories
from tests.support.postgres import scratch_postgres
from tests.support.server import RunningApp, running_app

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if TEST_DATABASE_URL:
        async with scratch_postgres(TEST_DATABASE_URL) as url:
            yield url
    else:
        path: Path = tmp_path_factory.mktemp("db") / "estate.sqlite3"
        yield f"sqlite://{path}"


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str | None]:
    if not TEST_REDIS_URL:
        yield None
        return
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    assert await client.ping()
    await client.aclose()
    yield TEST_REDIS_URL


@pytest.fixture(scope="session")
def clock() -> AdjustableClock:
    return AdjustableClock()


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        # This session's own keys: nothing in the suite may rely on a key written in the source.
        key_dir=tmp_path_factory.mktemp("keys"),
        secret_key=secrets.token_urlsafe(32),
        pii_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        pii_sm4_key=base64.b64encode(secrets.token_bytes(16)).decode(),
        blind_index_key=secrets.token_urlsafe(32),
        redis_url=redis_url,
        redis_key_prefix=f"estate-test-{uuid.uuid4().hex[:8]}:",
        simulators_in_process=True,
        simulator_base_port=0,
        load_demo_data=False,
        migrate_on_start=True,
        outbox_in_process=True,
        outbox_poll_interval_s=0.05,
        # The session app's feed poller is started (test_ward_link_changes.py checks it is) but
        # polls once, at start: on a 30 s timer it verified a flagged link at the moment a ward
        # test's read did, and that test's count of registry calls saw two (a CI run of
        # 2026-12-04). Tests that need polling run a poller of their own.
        guardianship_feed_poll_interval_s=3600,
        external_timeout_s=1.0,
        external_retries=1,
        external_backoff_initial_s=0.01,
        external_backoff_max_s=0.05,
        otp_cooldown_s=2,
        # The suite signs staff in from 127.0.0.1 all day; the per-address cap has its own test.
        password_signin_hourly_cap_per_ip=100_000,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings, clock: AdjustableClock) -> AsyncIterator[RunningApp]:
    async with running_app(settings, clock=clock) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset_clock(clock: AdjustableClock) -> None:
    clock.reset()


@pytest.fixture
async def client(app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def vault(settings: Settings) -> PiiVault:
    # The session's profile: ESTATE_CRYPTO_PROFILE=national runs the suite under SM4/HMAC-SM3.
    session_vault = PiiVault.from_settings(settings)
    # Factories called without `vault=` must write rows the app can read.
    factories.set_default_vault(session_vault)
    return session_vault
