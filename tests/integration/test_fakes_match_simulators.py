"""Contract parity: the same scenario, run on the in-memory fakes and on the real HTTP adapters in
front of the simulators, gives the same answers, refusals and applied effects. If a simulator (or an
adapter's code table) changes, this is where the unit tier's fakes are caught drifting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.base import RetryPolicy
from integrations.civil_registry.base import CivilRegistry
from integrations.errors import IntegrationError, RequestRejected, SystemUnavailable
from integrations.sms.base import SmsGateway
from integrations.tax.base import TaxSystem
from integrations.testing import FakeCivilRegistry, FakeSms, FakeTax, fast_settings, simulated_integrations

FATHER = "110105198001010016"
MOTHER = "110105198203040029"
CHILD = "110105201501010017"
GRANDMA = "11010519491231002X"
STRANGER = "110105199003071239"
UNKNOWN = "110105201501010025"
INVALID = "110105199003071234"
UNIT = "310115001001GB00001F00010001"
SLOT = (datetime.now(UTC) + timedelta(days=2)).replace(hour=1, minute=30, second=0, microsecond=0)
LOGIN = {"code": "123456", "minutes": "5"}


@dataclass
class Side:
    """One implementation of the contracts, with the hooks a scenario needs to drive it."""

    civil_registry: CivilRegistry
    tax: TaxSystem
    sms: SmsGateway
    registry_data: Any  # FakeCivilRegistry or CivilRegistrySimulator: load(), withdraw()
    fail_next: Callable[[str, int, bool], None]  # (system, count, after_applying)
    applied: Callable[[str, str], int]  # (system, operation)


async def outcome(call: Awaitable[Any]) -> tuple[Any, ...]:
    """What a caller can observe: the result, or the error's class and (for a refusal) code and status."""
    try:
        return ("ok", await call)
    except RequestRejected as refusal:
        return ("refused", refusal.code, refusal.status)
    except IntegrationError as error:
        return ("error", type(error).__name__, isinstance(error, SystemUnavailable))


def key() -> str:
    return uuid.uuid4().hex


# --- the scenarios --------------------------------------------------------------------------------


async def civil_registry_scenario(side: Side) -> list[Any]:
    side.registry_data.load(
        people=[
            {"id_number": FATHER, "name": "王建国", "household_id": "H-1"},
            {"id_number": MOTHER, "name": "李秀英", "household_id": "H-1", "relation": "spouse"},
            {"id_number": CHILD, "name": "王小明", "household_id": "H-1", "relation": "child"},
            {
                "id_number": GRANDMA,
                "name": "赵桂兰",
                "household_id": "H-1",
                "relation": "parent",
                "alive": False,
            },
            {"id_number": STRANGER, "name": "张三"},
        ],
        guardianships=[(FATHER, CHILD, "父亲"), (MOTHER, CHILD, "母亲"), (GRANDMA, FATHER, "母亲")],
    )
    registry = side.civil_registry
    seen: list[Any] = []
    for id_number in (MOTHER, GRANDMA, UNKNOWN, INVALID):
        seen.append(await outcome(registry.get_person(id_number)))
    for id_number in (CHILD, STRANGER, UNKNOWN):
        seen.append(await outcome(registry.get_household(id_number)))
    for guardian, ward in ((MOTHER, CHILD), (GRANDMA, FATHER), (STRANGER, CHILD), (FATHER, UNKNOWN)):
        seen.append(await outcome(registry.verify_guardianship(guardian, ward)))
    page = await registry.guardianship_changes(None, 2)
    rest = await registry.guardianship_changes(page.cursor, 100)
    side.registry_data.withdraw(MOTHER, CHILD)
    side.registry_data.load(
        people=[{"id_number": FATHER, "name": "王建国", "household_id": "H-1", "alive": False}]
    )
    later = await registry.guardianship_changes(rest.cursor, 100)
    seen += [page, rest, later, await outcome(registry.verify_guardianship(FATHER, CHILD))]
    seen.append(await outcome(registry.guardianship_changes("9999", 10)))
    seen.append(await outcome(registry.guardianship_changes(None, 0)))
    side.fail_next("civil_registry", 2, False)  # retried away: reads are idempotent
    seen.append(await outcome(registry.get_person(MOTHER)))
    side.fail_next("civil_registry", 3, False)  # more faults than attempts
    seen.append(await outcome(registry.verify_guardianship(FATHER, CHILD)))
    return seen


