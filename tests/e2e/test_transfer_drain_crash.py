"""Utility transfers survive a worker killed mid-drain: each is applied once, none is lost.

Invariant checked (services/cases/utilities.py): every utility transfer of a registered transfer
case is applied exactly once at its provider, including a provider that does not deduplicate by
our key (a staff portal: water in 310112 and 310116), whatever the worker that delivers it does.

The cases are made in this process through the service layer (`open_transfer`, then
`CaseService`: tax answer, the buyer's confirmation, accepted -> reviewing -> registered), which
writes the utility rows and their outbox messages as production does; no outbox runs here. The
simulators run in their own process with latency on every utility request, a probabilistic
`drop` (applied, answer lost) and two certain drops on the staff portal. Worker A drains until
about a third of the transfers are applied at the simulator and is killed with SIGKILL; worker B
takes over once A's leases expire. The simulator's own records must then show each key applied
once and cases x 4 keys in all, and every row `confirmed`.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

import api.outbox_handlers  # noqa: F401  (declares every topic enqueued below)
from config.settings import Settings
from integrations.civil_registry.base import PersonRecord
from integrations.factory import build_integrations
from services.cases import CaseService
from services.cases.models import CONFIRMED, UtilityTransferRecord
from services.cases.topics import UTILITY_TRANSFER
from services.cases.transfers import BuyerInput, TransferApplication, open_transfer
from services.cases.workflow import Actor
from services.clock import SystemClock
from services.kv import MemoryStore
from services.outbox import HandlerTable, route
from services.outbox.handlers import handlers_registered
from services.outbox.models import OutboxMessage
from services.outbox.topics import declared_topics
from services.pii import PiiVault
from services.registry.changes import register_transaction
from services.registry.models import RegistrationCase
from tests.factories import create_office, create_person, create_right, id_number_of
from tests.integration.test_outbox_crash import (
    Process,
    eventually,
    migrated_database,
    sim_state,
    worker_env,
)
from tests.support.tortoise_state import queries_given_back

pytestmark = pytest.mark.slow

# 310112 and 310116: water through a staff portal that does not deduplicate; 310115: every provider
# deduplicates by our key.
DISTRICTS = ("310112", "310116", "310115")
CASES = 12
UTILITIES = 4
LEASE_S = 3.0
TRANSFER_OPERATIONS = ("transfer_account", "portal_file_task")


class _CivilRegistryNotAsked:
    """Opening goes through `transfers.open_transfer`: the buyers are our own factory persons."""

    async def get_person(self, id_number: str) -> PersonRecord:  # pragma: no cover
        raise AssertionError("the civil registry is not asked in this test")


@pytest.fixture(autouse=True)
async def _queries_back_on_the_app_database(app: Any) -> AsyncIterator[None]:
    """Tortoise caches INSERT statements by connection name, not by dialect, and keeps base
    queries on the model classes: this test's own databases (SQLite, then PostgreSQL) must not
    leave their statements to each other or to the session app's database (as in
    tests/integration/test_demo_data.py)."""
    async with queries_given_back(app):
        yield


@pytest.fixture
async def simulators(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The simulator suite in its own process; yields the settings overrides with its URLs."""
    import json

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


async def _never_here(payload: Any, key: str) -> dict[str, Any]:
    raise AssertionError("the worker processes deliver, not this one")


def _enqueue_only_table() -> HandlerTable:
    """Lets this process enqueue every declared topic (as a composition root would); never delivers."""
    return HandlerTable(*(route(topic, _never_here) for topic in declared_topics().values()))


async def make_registered_cases(settings: Settings, vault: PiiVault, *, count: int, run: str) -> list[str]:
    """`count` transfer cases taken to `registered` through the service layer; returns the
    idempotency keys of their utility transfers."""
    kv, clock = MemoryStore(), SystemClock()
    offices = {d: await create_office(district_code=d) for d in DISTRICTS}
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
        router = build_integrations(settings, session=session, http_client=client).utilities
        cases = CaseService(
            kv=kv,
            clock=clock,
            vault=vault,
            civil_registry=_CivilRegistryNotAsked(),  # type: ignore[arg-type]
            utilities=router,
        )
        with handlers_registered(_enqueue_only_table()):
            for n in range(count):
                district = DISTRICTS[n % len(DISTRICTS)]
                office = offices[district]
                seller = await create_person(vault=vault, phone=None)
                buyer = await create_person(vault=vault, phone=None)
                right = await create_right(holders=[(seller, 1)], district_code=district)
                application = TransferApplication(
                    seller_person_id=seller.id,
                    right_id=right.id,
                    buyers=(BuyerInput(id_number_of(buyer, vault=vault), buyer.name, Decimal(1)),),
                    price_fen=350_000_000,
                    contract_number=f"HT{run}-{n:04d}",
                    office_code=office.code,
                )
                async with register_transaction(kv=kv) as tx:
                    case_id = await open_transfer(
                        tx, application, vault=vault, kv=kv, clock=clock, hotline="12345"
                    )
                case = await RegistrationCase.get(id=case_id)
                await cases.declaration_filed(
                    case_number=case.case_number, ref=f"TAX{run}{n:04d}", status="assessed"
                )
                await cases.confirm(case_id=case_id, person_id=buyer.id)
                clerk = Actor(kind="staff", id="e2e", office_code=office.code)
                for state in ("accepted", "reviewing", "registered"):
                    await cases.move(case_id=case_id, to_state=state, actor=clerk)
    keys = await UtilityTransferRecord.all().order_by("id").values_list("idempotency_key", flat=True)
    return [str(k) for k in keys]


