"""Each system's contract through its real HTTP adapter against its simulator: happy paths and the
remote refusals services act on."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio

from integrations.appointment_centre.base import AppointmentPush
from integrations.civil_registry.base import Gender, Relation
from integrations.elicense.base import LicenseStatus
from integrations.errors import RequestRejected, SystemTimeout, SystemUnavailable
from integrations.tax.base import DeclarationStatus
from integrations.testing import SimulatedWorld, fast_settings, simulated_integrations

FATHER = "110105198001010016"
MOTHER = "110105198203040029"
CHILD = "110105201501010017"
GRANDMA = "11010519491231002X"
STRANGER = "110105199003071239"
UNIT = "310115001001GB00001F00010001"
SLOT = (datetime.now(UTC) + timedelta(days=2)).replace(hour=1, minute=30, second=0, microsecond=0)


@pytest_asyncio.fixture(scope="module")
async def world():
    async with simulated_integrations(fast_settings()) as w:
        yield w


@pytest.fixture(autouse=True)
def fresh(world: SimulatedWorld) -> None:
    world.suite.reset()
    registry = world.suite.civil_registry
    registry.clear_data()
    registry.load(
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
        guardianships=[
            (FATHER, CHILD, "父亲"),
            (MOTHER, CHILD, "母亲"),
            (GRANDMA, FATHER, "母亲"),
            (GRANDMA, CHILD, "祖母"),
        ],
    )


def key() -> str:
    return uuid.uuid4().hex


# --- civil registry -------------------------------------------------------------------------------


async def test_person_is_read_with_fields_from_the_id_number(world: SimulatedWorld) -> None:
    person = await world.integrations.civil_registry.get_person(MOTHER)
    assert (person.id_number, person.name, person.birth_date) == (MOTHER, "李秀英", date(1982, 3, 4))
    assert person.gender is Gender.FEMALE and person.alive
    assert (await world.integrations.civil_registry.get_person(GRANDMA)).alive is False


async def test_household_lists_every_member_with_relation(world: SimulatedWorld) -> None:
    members = await world.integrations.civil_registry.get_household(CHILD)
    assert [(m.id_number, m.relation) for m in members] == [
        (FATHER, Relation.HEAD),
        (GRANDMA, Relation.PARENT),
        (MOTHER, Relation.SPOUSE),
        (CHILD, Relation.CHILD),
    ]
    alone = await world.integrations.civil_registry.get_household(STRANGER)
    assert [(m.name, m.relation) for m in alone] == [("张三", Relation.HEAD)]


async def test_guardianship_of_a_minor_is_verified(world: SimulatedWorld) -> None:
    check = await world.integrations.civil_registry.verify_guardianship(MOTHER, CHILD)
    assert check.verified and check.relation == "母亲" and check.reason is None


async def test_recorded_guardianship_that_no_longer_holds_is_not_verified(world: SimulatedWorld) -> None:
    check = await world.integrations.civil_registry.verify_guardianship(GRANDMA, FATHER)
    assert not check.verified
    assert check.reason == "WARD_OF_AGE"  # the ward is over 40
    deceased = await world.integrations.civil_registry.verify_guardianship(GRANDMA, CHILD)
    assert (deceased.verified, deceased.reason, deceased.relation) == (False, "GUARDIAN_DECEASED", "祖母")


async def test_guardianship_not_on_record_is_rejected(world: SimulatedWorld) -> None:
    with pytest.raises(RequestRejected) as caught:
        await world.integrations.civil_registry.verify_guardianship(STRANGER, CHILD)
    assert caught.value.code == "GUARDIANSHIP_NOT_FOUND" and caught.value.status == 404


async def test_unknown_or_invalid_id_numbers_are_rejected(world: SimulatedWorld) -> None:
    with pytest.raises(RequestRejected) as unknown:
        await world.integrations.civil_registry.verify_guardianship(FATHER, "110105201501010025")
    assert unknown.value.code == "PERSON_NOT_FOUND"
    with pytest.raises(RequestRejected) as invalid:
        await world.integrations.civil_registry.get_person("110105199003071234")
    assert invalid.value.code == "INVALID_ID_NUMBER" and invalid.value.status == 400


async def test_registry_data_can_be_replaced_over_http(world: SimulatedWorld) -> None:
    url = world.suite.civil_registry.base_url + "/_sim/data"
    data = {
        "people": [{"id_number": STRANGER, "name": "张三丰", "gender": "male", "birth_date": "1990-03-07"}],
        "guardianships": [],
    }
    async with aiohttp.ClientSession() as http, http.put(url, json=data) as response:
        assert response.status == 200
        assert await response.json() == {"people": 1, "guardianships": 0}
    assert (await world.integrations.civil_registry.get_person(STRANGER)).name == "张三丰"
    with pytest.raises(RequestRejected):
        await world.integrations.civil_registry.get_person(FATHER)


# --- tax --------------------------------------------------------------------------------------------


async def test_tax_appointment_is_booked_and_cancelled(world: SimulatedWorld) -> None:
    tax = world.integrations.tax
    booking = await tax.book_appointment(key(), "PD01", SLOT, "P-1", "C-1")
    assert booking.ref.startswith("TA")
    assert world.suite.tax.bookings[booking.ref].case_ref == "C-1"
    await tax.cancel_appointment(key(), booking.ref)
    assert world.suite.tax.bookings[booking.ref].cancelled
    with pytest.raises(RequestRejected) as caught:
        await tax.cancel_appointment(key(), "TA99999999")
    assert caught.value.code == "APPOINTMENT_NOT_FOUND"


async def test_tax_slot_capacity_and_slot_rules(world: SimulatedWorld) -> None:
    tax = world.integrations.tax
    for n in range(world.suite.tax.slot_capacity):
        await tax.book_appointment(key(), "PD02", SLOT, f"P-{n}", f"C-{n}")
    with pytest.raises(RequestRejected) as full:
        await tax.book_appointment(key(), "PD02", SLOT, "P-x", "C-x")
    assert full.value.code == "SLOT_FULL"
    with pytest.raises(RequestRejected) as odd:
        await tax.book_appointment(key(), "PD02", SLOT + timedelta(minutes=7), "P-x", "C-x")
    assert odd.value.code == "SLOT_UNAVAILABLE"
    with pytest.raises(ValueError, match="timezone-aware"):
        await tax.book_appointment(key(), "PD02", SLOT.replace(tzinfo=None), "P-x", "C-x")


async def test_transfer_declaration_is_assessed_and_read_back(world: SimulatedWorld) -> None:
    tax = world.integrations.tax
    declaration = await tax.submit_transfer_declaration(
        key(), "C-1", UNIT, ["S-1"], ["B-1", "B-2"], 500_000_00
    )
    assert declaration.status is DeclarationStatus.ASSESSED
    assert declaration.amount_due_fen == 500_000  # illustrative 1 % of 500 000.00 yuan, in fen
    assert await tax.get_declaration(declaration.ref) == declaration
    world.suite.tax.set_declaration_state(declaration.ref, "02")
    assert (await tax.get_declaration(declaration.ref)).status is DeclarationStatus.PAID
    with pytest.raises(RequestRejected) as caught:
        await tax.submit_transfer_declaration(key(), "C-1", UNIT[:-1], ["S-1"], ["B-1"], 1)
    assert caught.value.code == "INVALID_UNIT_NUMBER"
    with pytest.raises(RequestRejected) as missing:
        await tax.get_declaration("TD00000404")
    assert missing.value.code == "DECLARATION_NOT_FOUND"


# --- electronic licences ----------------------------------------------------------------------------


async def test_licence_is_stored_read_and_revoked(world: SimulatedWorld) -> None:
    store = world.integrations.elicense
    pdf = b"%PDF-1.7 no-housing certificate"
    issued = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    stored = await store.store_license(
        key(), "no_housing_certificate", "NH-2026-000001", "P-1", issued, date(2026, 4, 5),
        hashlib.sha256(pdf).hexdigest(), pdf,
    )  # fmt: skip
    assert world.suite.elicense.pdfs[stored.license_id] == pdf
    record = await store.get_license(stored.license_id)
    assert (record.number, record.holder_ref, record.issued_at) == ("NH-2026-000001", "P-1", issued)
    assert record.valid_until == date(2026, 4, 5)
    assert record.pdf_sha256 == hashlib.sha256(pdf).hexdigest()
    assert record.status in {LicenseStatus.VALID, LicenseStatus.EXPIRED}
    await store.revoke_license(key(), stored.license_id, "证书信息有误")
    revoked = await store.get_license(stored.license_id)
    assert revoked.status is LicenseStatus.REVOKED and revoked.revoked_reason == "证书信息有误"
    with pytest.raises(RequestRejected) as again:
        await store.revoke_license(key(), stored.license_id, "again")
    assert again.value.code == "ALREADY_REVOKED"


async def test_unknown_licence_and_wrong_digest_are_rejected(world: SimulatedWorld) -> None:
    store = world.integrations.elicense
    with pytest.raises(RequestRejected) as unknown:
        await store.get_license("EL0000000404")
    assert unknown.value.code == "LICENSE_NOT_FOUND" and unknown.value.status == 404
    with pytest.raises(RequestRejected) as digest:
        await store.store_license(
            key(), "t", "N-1", "P-1", datetime.now(UTC), None, hashlib.sha256(b"other").hexdigest(), b"pdf"
        )
    assert digest.value.code == "DIGEST_MISMATCH"
    assert world.suite.elicense.applied("store_license") == 0


# --- appointment centre -----------------------------------------------------------------------------


def _push(ref: str = "AP-1") -> AppointmentPush:
    return AppointmentPush(
        ref=ref,
        office_code="PD01",
        service="二手房转移登记",
        slot_start=SLOT,
        slot_end=SLOT + timedelta(minutes=30),
        applicant_ref="P-1",
        with_tax=True,
    )


async def test_appointment_is_pushed_and_cancelled(world: SimulatedWorld) -> None:
    centre = world.integrations.appointment_centre
    receipt = await centre.push_appointment(key(), _push())
    stored = world.suite.appointment_centre.appointments[receipt.centre_ref]
    assert stored["source_ref"] == "AP-1" and stored["with_tax"] is True
    with pytest.raises(RequestRejected) as duplicate:
        await centre.push_appointment(key(), _push())
    assert duplicate.value.code == "DUPLICATE_APPOINTMENT"
    await centre.cancel_appointment(key(), receipt.centre_ref)
    assert stored["state"] == "CANCELLED"
    assert (await centre.push_appointment(key(), _push())).centre_ref != receipt.centre_ref


def test_appointment_push_refuses_naive_or_backwards_slots() -> None:
    with pytest.raises(ValueError):
        AppointmentPush("AP", "PD01", "s", SLOT.replace(tzinfo=None), SLOT.replace(tzinfo=None), "P", False)
    with pytest.raises(ValueError):
        AppointmentPush("AP", "PD01", "s", SLOT, SLOT, "P", False)


# --- SMS (httpx) ------------------------------------------------------------------------------------


async def test_sms_is_rendered_and_listed_by_phone_newest_first(world: SimulatedWorld) -> None:
    sms = world.integrations.sms
    first = await sms.send("13800000000", "login_code", {"code": "111111", "minutes": "5"}, key())
    await sms.send("13900000000", "login_code", {"code": "222222", "minutes": "5"}, key())
    await sms.send("13800000000", "login_code", {"code": "333333", "minutes": "5"}, key())
    async with aiohttp.ClientSession() as http:
        url = world.suite.sms.base_url + "/messages"
        async with http.get(url, params={"phone": "13800000000"}) as response:
            listed = await response.json()
        async with http.get(url) as response:
            everything = await response.json()
    assert [m["params"]["code"] for m in listed] == ["333333", "111111"]
    assert listed[-1]["message_id"] == first.message_id
    assert listed[0]["text"] == "【上海不动产登记】您的登录验证码为333333，5分钟内有效。"
    assert listed[0]["template"] == "login_code" and listed[0]["phone"] == "13800000000"
    assert datetime.fromisoformat(listed[0]["sent_at"]).tzinfo is not None
    assert len(everything) == 3


async def test_sms_refusals_are_mapped_from_gateway_codes(world: SimulatedWorld) -> None:
    sms = world.integrations.sms
    cases = [
        ("12345", "login_code", {"code": "1", "minutes": "5"}, "PHONE_INVALID"),
        ("13800000000", "no_such_template", {}, "TEMPLATE_UNKNOWN"),
        ("13800000000", "property_alert", {"unit_number": UNIT}, "TEMPLATE_PARAMS_MISSING"),
    ]
    for phone, template, params, code in cases:
        with pytest.raises(RequestRejected) as caught:
            await sms.send(phone, template, params, key())
        assert caught.value.code == code
    assert world.suite.sms.requests("send") == 3  # refusals are not retried


async def test_sms_with_a_wrong_api_key_is_rejected(world: SimulatedWorld) -> None:
    world.suite.sms.api_key = "rotated"
    try:
        with pytest.raises(RequestRejected) as caught:
            await world.integrations.sms.send(
                "13800000000", "login_code", {"code": "1", "minutes": "5"}, key()
            )
        assert caught.value.code == "API_KEY_INVALID" and caught.value.status == 401
    finally:
        world.suite.sms.api_key = world.settings.sms_gateway_api_key.get_secret_value()


async def test_sms_transport_faults_map_to_our_errors(world: SimulatedWorld) -> None:
    sms, sim = world.integrations.sms, world.suite.sms
    params = {"code": "1", "minutes": "5"}
    sim.set_fault("error", status=503)
    with pytest.raises(SystemUnavailable) as unavailable:
        await sms.send("13800000000", "login_code", params, key())
    assert unavailable.value.attempts == 3 and unavailable.value.status == 503
    sim.clear_faults()
    sim.set_fault("timeout")
    with pytest.raises(SystemTimeout):
        await sms.send("13800000000", "login_code", params, key())
    sim.clear_faults()
    sim.set_fault("latency", latency_ms=100, count=1)
    assert (await sms.send("13800000000", "login_code", params, key())).message_id
    assert sim.applied("send") == 1
