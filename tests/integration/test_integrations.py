"""The shared machinery, over real HTTP: fault modes -> our errors, retries, idempotent effects,
the simulators' admin API, metrics and log masking."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client import CollectorRegistry

from integrations.appointment_centre.base import AppointmentPush
from integrations.base import RetryPolicy, integration_metrics
from integrations.civil_registry.http import HttpCivilRegistry
from integrations.errors import MalformedResponse, RequestRejected, SystemTimeout, SystemUnavailable
from integrations.simulator import Reply, Simulator
from integrations.testing import SimulatedWorld, fast_settings, simulated_integrations
from integrations.utilities.base import UtilityKind

ID = "110105199003071239"
CHILD_ID = "110105201501010017"  # born 2015-01-01, male
UNIT = "310115001001GB00001F00010001"
TOMORROW_10 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)


@pytest_asyncio.fixture(scope="module")
async def world():
    async with simulated_integrations(fast_settings(external_timeout_s=0.3)) as w:
        yield w


@pytest.fixture(autouse=True)
def fresh(world: SimulatedWorld) -> None:
    world.suite.reset()
    world.suite.civil_registry.clear_data()
    world.suite.civil_registry.load(
        people=[
            {"id_number": ID, "name": "张三", "household_id": "H1"},
            {"id_number": CHILD_ID, "name": "张小明", "household_id": "H1", "relation": "child"},
        ],
        guardianships=[(ID, CHILD_ID, "父亲")],
    )


def key() -> str:
    return uuid.uuid4().hex


# --- fault modes mapped to our errors ----------------------------------------------------------


async def test_5xx_becomes_system_unavailable_after_all_retries(world: SimulatedWorld) -> None:
    sim = world.suite.civil_registry
    sim.set_fault("error", status=503)
    with pytest.raises(SystemUnavailable) as caught:
        await world.integrations.civil_registry.get_person(ID)
    assert not isinstance(caught.value, SystemTimeout)
    assert caught.value.status == 503
    assert caught.value.retryable
    assert caught.value.attempts == 3 == sim.requests("get_person")


async def test_transient_5xx_is_retried_to_success(world: SimulatedWorld) -> None:
    sim = world.suite.civil_registry
    sim.set_fault("error", count=2, status=502)
    person = await world.integrations.civil_registry.get_person(ID)
    assert person.name == "张三"
    assert sim.requests("get_person") == 3
    assert sim.state()["faults"] == []  # a counted fault removes itself when used up


async def test_timeout_becomes_system_timeout(world: SimulatedWorld) -> None:
    sim = world.suite.civil_registry
    sim.set_fault("timeout")
    started = time.perf_counter()
    with pytest.raises(SystemTimeout) as caught:
        await world.integrations.civil_registry.get_person(ID)
    assert caught.value.attempts == 3
    assert time.perf_counter() - started < 3  # 3 x 0.3 s timeouts plus small backoff


async def test_latency_under_the_timeout_succeeds(world: SimulatedWorld) -> None:
    world.suite.civil_registry.set_fault("latency", latency_ms=120)
    started = time.perf_counter()
    person = await world.integrations.civil_registry.get_person(ID)
    assert person.name == "张三"
    assert time.perf_counter() - started >= 0.12
    assert world.suite.civil_registry.requests("get_person") == 1


async def test_latency_over_the_timeout_is_a_timeout(world: SimulatedWorld) -> None:
    world.suite.civil_registry.set_fault("latency", latency_ms=1000, count=3)
    with pytest.raises(SystemTimeout):
        await world.integrations.civil_registry.get_person(ID)


async def test_4xx_is_rejected_without_retry(world: SimulatedWorld) -> None:
    sim = world.suite.civil_registry
    with pytest.raises(RequestRejected) as caught:
        await world.integrations.civil_registry.get_person("11010519491231002X")
    assert caught.value.code == "PERSON_NOT_FOUND"
    assert caught.value.status == 404
    assert not caught.value.retryable
    assert sim.requests("get_person") == 1


async def test_injected_4xx_is_rejected_without_retry(world: SimulatedWorld) -> None:
    world.suite.civil_registry.set_fault("error", status=400, count=1)
    with pytest.raises(RequestRejected) as caught:
        await world.integrations.civil_registry.get_person(ID)
    assert caught.value.code == "SIMULATED_FAULT"
    assert world.suite.civil_registry.requests("get_person") == 1


async def test_fault_limited_to_operations(world: SimulatedWorld) -> None:
    world.suite.civil_registry.set_fault("error", operations=["get_household"])
    assert (await world.integrations.civil_registry.get_person(ID)).name == "张三"
    with pytest.raises(SystemUnavailable):
        await world.integrations.civil_registry.get_household(ID)


async def test_connection_refused_is_system_unavailable(world: SimulatedWorld) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    async with aiohttp.ClientSession() as session:
        registry = HttpCivilRegistry(
            base_url=f"http://127.0.0.1:{port}",
            session=session,
            timeout_s=0.3,
            retry=RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01, jitter_s=0),
            metrics=integration_metrics(CollectorRegistry()),
        )
        with pytest.raises(SystemUnavailable) as caught:
            await registry.get_person(ID)
    assert caught.value.attempts == 2


class _Broken(Simulator):
    name = "broken"

    def _setup_routes(self) -> None:
        async def person(request: web.Request) -> Reply:
            return Reply(200, {"id_number": ID, "name": "x", "birth_date": "not a date"})

        async def household(request: web.Request) -> web.Response:
            return web.Response(body=b"<html>oops</html>", content_type="text/html")

        self.route("POST", "/v1/persons/query", "get_person", person, effectful=False)
        self.app.router.add_post("/v1/households/query", household)


async def test_unreadable_answers_are_malformed_response() -> None:
    sim = _Broken()
    await sim.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            registry = HttpCivilRegistry(
                base_url=sim.base_url, session=session, timeout_s=1, retry=RetryPolicy(attempts=3)
            )
            with pytest.raises(MalformedResponse):
                await registry.get_person(ID)
            with pytest.raises(MalformedResponse):
                await registry.get_household(ID)
        assert sim.requests("get_person") == 1  # a contract breach is not retried
    finally:
        await sim.stop()


# --- idempotent effects -----------------------------------------------------------------------


def _effect_calls(world: SimulatedWorld):
    """(simulator, simulator operation, coroutine factory taking an idempotency key)."""
    i = world.integrations
    s = world.suite
    portal_provider = i.utilities.provider_for(UtilityKind.WATER, "310151")
    api_provider = i.utilities.provider_for(UtilityKind.GAS, "310115")
    push = AppointmentPush(
        ref="AP-1",
        office_code="PD01",
        service="transfer",
        slot_start=TOMORROW_10,
        slot_end=TOMORROW_10 + timedelta(minutes=30),
        applicant_ref="P-1",
        with_tax=True,
    )
    return {
        "tax.book_appointment": (
            s.tax,
            "book_appointment",
            lambda k: i.tax.book_appointment(k, "PD01", TOMORROW_10, "P-1", "C-1"),
        ),
        "tax.submit_transfer_declaration": (
            s.tax,
            "submit_transfer_declaration",
            lambda k: i.tax.submit_transfer_declaration(k, "C-1", UNIT, ["P-1"], ["P-2"], 300_000_000),
        ),
        "elicense.store_license": (
            s.elicense,
            "store_license",
            lambda k: i.elicense.store_license(
                k, "no_housing", f"N-{k}", "P-1", datetime.now(UTC), None, _sha(b"%PDF-1"), b"%PDF-1"
            ),
        ),
        "appointment_centre.push_appointment": (
            s.appointment_centre,
            "push_appointment",
            lambda k: i.appointment_centre.push_appointment(k, push),
        ),
        "utilities.json_api": (
            s.utilities,
            "transfer_account",
            lambda k: api_provider.transfer_account(
                k, "12345678", "P-1", "P-2", UNIT, "浦东新区某路1号", date.today()
            ),
        ),
        "utilities.staff_portal": (
            s.utilities,
            "portal_file_task",
            lambda k: portal_provider.transfer_account(
                k, "12345678", "P-1", "P-2", UNIT, "崇明区某路1号", date.today()
            ),
        ),
        "banks.notify_filing": (
            s.banks,
            "receive_callback",
            lambda k: i.banks.notify_filing(
                k, "icbc-sh", "MF-1", "registered", "沪(2026)浦东新区不动产证明第0000001号", "登簿"
            ),
        ),
        "sms.send": (
            s.sms,
            "send",
            lambda k: i.sms.send("13800000000", "login_code", {"code": "123456", "minutes": "5"}, k),
        ),
    }


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


EFFECTS = [
    "tax.book_appointment",
    "tax.submit_transfer_declaration",
    "elicense.store_license",
    "appointment_centre.push_appointment",
    "utilities.json_api",
    # "utilities.staff_portal": the configured portals do not deduplicate, so their transfers are
    # never retried; tests/integration/test_utility_providers.py covers both kinds of portal.
    "banks.notify_filing",
    "sms.send",
]


@pytest.mark.parametrize("effect", EFFECTS)
async def test_dropped_response_is_retried_and_applied_exactly_once(
    world: SimulatedWorld, effect: str
) -> None:
    sim, operation, call = _effect_calls(world)[effect]
    k = key()
    sim.set_fault("drop", count=1, operations=[operation])
    result = await call(k)
    assert result is not None or effect.endswith("cancel")
    assert sim.requests(operation) == 2  # the lost answer, then the replay
    assert sim.applied(key=k) == 1
    assert sim.applied(operation) == 1
    assert sim.state()["idempotency"][k] == {"operation": operation, "applied": 1, "replays": 1}


@pytest.mark.parametrize("effect", ["tax.book_appointment", "sms.send", "banks.notify_filing"])
async def test_later_resend_with_same_key_returns_the_original(world: SimulatedWorld, effect: str) -> None:
    sim, operation, call = _effect_calls(world)[effect]
    k = key()
    sim.set_fault("drop", operations=[operation])  # every answer lost: the caller gives up
    with pytest.raises(SystemUnavailable):
        await call(k)
    assert sim.applied(key=k) == 1
    sim.clear_faults()
    first = await call(k)  # e.g. the outbox tries again later with the same key
    again = await call(k)
    assert first == again
    assert sim.applied(key=k) == 1


async def test_timeout_applies_nothing(world: SimulatedWorld) -> None:
    world.suite.tax.set_fault("timeout", operations=["book_appointment"])
    with pytest.raises(SystemTimeout):
        await world.integrations.tax.book_appointment(key(), "PD01", TOMORROW_10, "P-1", "C-1")
    assert world.suite.tax.applied("book_appointment") == 0
    assert world.suite.tax.requests("book_appointment") == 3


async def test_same_key_for_a_different_request_is_refused(world: SimulatedWorld) -> None:
    k = key()
    await world.integrations.tax.book_appointment(k, "PD01", TOMORROW_10, "P-1", "C-1")
    with pytest.raises(RequestRejected) as caught:
        await world.integrations.tax.book_appointment(k, "PD01", TOMORROW_10, "P-1", "C-2")
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert world.suite.tax.applied("book_appointment") == 1


async def test_effects_without_a_key_are_never_retried(world: SimulatedWorld) -> None:
    tax = world.integrations.tax
    world.suite.tax.set_fault("error", status=503)
    with pytest.raises(SystemUnavailable) as caught:
        await tax._request("book_appointment", "POST", "/v1/appointments", json_body={})  # type: ignore[attr-defined]
    assert caught.value.attempts == 1
    assert world.suite.tax.requests("book_appointment") == 1
    world.suite.tax.clear_faults()
    with pytest.raises(RequestRejected) as refused:
        await tax._request("book_appointment", "POST", "/v1/appointments", json_body={})  # type: ignore[attr-defined]
    assert refused.value.code == "IDEMPOTENCY_KEY_REQUIRED"


# --- admin API over HTTP --------------------------------------------------------------------------


async def test_fault_admin_api(world: SimulatedWorld) -> None:
    sim = world.suite.civil_registry
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim.base_url}/_sim/faults",
            json={"mode": "error", "count": 1, "status": 500, "operations": ["get_person"]},
        ) as response:
            assert response.status == 201
        async with http.post(f"{sim.base_url}/_sim/faults", json={"mode": "explode"}) as response:
            assert response.status == 400
        async with http.post(
            f"{sim.base_url}/_sim/faults", json={"mode": "drop", "operations": ["nope"]}
        ) as r:
            assert r.status == 400
        async with http.get(f"{sim.base_url}/_sim/state") as response:
            state = await response.json()
        assert state["faults"] == [
            {
                "mode": "error",
                "count": 1,
                "latency_ms": None,
                "status": 500,
                "operations": ["get_person"],
                "probability": None,
                "applied": 0,
            }
        ]
        await world.integrations.civil_registry.get_person(ID)  # 500 once, then retried
        async with http.get(f"{sim.base_url}/_sim/state") as response:
            state = await response.json()
        assert state["requests"] == {"get_person": 2}
        assert state["faulted"] == {"get_person": 1}
        assert state["faults"] == []
        async with http.post(f"{sim.base_url}/_sim/faults", json={"mode": "timeout", "count": None}) as r:
            assert r.status == 201
        async with http.delete(f"{sim.base_url}/_sim/faults") as response:
            assert (await response.json()) == {"cleared": 1}
        async with http.post(f"{sim.base_url}/_sim/reset") as response:
            assert response.status == 200
        async with http.get(f"{sim.base_url}/_sim/state") as response:
            state = await response.json()
    assert state["requests"] == {} and state["faults"] == []
    assert state["people"] == 2  # reset keeps the loaded reference data


async def test_reset_forgets_effects_and_keys(world: SimulatedWorld) -> None:
    k = key()
    first = await world.integrations.tax.book_appointment(k, "PD01", TOMORROW_10, "P-1", "C-1")
    world.suite.tax.reset()
    assert world.suite.tax.applied() == 0
    assert world.suite.tax.bookings == {}
    second = await world.integrations.tax.book_appointment(k, "PD01", TOMORROW_10, "P-1", "C-1")
    assert second == first  # numbering starts again, and the effect is applied anew
    assert world.suite.tax.applied(key=k) == 1


# --- observability --------------------------------------------------------------------------------


def _calls(world: SimulatedWorld, system: str, operation: str, outcome: str) -> float:
    value = world.metrics_registry.get_sample_value(
        "integration_calls_total", {"system": system, "operation": operation, "outcome": outcome}
    )
    return value or 0.0


async def test_calls_are_counted_by_system_operation_and_outcome(world: SimulatedWorld) -> None:
    ok, rejected = (_calls(world, "civil_registry", "get_person", o) for o in ("ok", "rejected"))
    retries = (
        world.metrics_registry.get_sample_value(
            "integration_retries_total", {"system": "civil_registry", "operation": "get_person"}
        )
        or 0.0
    )
    world.suite.civil_registry.set_fault("error", count=1)
    await world.integrations.civil_registry.get_person(ID)
    with pytest.raises(RequestRejected):
        await world.integrations.civil_registry.get_person("11010519491231002X")
    assert _calls(world, "civil_registry", "get_person", "ok") == ok + 1
    assert _calls(world, "civil_registry", "get_person", "rejected") == rejected + 1
    assert (
        world.metrics_registry.get_sample_value(
            "integration_retries_total", {"system": "civil_registry", "operation": "get_person"}
        )
        == retries + 1
    )
    assert (
        world.metrics_registry.get_sample_value(
            "integration_call_duration_seconds_count",
            {"system": "civil_registry", "operation": "get_person", "outcome": "ok"},
        )
        == ok + 1
    )


async def test_logs_never_hold_a_full_id_number(
    world: SimulatedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="integrations")
    # import-linter's CLI (tests/unit/test_architecture.py) disables every existing logger in this
    # process through dictConfig; a server process configures logging once.
    logger = logging.getLogger("integrations")
    was_disabled, logger.disabled = logger.disabled, False
    try:
        world.suite.civil_registry.set_fault("error", count=1)
        await world.integrations.civil_registry.get_person(ID)
        await world.integrations.civil_registry.verify_guardianship(ID, CHILD_ID)
        with pytest.raises(RequestRejected):
            await world.integrations.civil_registry.get_person("11010519491231002X")
    finally:
        logger.disabled = was_disabled
    assert caplog.records
    for record in caplog.records:
        dumped = repr(record.__dict__) + record.getMessage()
        assert ID not in dumped and CHILD_ID not in dumped and "11010519491231002X" not in dumped
    assert any(getattr(r, "subject", None) == "1101**********1239" for r in caplog.records)
