"""The in-memory fakes keep the contracts' promises: one effect per idempotency key, the simulators'
refusal codes, and faults that surface as the contract's errors (through the contract's `_call`)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from integrations.appointment_centre.base import AppointmentPush
from integrations.base import RetryPolicy
from integrations.civil_registry.base import GuardianshipChangeKind, Relation
from integrations.elicense.base import LicenseStatus
from integrations.errors import (
    AdapterNotConfigured,
    MalformedResponse,
    RequestRejected,
    SystemTimeout,
    SystemUnavailable,
)
from integrations.testing import (
    FakeAppointmentCentre,
    FakeBanks,
    FakeCivilRegistry,
    FakeElicense,
    FakeSms,
    FakeTax,
    fake_utilities,
)
from integrations.utilities.base import TransferStatus, UtilityKind
from integrations.utilities.config import parse_providers

NOW = datetime(2030, 6, 1, 2, 0, tzinfo=UTC)
SLOT = NOW + timedelta(days=1, minutes=30)
UNIT = "310115001001GB00001F00010001"
LOGIN = {"code": "123456", "minutes": "5"}
FATHER, CHILD, STRANGER = "110105198001010016", "110105201501010017", "110105199003071239"


def clock() -> datetime:
    return NOW


async def refused(call: Awaitable[Any]) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        await call
    return caught.value


# --- what every fake shares (shown on the tax fake) -----------------------------------------------


async def test_a_repeated_key_replays_the_first_answer_without_applying_again() -> None:
    tax = FakeTax(clock=clock)
    first = await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    again = await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    assert first == again and first.ref == "TA00000001"
    assert tax.applied("book_appointment") == 1 and tax.applied(key="k1") == 1 and len(tax.bookings) == 1


async def test_a_key_reused_for_another_request_or_missing_is_refused() -> None:
    tax = FakeTax(clock=clock)
    await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    reused = await refused(tax.book_appointment("k1", "TAX-PD", SLOT, "P2", "C1"))
    assert (reused.code, reused.status) == ("IDEMPOTENCY_KEY_REUSED", 422)
    other_operation = await refused(tax.cancel_appointment("k1", "TA00000001"))
    assert other_operation.code == "IDEMPOTENCY_KEY_REUSED"
    missing = await refused(tax.book_appointment(" ", "TAX-PD", SLOT, "P1", "C1"))
    assert (missing.code, missing.status) == ("IDEMPOTENCY_KEY_REQUIRED", 400)
    assert tax.applied() == 1


async def test_a_refusal_is_stored_under_its_key_and_replayed() -> None:
    tax = FakeTax(clock=clock)
    for _ in range(2):
        first = await refused(tax.book_appointment("k1", "TAX-PD", NOW - timedelta(hours=1), "P", "C"))
        assert (first.code, first.status, first.system, first.operation) == (
            "SLOT_UNAVAILABLE",
            409,
            "tax",
            "book_appointment",
        )
    assert tax.applied() == 0 and tax.requests("book_appointment") == 2


@pytest.mark.parametrize("error", [SystemUnavailable, SystemTimeout, MalformedResponse])
async def test_a_fault_raises_the_contract_error_and_applies_nothing(error: type) -> None:
    tax = FakeTax(clock=clock)
    tax.fail_next(1, error)
    with pytest.raises(error) as caught:
        await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    assert (caught.value.system, caught.value.operation) == ("tax", "book_appointment")
    assert tax.applied() == 0
    assert (await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")).ref == "TA00000001"


async def test_faults_can_target_operations_and_last_until_cleared() -> None:
    tax = FakeTax(clock=clock)
    tax.fail_next(None, operations=["get_declaration"])
    declaration = await tax.submit_transfer_declaration("k1", "C1", UNIT, ["S"], ["B"], 1_000_000)
    for _ in range(3):
        with pytest.raises(SystemUnavailable):
            await tax.get_declaration(declaration.ref)
    tax.clear_faults()
    assert await tax.get_declaration(declaration.ref) == declaration


async def test_a_lost_answer_applied_the_effect_and_a_retry_with_the_key_replays_it() -> None:
    tax = FakeTax(clock=clock)
    tax.fail_next(1, after_applying=True)
    with pytest.raises(SystemUnavailable):
        await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    assert tax.applied(key="k1") == 1
    assert (await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")).ref == "TA00000001"
    assert tax.applied() == 1


async def test_with_a_retry_policy_unavailability_is_retried_like_the_http_adapter() -> None:
    tax = FakeTax(
        clock=clock, retry=RetryPolicy(attempts=3, initial_backoff_s=0, max_backoff_s=0, jitter_s=0)
    )
    tax.fail_next(2)
    assert (await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")).ref == "TA00000001"
    tax.fail_next(3)
    with pytest.raises(SystemUnavailable) as caught:
        await tax.book_appointment("k2", "TAX-PD", SLOT, "P1", "C2")
    assert caught.value.attempts == 3 and tax.requests("book_appointment") == 6


async def test_the_contract_counts_every_call_in_the_fakes_own_registry() -> None:
    tax = FakeTax(clock=clock)
    tax.fail_next(1)
    with pytest.raises(SystemUnavailable):
        await tax.get_declaration("TD1")
    await refused(tax.get_declaration("TD1"))

    def calls(outcome: str) -> float | None:
        labels = {"system": "tax", "operation": "get_declaration", "outcome": outcome}
        return tax.metrics_registry.get_sample_value("integration_calls_total", labels)

    assert (calls("unavailable"), calls("rejected")) == (1.0, 1.0)


async def test_reset_forgets_effects_keys_and_faults() -> None:
    tax = FakeTax(clock=clock)
    await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")
    tax.fail_next(None)
    tax.reset()
    assert (await tax.book_appointment("k1", "TAX-PD", SLOT, "P1", "C1")).ref == "TA00000001"
    assert tax.applied() == 1


# --- civil registry -------------------------------------------------------------------------------


def registry() -> FakeCivilRegistry:
    fake = FakeCivilRegistry(clock=clock)
    fake.load(
        people=[
            {"id_number": FATHER, "name": "王建国", "household_id": "H-1"},
            {"id_number": CHILD, "name": "王小明", "household_id": "H-1", "relation": "child"},
            {"id_number": STRANGER, "name": "张三"},
        ],
        guardianships=[(FATHER, CHILD, "父亲")],
    )
    return fake


async def test_registry_answers_people_households_and_guardianships() -> None:
    fake = registry()
    person = await fake.get_person(CHILD)
    assert (person.name, person.birth_date, person.alive) == ("王小明", date(2015, 1, 1), True)
    household = await fake.get_household(CHILD)
    assert [(m.id_number, m.relation) for m in household] == [
        (FATHER, Relation.HEAD),
        (CHILD, Relation.CHILD),
    ]
    check = await fake.verify_guardianship(FATHER, CHILD)
    assert (check.verified, check.relation, check.reason) == (True, "父亲", None)
    assert fake.verifications(FATHER, CHILD) == 1


async def test_registry_refuses_with_the_simulators_codes() -> None:
    fake = registry()
    assert (await refused(fake.get_person("110105199003071234"))).code == "INVALID_ID_NUMBER"
    assert (await refused(fake.get_person("110105201501010025"))).status == 404
    assert (await refused(fake.verify_guardianship(STRANGER, CHILD))).code == "GUARDIANSHIP_NOT_FOUND"
    assert (await refused(fake.guardianship_changes("99", 10))).code == "INVALID_CURSOR"
    assert (await refused(fake.guardianship_changes(None, 0))).code == "BAD_REQUEST"


async def test_registry_feed_records_withdrawals_and_continues_from_its_cursor() -> None:
    fake = registry()
    first = await fake.guardianship_changes(None, 10)
    assert [c.kind for c in first.changes] == [GuardianshipChangeKind.ADDED] and first.cursor == "1"
    assert fake.withdraw(FATHER, CHILD)
    later = await fake.guardianship_changes(first.cursor, 10)
    assert [(c.ward_id_number, c.kind) for c in later.changes] == [(CHILD, GuardianshipChangeKind.WITHDRAWN)]
    assert (await fake.guardianship_changes(later.cursor, 10)).changes == []
    fake.fail_next(1, SystemTimeout)
    with pytest.raises(SystemTimeout):
        await fake.verify_guardianship(FATHER, CHILD)


# --- SMS ------------------------------------------------------------------------------------------


async def test_sms_is_sent_once_per_key_and_kept() -> None:
    sms = FakeSms()
    receipt = await sms.send("13800000001", "login_code", LOGIN, "k1")
    assert await sms.send("13800000001", "login_code", LOGIN, "k1") == receipt
    [message] = sms.sent_to("13800000001")
    assert message.message_id == receipt.message_id == "SM0000000001" and "123456" in message.text
    assert (await refused(sms.send("13800000001", "login_code", {**LOGIN, "code": "1"}, "k1"))).code == (
        "IDEMPOTENCY_KEY_REUSED"
    )


async def test_sms_refusals_use_the_contract_codes() -> None:
    sms = FakeSms()
    code = "login_code"
    assert (await refused(sms.send("12345", code, LOGIN, "a"))).code == "PHONE_INVALID"
    assert (await refused(sms.send("13800000001", "NOPE", {}, "b"))).code == "TEMPLATE_UNKNOWN"
    assert (
        await refused(sms.send("13800000001", code, {"code": "1"}, "c"))
    ).code == "TEMPLATE_PARAMS_MISSING"
    sms.api_key_valid = False
    assert (await refused(sms.send("13800000001", code, LOGIN, "d"))).status == 401
    sms.fail_next(1)
    with pytest.raises(SystemUnavailable):
        await sms.send("13800000001", code, LOGIN, "e")
    assert sms.messages == []


# --- tax, e-licence library, appointment centre ---------------------------------------------------


async def test_tax_slots_have_a_capacity_and_declarations_are_assessed() -> None:
    tax = FakeTax(clock=clock)
    for n in range(tax.slot_capacity):
        await tax.book_appointment(f"k{n}", "TAX-PD", SLOT, "P", f"C{n}")
    assert (await refused(tax.book_appointment("full", "TAX-PD", SLOT, "P", "C"))).code == "SLOT_FULL"
    await tax.cancel_appointment("c1", "TA00000001")
    await tax.book_appointment("again", "TAX-PD", SLOT, "P", "C")
    assert (await refused(tax.cancel_appointment("c2", "TA99"))).code == "APPOINTMENT_NOT_FOUND"
    declaration = await tax.submit_transfer_declaration("d1", "C1", UNIT, ["S"], ["B"], 3_000_000_00)
    assert declaration.amount_due_fen == 3_000_000
    assert (await refused(tax.submit_transfer_declaration("d2", "C1", "310", ["S"], ["B"], 1))).code == (
        "INVALID_UNIT_NUMBER"
    )
    assert (await refused(tax.get_declaration("TD99"))).code == "DECLARATION_NOT_FOUND"


async def test_elicense_checks_digests_duplicates_revocation_and_expiry() -> None:
    store = FakeElicense(clock=clock)
    pdf = b"%PDF-1.7 certificate"
    digest = hashlib.sha256(pdf).hexdigest()
    stored = await store.store_license("k1", "NO_HOUSING", "N1", "P1", NOW, date(2030, 5, 1), digest, pdf)
    assert (
        await store.store_license("k1", "NO_HOUSING", "N1", "P1", NOW, date(2030, 5, 1), digest, pdf)
        == stored
    )
    assert (await store.get_license(stored.license_id)).status is LicenseStatus.EXPIRED
    duplicate = store.store_license("k2", "NO_HOUSING", "N1", "P1", NOW, None, digest, pdf)
    assert (await refused(duplicate)).code == "LICENSE_EXISTS"
    assert (await refused(store.store_license("k3", "T", "N2", "P", NOW, None, "00", pdf))).code == (
        "DIGEST_MISMATCH"
    )
    await store.revoke_license("r1", stored.license_id, "superseded")
    assert (await refused(store.revoke_license("r2", stored.license_id, "again"))).code == "ALREADY_REVOKED"
    assert (await refused(store.get_license("EL0"))).code == "LICENSE_NOT_FOUND"


async def test_appointment_centre_books_one_appointment_per_source_reference() -> None:
    centre = FakeAppointmentCentre()
    push = AppointmentPush("A-1", "PD-01", "transfer", SLOT, SLOT + timedelta(minutes=30), "P1", True)
    receipt = await centre.push_appointment("k1", push)
    assert (await refused(centre.push_appointment("k2", push))).code == "DUPLICATE_APPOINTMENT"
    await centre.cancel_appointment("c1", receipt.centre_ref)
    assert (await centre.push_appointment("k3", push)).centre_ref == "YY00000002"
    assert (await refused(centre.cancel_appointment("c2", "YY0"))).code == "APPOINTMENT_NOT_FOUND"


# --- utilities and banks --------------------------------------------------------------------------

CATALOGUE = parse_providers(
    {
        "area": {"districts": {"310115": "浦东新区"}},
        "provider": [
            {"name": f"{kind.value}.acme", "kind": kind.value, "districts": ["*"], "adapter": "http-json-v1"}
            for kind in UtilityKind
        ],
    }
)


async def test_utilities_route_to_fakes_that_refuse_bad_accounts() -> None:
    router = fake_utilities(CATALOGUE, processing_s=3600)  # still with the clerks when we look
    water = router.provider_for(UtilityKind.WATER, "310115")
    transfer = await water.transfer_account("k1", "12345678", "A", "B", UNIT, "浦东路 1 号", date(2030, 7, 1))
    assert transfer.status is TransferStatus.SUBMITTED
    router.provider("water.acme").set_transfer_status(transfer.ref, TransferStatus.COMPLETED)  # type: ignore[attr-defined]
    assert (await water.get_transfer(transfer.ref)).status is TransferStatus.COMPLETED
    bad = water.transfer_account("k2", "12-34", "A", "B", UNIT, "浦东路 1 号", date(2030, 7, 1))
    assert (await refused(bad)).code == "INVALID_ACCOUNT"
    assert (await refused(water.get_transfer("UT0"))).code == "TRANSFER_NOT_FOUND"
    with pytest.raises(AdapterNotConfigured):
        router.provider_for(UtilityKind.GAS, "310101")


async def test_banks_acknowledge_once_refuse_unknown_filings_and_unconfigured_banks() -> None:
    banks = FakeBanks(["icbc-sh"])
    ack = await banks.notify_filing("k1", "icbc-sh", "F1", "registered", "沪(2030)1号", "")
    assert await banks.notify_filing("k1", "icbc-sh", "F1", "registered", "沪(2030)1号", "") == ack
    assert ack.receipt_no == "ICBC-SH-00000001" and len(banks.received("icbc-sh")) == 1
    banks.unknown_filings.add("F2")
    assert (await refused(banks.notify_filing("k2", "icbc-sh", "F2", "registered", None, ""))).code == (
        "UNKNOWN_FILING"
    )
    with pytest.raises(AdapterNotConfigured):
        await banks.notify_filing("k3", "nobank", "F1", "registered", None, "")
    banks.fail_next(1, SystemTimeout)
    with pytest.raises(SystemTimeout):
        await banks.notify_filing("k4", "icbc-sh", "F3", "registered", None, "")
