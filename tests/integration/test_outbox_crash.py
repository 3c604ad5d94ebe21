"""A worker killed mid-delivery loses nothing and applies nothing twice.

Simulators and workers run as separate processes. Worker A claims every message and files the
licences with the electronic licence library simulator; three requests hang in the simulator
(latency fault: in flight, not applied), five are applied and A then pauses before recording
them (applied, not acknowledged). A is killed with SIGKILL. Worker B takes the messages over
once A's lease expires and delivers them again with the same idempotency keys: the simulator
replays the five it already applied and applies the other three, so each licence is filed once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import httpx
import pytest
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from config.settings import Settings, tortoise_config
from integrations.factory import build_integrations
from services.clock import SystemClock
from services.db import apply_migrations
from services.outbox import HandlerTable, declare, route
from services.outbox.handlers import handlers_registered
from services.outbox.models import OutboxMessage
from services.outbox.store import enqueue
from tests.support.postgres import scratch_postgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAUSE_ENV = "OUTBOX_CRASH_TEST_PAUSE_AFTER_S"


@dataclass(frozen=True)
class StoreLicense:
    """A PDF filed in the e-licence library as given (the application's own topic renders it)."""

    license_type: str
    number: str
    holder_ref: str
    issued_at: datetime
    pdf_base64: str
    valid_until: date | None = None


ELICENSE_STORE = declare("tests.elicense_store_pdf", StoreLicense)
MESSAGES = 8
HUNG = 3  # requests held in the simulator when A dies
LEASE_S = 5.0


# --- the handler factory the worker processes load (--handlers) ----------------------------------
# `elicense.store_license` has no handler in the application yet; this test gives it one.


def store_license_table(
    store_license: Callable[[StoreLicense, str], Awaitable[dict[str, Any] | None]],
) -> HandlerTable:
    return HandlerTable(route(ELICENSE_STORE, store_license))


@asynccontextmanager
async def elicense_handlers(settings: Settings) -> AsyncIterator[HandlerTable]:
    """Files licences through the real HTTP adapter; pauses after the call when PAUSE_ENV is set,
    which stands for a worker that dies after the effect and before recording it."""
    pause_s = float(os.environ.get(PAUSE_ENV, "0"))
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
        elicense = build_integrations(settings, session=session, http_client=client).elicense

        async def store_license(payload: StoreLicense, key: str) -> dict[str, Any]:
            pdf = base64.b64decode(payload.pdf_base64)
            stored = await elicense.store_license(
                key,
                payload.license_type,
                payload.number,
                payload.holder_ref,
                payload.issued_at,
                payload.valid_until,
                hashlib.sha256(pdf).hexdigest(),
                pdf,
            )
            if pause_s:
                await asyncio.sleep(pause_s)
            return {"license_id": stored.license_id}

        yield store_license_table(store_license)


# --- processes ---------------------------------------------------------------------------------


class Process:
    def __init__(self, process: asyncio.subprocess.Process, log: Path, handle: TextIO) -> None:
        self.process = process
        self.log = log
        self._handle = handle

    @classmethod
    async def start(
        cls, log: Path, *args: str, env: dict[str, str] | None = None, stdout: Any = None
    ) -> Process:
        handle = log.open("w")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=stdout, stderr=handle
        )
        return cls(process, log, handle)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    async def stop(self, sig: int = signal.SIGKILL, within_s: float = 10) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            return await asyncio.wait_for(self.process.wait(), within_s)
        finally:
            self._handle.close()


