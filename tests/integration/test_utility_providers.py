"""Utility providers as the real world presents them, over real HTTP against the utilities
simulator: accounts and arrears, providers that do or do not deduplicate our key, status by our
key, completion with a final meter reading, per-provider timeouts, and probabilistic faults.

The catalogue below has one provider per combination that matters, both adapter styles each with
and without deduplication; the last tests check the shipped config/providers.toml."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from config.settings import ConfigurationError
from integrations.base import RetryPolicy
from integrations.errors import RequestRejected, SystemTimeout, SystemUnavailable
from integrations.factory import Integrations, SimulatorSuite, build_integrations
from integrations.testing import SimulatedWorld, fake_utilities, fast_settings, simulated_integrations
from integrations.utilities.base import ARREARS, TransferStatus, UtilityKind, UtilityProvider
from integrations.utilities.config import ProviderCatalogue, parse_providers
from integrations.utilities.http import JsonApiProvider, StaffPortalProvider
from integrations.utilities.simulator import UtilitiesSimulator, account_number

DISTRICT = "310115"
UNIT = "310115001001GB00001F00010001"
EFFECTIVE = date(2026, 6, 1)
PORTAL_TIMEOUT_S = 0.15

# (kind, adapter, dedupes, extra): every kind once, so the catalogue covers the district.
PROVIDERS: dict[str, tuple[UtilityKind, str, bool, dict[str, Any]]] = {
    "water.api": (UtilityKind.WATER, "http-json-v1", True, {}),
    "gas.api-nodedup": (UtilityKind.GAS, "http-json-v1", False, {}),
    "electricity.portal": (UtilityKind.ELECTRICITY, "staff-portal", True, {"timeout_s": PORTAL_TIMEOUT_S}),
    "cable_tv.portal-nodedup": (UtilityKind.CABLE_TV, "staff-portal", False, {}),
}
CATALOGUE = parse_providers(
    {
        "area": {"districts": {DISTRICT: "浦东新区"}},
        "provider": [
            {
                "name": name,
                "kind": kind.value,
                "districts": ["*"],
                "adapter": adapter,
                "dedupes": dedupes,
                **extra,
            }
            for name, (kind, adapter, dedupes, extra) in PROVIDERS.items()
        ],
    }
)
DEDUPING = ["water.api", "electricity.portal"]
NON_DEDUPING = ["gas.api-nodedup", "cable_tv.portal-nodedup"]
BOTH_STYLES = ["water.api", "electricity.portal"]


@dataclass
class World:
    suite: SimulatorSuite
    integrations: Integrations

    @property
    def sim(self) -> UtilitiesSimulator:
        return self.suite.utilities

    def provider(self, name: str) -> UtilityProvider:
        return self.integrations.utilities.provider(name)


@pytest_asyncio.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    settings = fast_settings(external_timeout_s=1.0)
    suite = await SimulatorSuite.start("127.0.0.1", 0, settings=settings, catalogue=CATALOGUE, seed=7)
    try:
        settings = settings.model_copy(update=suite.settings_overrides())
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
            yield World(
                suite=suite,
                integrations=build_integrations(
                    settings,
                    session=session,
                    http_client=client,
                    metrics_registry=CollectorRegistry(),
                    catalogue=CATALOGUE,
                ),
            )
    finally:
        await suite.stop()


@pytest.fixture(autouse=True)
def fresh(world: World) -> None:
    world.suite.reset()
    world.sim.processing_s = 0.0


def key() -> str:
    return uuid.uuid4().hex


async def transfer(provider: UtilityProvider, k: str, account_no: str = "66001234") -> Any:
    return await provider.transfer_account(k, account_no, "P-1", "P-2", UNIT, "某路1号", EFFECTIVE)


def operation_of(name: str) -> str:
    """The simulator's operation for a provider's transfer, by its style."""
    return "portal_file_task" if PROVIDERS[name][1] == "staff-portal" else "transfer_account"


# --- configuration reaches the adapters ----------------------------------------------------------


def test_catalogue_settings_reach_the_adapters(world: World) -> None:
    for name, (_, adapter, dedupes, extra) in PROVIDERS.items():
        provider = world.provider(name)
        assert provider.dedupes is dedupes
        assert isinstance(provider, JsonApiProvider if adapter == "http-json-v1" else StaffPortalProvider)
        expected_timeout = extra.get("timeout_s", 1.0)
        assert provider._timeout.total == expected_timeout
    assert world.sim.non_deduping == frozenset(NON_DEDUPING)


async def test_a_provider_timeout_from_config_is_the_one_applied(world: World) -> None:
    world.sim.set_fault("latency", latency_ms=400)  # under the global 1 s, over the portal's 0.15 s
    assert await world.provider("water.api").lookup_account(UNIT) is not None
    with pytest.raises(SystemTimeout):
        await world.provider("electricity.portal").lookup_account(UNIT)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [({"timeout_s": 0}, "timeout_s"), ({"timeout_s": "5"}, "timeout_s"), ({"dedupes": "no"}, "dedupes")],
)
def test_bad_provider_settings_are_refused(entry: dict[str, Any], problem: str) -> None:
    data = {
        "area": {"districts": {DISTRICT: "浦东新区"}},
        "provider": [
            {"name": "water.x", "kind": "water", "districts": ["*"], "adapter": "http-json-v1", **entry}
        ],
    }
    with pytest.raises(ConfigurationError, match=problem):
        parse_providers(data, require_full_coverage=False)


# --- accounts and arrears --------------------------------------------------------------------------


@pytest.mark.parametrize("name", BOTH_STYLES)
async def test_account_lookup_and_a_removed_account(world: World, name: str) -> None:
    provider = world.provider(name)
    found = await provider.lookup_account(UNIT)
    assert found == account_number(name, UNIT) and len(found) == 10 and found.isdigit()
    assert await provider.lookup_account(UNIT) == found  # deterministic
    world.sim.remove_account(name, UNIT)
    assert await provider.lookup_account(UNIT) is None
    assert await provider.lookup_account(UNIT.replace("0001F", "0002F")) is not None


@pytest.mark.parametrize("name", BOTH_STYLES + NON_DEDUPING)
async def test_arrears_are_a_permanent_refusal_that_applies_nothing(world: World, name: str) -> None:
    provider = world.provider(name)
    account_no = await provider.lookup_account(UNIT)
    assert account_no is not None
    world.sim.set_arrears(name, account_no, 12_345)
    k = key()
    with pytest.raises(RequestRejected) as refused:
        await transfer(provider, k, account_no)
    assert refused.value.code == ARREARS and refused.value.status == 422 and not refused.value.retryable
    assert "123.45" in refused.value.message
    assert world.sim.requests(operation_of(name)) == 1  # not retried
    assert world.sim.applied(key=k) == 0 and world.sim.transfers_of(name) == []
    assert await provider.find_transfer(k) is None
    world.sim.set_arrears(name, account_no, 0)  # settled
    assert (await transfer(provider, key(), account_no)).status is TransferStatus.COMPLETED


# --- deduplication and status by our key ---------------------------------------------------------------


@pytest.mark.parametrize("name", DEDUPING)
async def test_a_deduping_provider_applies_a_resent_key_once(world: World, name: str) -> None:
    provider, k = world.provider(name), key()
    first = await transfer(provider, k)
    assert await transfer(provider, k) == first
    assert world.sim.applied(key=k) == 1 and world.sim.applied_by_key(name) == {k: 1}


@pytest.mark.parametrize("name", NON_DEDUPING)
async def test_a_non_deduping_provider_applies_a_resent_key_twice(world: World, name: str) -> None:
    provider, k = world.provider(name), key()
    first = await transfer(provider, k)
    second = await transfer(provider, k)
    assert first.ref != second.ref
    assert world.sim.applied(key=k) == 2 and world.sim.applied_by_key(name) == {k: 2}
    assert world.sim.state()["idempotency"][k]["applied"] == 2
    assert await provider.find_transfer(k) == first  # the first one filed is the one that counts


@pytest.mark.parametrize("name", NON_DEDUPING)
async def test_a_lost_answer_from_a_non_deduping_provider_is_not_retried(world: World, name: str) -> None:
    provider, k = world.provider(name), key()
    world.sim.set_fault("drop", count=1, operations=[operation_of(name)])
    with pytest.raises(SystemUnavailable):
        await transfer(provider, k)
    assert world.sim.requests(operation_of(name)) == 1 and world.sim.applied(key=k) == 1
    found = await provider.find_transfer(k)  # what the caller asks before sending again
    assert found is not None and found.status is TransferStatus.COMPLETED
    assert world.sim.applied_by_key(name) == {k: 1}


@pytest.mark.parametrize("name", DEDUPING)
async def test_a_lost_answer_from_a_deduping_provider_is_retried_and_applied_once(
    world: World, name: str
) -> None:
    provider, k = world.provider(name), key()
    world.sim.set_fault("drop", count=1, operations=[operation_of(name)])
    done = await transfer(provider, k)
    assert world.sim.requests(operation_of(name)) == 2 and world.sim.applied(key=k) == 1
    assert await provider.find_transfer(k) == done


@pytest.mark.parametrize("name", BOTH_STYLES)
async def test_find_transfer_by_our_key(world: World, name: str) -> None:
    provider, k = world.provider(name), key()
    assert await provider.find_transfer(k) is None
    done = await transfer(provider, k)
    await transfer(provider, key())  # another key, another transfer
    assert await provider.find_transfer(k) == done
    assert (await provider.find_transfer(k)) == await provider.get_transfer(done.ref)


# --- progress and meter readings -------------------------------------------------------------------------


@pytest.mark.parametrize("name", BOTH_STYLES)
async def test_a_completed_transfer_carries_the_final_reading(world: World, name: str) -> None:
    done = await transfer(world.provider(name), key())
    assert done.status is TransferStatus.COMPLETED and done.reason is None
    reading = done.final_reading
    assert reading is not None and reading.unit == ("m3" if name.startswith("water") else "kWh")
    assert reading.read_at.tzinfo is not None and float(reading.value) >= 0
    assert await world.provider(name).get_transfer(done.ref) == done  # the same reading every time


async def test_cable_tv_has_no_meter_reading(world: World) -> None:
    done = await transfer(world.provider("cable_tv.portal-nodedup"), key())
    assert done.status is TransferStatus.COMPLETED and done.final_reading is None


@pytest.mark.parametrize("name", BOTH_STYLES)
async def test_processing_time_gives_submitted_then_completed(world: World, name: str) -> None:
    world.sim.processing_s = 0.2
    provider = world.provider(name)
    filed = await transfer(provider, key())
    assert filed.status is TransferStatus.SUBMITTED and filed.final_reading is None
    assert (await provider.get_transfer(filed.ref)).status is TransferStatus.SUBMITTED
    await asyncio.sleep(0.25)
    done = await provider.get_transfer(filed.ref)
    assert done.status is TransferStatus.COMPLETED and done.final_reading is not None


@pytest.mark.parametrize("name", BOTH_STYLES)
async def test_a_rejected_transfer_carries_the_providers_reason(world: World, name: str) -> None:
    world.sim.processing_s = 60
    provider = world.provider(name)
    filed = await transfer(provider, key())
    world.sim.set_transfer_status(filed.ref, TransferStatus.REJECTED, reason="产权人签字不符")
    rejected = await provider.get_transfer(filed.ref)
    assert rejected.status is TransferStatus.REJECTED and rejected.reason == "产权人签字不符"
    assert rejected.final_reading is None


# --- probabilistic faults over HTTP -----------------------------------------------------------------------


async def _failures(world: World, n: int) -> list[int]:
    """Which of n look-ups failed, each sent once (no retries)."""
    provider = world.provider("water.api")
    retry, provider._retry = provider._retry, RetryPolicy.none()  # type: ignore[attr-defined]
    failed: list[int] = []
    try:
        for i in range(n):
            try:
                await provider.lookup_account(UNIT)
            except SystemUnavailable:
                failed.append(i)
    finally:
        provider._retry = retry  # type: ignore[attr-defined]
    return failed


async def test_a_probabilistic_error_hits_about_its_fraction_reproducibly(world: World) -> None:
    world.sim.set_fault("error", probability=0.1, operations=["lookup_account"])
    first = await _failures(world, 1000)
    assert 60 <= len(first) <= 140
    assert world.sim.requests("lookup_account") == 1000
    world.suite.reset()  # the same seed again
    world.sim.set_fault("error", probability=0.1, operations=["lookup_account"])
    assert await _failures(world, 1000) == first


async def test_faults_combine_and_the_admin_api_takes_a_probability(world: World) -> None:
    async with aiohttp.ClientSession() as http:
        for fault in (
            {"mode": "latency", "latency_ms": 30},
            {"mode": "error", "probability": 1.0, "count": 1},
        ):
            async with http.post(f"{world.sim.base_url}/_sim/faults", json=fault) as response:
                assert response.status == 201
        async with http.post(
            f"{world.sim.base_url}/_sim/faults", json={"mode": "drop", "probability": 2}
        ) as r:
            assert r.status == 400
        async with http.get(f"{world.sim.base_url}/_sim/state") as response:
            faults = (await response.json())["faults"]
    assert [(f["mode"], f["probability"]) for f in faults] == [("latency", None), ("error", 1.0)]
    started = asyncio.get_running_loop().time()
    assert await world.provider("water.api").lookup_account(UNIT) is not None  # 503, then retried
    assert asyncio.get_running_loop().time() - started >= 0.06  # both attempts were delayed
    assert world.sim.state()["faulted"] == {"lookup_account": 2}


# --- the shipped configuration and the fakes -------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def shipped() -> AsyncIterator[SimulatedWorld]:
    async with simulated_integrations(fast_settings()) as w:
        yield w


async def test_shipped_portals_do_not_deduplicate(shipped: SimulatedWorld) -> None:
    catalogue: ProviderCatalogue = shipped.integrations.utilities.catalogue
    portals = {p.name for p in catalogue.providers if p.adapter == "staff-portal"}
    assert portals and all(not catalogue.by_name(name).dedupes for name in portals)
    assert shipped.suite.utilities.non_deduping == frozenset(
        p.name for p in catalogue.providers if not p.dedupes
    )
    portal = shipped.integrations.utilities.provider_for(UtilityKind.WATER, "310151")
    assert portal.name in portals and not portal.dedupes
    k = key()
    account_no = await portal.lookup_account(UNIT)
    assert account_no is not None
    await portal.transfer_account(k, account_no, "P-1", "P-2", UNIT, "崇明区某路1号", EFFECTIVE)
    await portal.transfer_account(k, account_no, "P-1", "P-2", UNIT, "崇明区某路1号", EFFECTIVE)
    assert shipped.suite.utilities.applied_by_key(portal.name) == {k: 2}


async def test_the_fake_follows_the_simulators_rules(world: World) -> None:
    router = fake_utilities(CATALOGUE)
    for name in PROVIDERS:
        fake, real = router.provider(name), world.provider(name)
        assert fake.dedupes is real.dedupes
        assert await fake.lookup_account(UNIT) == await real.lookup_account(UNIT)
        k = key()
        got, expected = await transfer(fake, k), await transfer(real, k)
        assert got.status is expected.status
        assert (got.final_reading is None) is (expected.final_reading is None)
        if got.final_reading is not None and expected.final_reading is not None:
            assert got.final_reading.unit == expected.final_reading.unit
        await transfer(fake, k)
        await transfer(real, k)
        expected_applied = 1 if real.dedupes else 2
        assert fake.applied(key=k) == world.sim.applied(key=k) == expected_applied  # type: ignore[attr-defined]
        assert (await fake.find_transfer(k)) is not None and await fake.find_transfer(key()) is None
    water = router.provider("water.api")
    water.set_arrears("66001234", 100)  # type: ignore[attr-defined]
    with pytest.raises(RequestRejected) as refused:
        await transfer(water, key())
    assert refused.value.code == ARREARS
    water.remove_account(UNIT)  # type: ignore[attr-defined]
    assert await water.lookup_account(UNIT) is None