async def sms_scenario(side: Side) -> list[Any]:
    sms = side.sms
    k = key()
    seen = [
        await outcome(sms.send("13800000001", "login_code", LOGIN, k)),
        await outcome(sms.send("13800000001", "login_code", LOGIN, k)),  # replayed
        await outcome(sms.send("13800000001", "login_code", {**LOGIN, "code": "9"}, k)),
        await outcome(sms.send("12345", "login_code", LOGIN, key())),
        await outcome(sms.send("13800000002", "no_such_template", LOGIN, key())),
        await outcome(sms.send("13800000002", "login_code", {"code": "1"}, key())),
    ]
    side.fail_next("sms", 1, True)  # sent, the answer lost: the retry replays
    seen.append(await outcome(sms.send("13800000003", "login_code", LOGIN, key())))
    side.fail_next("sms", 3, False)
    seen.append(await outcome(sms.send("13800000004", "login_code", LOGIN, key())))
    seen.append(side.applied("sms", "send"))
    return seen


async def tax_booking_scenario(side: Side) -> list[Any]:
    tax = side.tax
    k = key()
    seen = [
        await outcome(tax.book_appointment(k, "TAX-PD", SLOT, "P1", "C1")),
        await outcome(tax.book_appointment(k, "TAX-PD", SLOT, "P1", "C1")),
        await outcome(tax.book_appointment(k, "TAX-PD", SLOT, "P2", "C1")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT - timedelta(days=5), "P", "C")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT + timedelta(minutes=10), "P", "C")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT, "P3", "C3")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT, "P4", "C4")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT, "P5", "C5")),  # slot full
        await outcome(tax.cancel_appointment(key(), "TA00000002")),
        await outcome(tax.cancel_appointment(key(), "TA99999999")),
        await outcome(tax.book_appointment(key(), "TAX-PD", SLOT, "P5", "C5")),
        await outcome(tax.submit_transfer_declaration(key(), "C1", UNIT, ["S"], ["B"], 2_500_000_00)),
        await outcome(tax.submit_transfer_declaration(key(), "C1", "3101", ["S"], ["B"], 100)),
        await outcome(tax.get_declaration("TD00000001")),
        await outcome(tax.get_declaration("TD99999999")),
    ]
    side.fail_next("tax", 1, True)
    seen.append(await outcome(tax.book_appointment(key(), "TAX-XH", SLOT, "P6", "C6")))
    side.fail_next("tax", 3, False)
    seen.append(await outcome(tax.book_appointment(key(), "TAX-XH", SLOT, "P7", "C7")))
    seen.append(side.applied("tax", "book_appointment"))
    return seen


# --- the two sides --------------------------------------------------------------------------------

Scenario = Callable[[Side], Awaitable[list[Any]]]


async def on_fakes(scenario: Scenario) -> list[Any]:
    settings = fast_settings()
    retry = RetryPolicy(
        attempts=settings.external_retries + 1, initial_backoff_s=0, max_backoff_s=0, jitter_s=0
    )
    fakes: dict[str, Any] = {
        "civil_registry": FakeCivilRegistry(retry=retry),
        "tax": FakeTax(retry=retry),
        "sms": FakeSms(retry=retry),
    }

    def fail_next(system: str, count: int, after_applying: bool) -> None:
        fakes[system].fail_next(count, after_applying=after_applying)

    side = Side(
        civil_registry=fakes["civil_registry"],
        tax=fakes["tax"],
        sms=fakes["sms"],
        registry_data=fakes["civil_registry"],
        fail_next=fail_next,
        applied=lambda system, operation: fakes[system].applied(operation),
    )
    return await scenario(side)


async def on_simulators(scenario: Scenario) -> list[Any]:
    async with simulated_integrations(fast_settings()) as world:
        suite = world.suite

        def fail_next(system: str, count: int, after_applying: bool) -> None:
            getattr(suite, system).set_fault("drop" if after_applying else "error", count=count)

        side = Side(
            civil_registry=world.integrations.civil_registry,
            tax=world.integrations.tax,
            sms=world.integrations.sms,
            registry_data=suite.civil_registry,
            fail_next=fail_next,
            applied=lambda system, operation: getattr(suite, system).applied(operation),
        )
        return await scenario(side)


@pytest.fixture(
    params=[civil_registry_scenario, sms_scenario, tax_booking_scenario], ids=lambda s: s.__name__
)
async def scenario(request: pytest.FixtureRequest) -> AsyncIterator[Scenario]:
    yield request.param


async def test_the_fake_answers_as_the_adapter_and_simulator_do(scenario: Scenario) -> None:
    on_simulator = await on_simulators(scenario)
    on_fake = await on_fakes(scenario)
    assert len(on_fake) == len(on_simulator)
    for step, (fake, real) in enumerate(zip(on_fake, on_simulator, strict=True)):
        assert fake == real, f"step {step}: fake {fake!r} != simulator {real!r}"