@pytest.fixture
async def simulators(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The simulator suite in its own process (one per test: nothing hung lingers into the next);
    yields the settings overrides with its URLs."""
    log = tmp_path / "simulators.log"
    sims = await Process.start(
        log, "-m", "integrations.simulators", "--port-base", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert sims.process.stdout is not None
        line = await asyncio.wait_for(sims.process.stdout.readline(), 15)
        assert line, sims.tail()
        yield json.loads(line)
    finally:
        assert await sims.stop(signal.SIGTERM) == 0, sims.tail()


def worker_env(overrides: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTATE_")}
    env.update({f"ESTATE_{name.upper()}": url for name, url in overrides.items()})
    env.update(ESTATE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", **extra)
    return env


async def start_worker(tmp_path: Path, name: str, url: str, env: dict[str, str]) -> Process:
    return await Process.start(
        tmp_path / f"worker-{name}.log",
        "-m", "api", "worker",
        "--database-url", url,
        "--handlers", "tests.integration.test_outbox_crash:elicense_handlers",
        "--worker-id", name,
        "--lease-s", str(LEASE_S),
        "--poll-s", "0.1",
        "--batch-size", str(MESSAGES),
        "--concurrency", str(MESSAGES),
        env={**env, "ESTATE_KEY_DIR": str(tmp_path / "keys")},  # the install's keys: not the repo's var/
    )  # fmt: skip


# --- databases ---------------------------------------------------------------------------------


@asynccontextmanager
async def migrated_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database built by the real migrations, open in this process too."""
    async with AsyncExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite://{tmp_path / 'outbox.sqlite3'}"
        else:
            base_url = os.environ.get("TEST_DATABASE_URL")
            if not base_url:
                pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
            url = await stack.enter_async_context(scratch_postgres(base_url, prefix="outbox_crash"))
        config = tortoise_config(url)
        await apply_migrations(config)
        ctx = TortoiseContext()  # this test's context only, not the process-wide fallback
        with ctx:
            await ctx.init(config=config)
            try:
                yield url
            finally:
                await ctx.close_connections()


# --- the test ----------------------------------------------------------------------------------


async def sim_state(client: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    response = await client.get(f"{base_url}/_sim/state")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def eventually(check: Any, within_s: float, what: str, *logs: Process) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n---\n".join(p.tail() for p in logs))
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "backend", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_nothing(
    backend: str, simulators: dict[str, str], tmp_path: Path
) -> None:
    elicense_url = simulators["elicense_url"]
    run = uuid.uuid4().hex[:8]

    async def never_here(payload: StoreLicense, key: str) -> dict[str, Any]:
        raise AssertionError("the worker processes deliver, not this one")

    async with migrated_database(backend, tmp_path) as url, httpx.AsyncClient(timeout=5) as sim:
        keys = []
        for n in range(MESSAGES):
            pdf = f"%PDF-1.7 licence {run}-{n}".encode()
            key = f"elicense-{run}-{n}"
            with handlers_registered(store_license_table(never_here)):  # as a composition root would
                async with in_transaction() as conn:
                    await enqueue(
                        topic=ELICENSE_STORE,
                        payload=StoreLicense(
                            license_type="no_housing_certificate",
                            number=f"WF{run}{n:04d}",
                            holder_ref=f"P{n}",
                            issued_at=datetime(2026, 3, 2, 9, n, tzinfo=UTC),
                            pdf_base64=base64.b64encode(pdf).decode(),
                        ),
                        idempotency_key=key,
                        connection=conn,
                        clock=SystemClock(),
                    )
            keys.append(key)
        fault = {"mode": "latency", "latency_ms": 20_000, "count": HUNG, "operations": ["store_license"]}
        (await sim.post(f"{elicense_url}/_sim/faults", json=fault)).raise_for_status()

        # Worker A: applies five, holds three in flight, and dies before recording anything.
        a = await start_worker(
            tmp_path, "A", url, worker_env(simulators, **{PAUSE_ENV: "60", "ESTATE_EXTERNAL_TIMEOUT_S": "30"})
        )
        b: Process | None = None
        try:

            async def a_is_mid_delivery() -> bool:
                state = await sim_state(sim, elicense_url)
                return bool(
                    state["applied"].get("store_license") == MESSAGES - HUNG
                    and state["faulted"].get("store_license") == HUNG
                )

            await eventually(a_is_mid_delivery, 15, "worker A to be mid-delivery", a)
            assert await a.stop(signal.SIGKILL) == -signal.SIGKILL
            rows = await OutboxMessage.all()
            assert {(r.status, r.lease_owner, r.attempts) for r in rows} == {("pending", "A", 1)}

            # Worker B: takes over once A's lease has expired.
            b = await start_worker(tmp_path, "B", url, worker_env(simulators, ESTATE_EXTERNAL_TIMEOUT_S="2"))

            async def all_delivered() -> bool:
                return await OutboxMessage.filter(status="delivered").count() == MESSAGES

            await eventually(all_delivered, LEASE_S + 15, "worker B to deliver everything", b)
            assert await b.stop(signal.SIGTERM) == 0, b.tail()  # a graceful stop
        finally:
            await a.stop()
            if b is not None:
                await b.stop()

        state = await sim_state(sim, elicense_url)
        assert state["applied"]["store_license"] == MESSAGES
        assert state["licenses"] == MESSAGES
        assert {key: state["idempotency"][key]["applied"] for key in keys} == dict.fromkeys(keys, 1)
        # What A applied reached B as replays, not as new licences; the hung three were applied by B.
        assert sum(state["idempotency"][key]["replays"] for key in keys) == MESSAGES - HUNG
        rows = await OutboxMessage.all().order_by("id")
        assert [(r.status, r.attempts, r.lease_owner) for r in rows] == [("delivered", 2, None)] * MESSAGES
        assert len({r.result["license_id"] for r in rows if r.result}) == MESSAGES