def _applied_per_key(state: dict[str, Any]) -> dict[str, int]:
    return {
        key: record["applied"]
        for key, record in state["idempotency"].items()
        if record["operation"] in TRANSFER_OPERATIONS and record["applied"]
    }


def _applied_total(state: dict[str, Any]) -> int:
    return sum(state["applied"].get(op, 0) for op in TRANSFER_OPERATIONS)


async def start_worker(tmp_path: Path, name: str, url: str, env: dict[str, str]) -> Process:
    """`python -m api worker` with the application's own handlers; retries in milliseconds."""
    return await Process.start(
        tmp_path / f"worker-{name}.log",
        "-m", "api", "worker",
        "--database-url", url,
        "--worker-id", name,
        "--lease-s", str(LEASE_S),
        "--poll-s", "0.05",
        "--batch-size", "8",
        "--concurrency", "8",
        "--backoff-base-s", "0.05",
        "--backoff-cap-s", "0.5",
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "backend", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_worker_killed_mid_drain_applies_every_utility_transfer_once(
    backend: str, simulators: dict[str, str], tmp_path: Path, settings: Settings, vault: PiiVault
) -> None:
    utilities_url = simulators["utilities_simulator_url"]
    run = uuid.uuid4().hex[:6]
    async with migrated_database(backend, tmp_path) as url, httpx.AsyncClient(timeout=5) as sim:
        in_process = settings.model_copy(update=simulators)
        keys = await make_registered_cases(in_process, vault, count=CASES, run=run)
        assert len(keys) == CASES * UTILITIES
        assert await OutboxMessage.filter(topic=UTILITY_TRANSFER.name, status="pending").count() == len(keys)

        faults = [
            {"mode": "latency", "latency_ms": 150},
            {"mode": "drop", "count": 2, "operations": ["portal_file_task"]},  # lost after applying
            {"mode": "drop", "probability": 0.1},
            {"mode": "error", "probability": 0.1},
        ]
        for fault in faults:
            (await sim.post(f"{utilities_url}/_sim/faults", json=fault)).raise_for_status()
        env = worker_env(
            simulators,
            ESTATE_SIMULATORS_IN_PROCESS="false",
            ESTATE_OUTBOX_IN_PROCESS="false",
            ESTATE_KEY_DIR=str(tmp_path / "keys"),
            ESTATE_EXTERNAL_TIMEOUT_S="2",
        )

        a = await start_worker(tmp_path, "A", url, env)
        b: Process | None = None
        try:

            async def a_is_mid_drain() -> bool:
                return _applied_total(await sim_state(sim, utilities_url)) >= len(keys) // 3

            await eventually(a_is_mid_drain, 30, "worker A to apply a third of the transfers", a)
            assert await a.stop(signal.SIGKILL) == -signal.SIGKILL
            at_kill = await UtilityTransferRecord.filter(state=CONFIRMED).count()
            assert at_kill < len(keys), "worker A finished before it was killed"

            b = await start_worker(tmp_path, "B", url, env)

            async def all_confirmed() -> bool:
                return await UtilityTransferRecord.filter(state=CONFIRMED).count() == len(keys)

            await eventually(all_confirmed, LEASE_S + 60, "worker B to confirm every transfer", b)
            assert await b.stop(signal.SIGTERM) == 0, b.tail()
        finally:
            await a.stop()
            if b is not None:
                await b.stop()

        state = await sim_state(sim, utilities_url)
        applied = _applied_per_key(state)
        assert applied == dict.fromkeys(keys, 1)  # every key once, and no key of ours missing
        assert _applied_total(state) == CASES * UTILITIES
        rows = await UtilityTransferRecord.all()
        assert {r.state for r in rows} == {CONFIRMED}
        assert all(r.provider_ref for r in rows)
        # The lost answers were recovered by asking the portal, not by filing a second task.
        portal_rows = [r for r in rows if r.provider in ("water.minhang-jiading", "water.southwest")]
        assert portal_rows and any(r.attempts >= 2 for r in portal_rows)
        messages = await OutboxMessage.filter(topic=UTILITY_TRANSFER.name)
        assert {m.status for m in messages} == {"delivered"}
