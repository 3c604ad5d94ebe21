"""Transfer cases with the utility account transfers (issue 12), over HTTP against the real
database and the simulators: the walk from opening to four confirmed utilities, each acceptance
check's own error, the clerk's office scoping, and a permanent refusal of one utility."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from integrations.utilities.base import UtilityKind
from integrations.utilities.simulator import account_number
from services.cases.models import UtilityTransferRecord
from services.messages.models import InboxMessage
from services.outbox.models import OutboxMessage
from services.registry.models import CaseEvent, Person, RegistrationCase, RightHolder
from tests.factories import (
    DEFAULT_CLIENT_SECRET,
    create_api_client,
    create_encumbrance,
    create_mortgage,
    create_office,
    create_person,
    create_right,
    id_number_of,
    make_id_number,
    phone_of,
)
from tests.integration.citizen_support import citizen_headers, wait_for_sms
from tests.integration.test_clerk_queries import staff_headers

TRANSFERS = "/api/v1/me/transfers"


async def wait_for(predicate: Any, *, timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def register_in_civil_registry(app: Any, *people: tuple[str, str]) -> None:
    app.services.simulators.civil_registry.load(people=[{"id_number": n, "name": name} for n, name in people])


async def a_sale(app: Any, vault: Any, *, district: str = "310115") -> dict[str, Any]:
    office = await create_office(district_code=district)
    seller = await create_person(vault=vault)
    right = await create_right(holders=[(seller, 1)], district_code=district)
    buyer = await create_person(vault=vault)
    register_in_civil_registry(app, (id_number_of(buyer, vault=vault), buyer.name))
    return {"office": office, "seller": seller, "buyer": buyer, "right": right}


def application(sale: dict[str, Any], vault: Any, **extra: Any) -> dict[str, Any]:
    buyer = sale["buyer"]
    return {
        "right_id": sale["right"].id,
        "buyers": [{"id_number": id_number_of(buyer, vault=vault), "name": buyer.name, "share": "1"}],
        "price_fen": 350_000_000,
        "contract_number": "HT2026-000123",
        "office_code": sale["office"].code,
        **extra,
    }


async def test_a_transfer_walks_from_opening_to_four_confirmed_utilities(client, app, vault):
    sale = await a_sale(app, vault)
    seller_h = citizen_headers(app, sale["seller"])
    buyer_h = citizen_headers(app, sale["buyer"])
    r = await client.post(TRANSFERS, json=application(sale, vault), headers=seller_h)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["state"] == "applied" and len(case["case_number"]) == 17
    case_id = case["case_id"]

    async def tax_known() -> Any:
        body = (await client.get(f"{TRANSFERS}/{case_id}", headers=seller_h)).json()
        return body["tax"]["status"]

    assert await wait_for(tax_known, what="the tax declaration's answer", timeout_s=5) == "assessed"
    clerk = await staff_headers(client, office=sale["office"].code)
    moves = f"/api/v1/clerk/cases/{case_id}/moves"
    assert (await client.post(moves, json={"to": "accepted"}, headers=clerk)).status_code == 200
    r = await client.post(moves, json={"to": "reviewing"}, headers=clerk)
    assert r.status_code == 409 and r.json()["code"] == "PARTIES_NOT_CONFIRMED"
    r = await client.post(f"{TRANSFERS}/{case_id}/confirm", headers=buyer_h)
    assert r.status_code == 200, r.text
    assert (await client.post(moves, json={"to": "reviewing"}, headers=clerk)).status_code == 200
    r = await client.post(moves, json={"to": "registered"}, headers=clerk)
    assert r.status_code == 200, r.text
    assert r.json()["certificate_number"].startswith("沪(")

    async def all_confirmed() -> Any:
        body = (await client.get(f"{TRANSFERS}/{case_id}", headers=buyer_h)).json()
        states = {u["kind"]: u["state"] for u in body["utilities"]}
        return body if len(states) == 4 and set(states.values()) == {"confirmed"} else None

    body = await wait_for(all_confirmed, what="four confirmed utility transfers")
    assert {u["kind"]: bool(u["final_reading"]) for u in body["utilities"]} == {
        "water": True,
        "electricity": True,
        "gas": True,
        "cable_tv": False,
    }
    holders = await RightHolder.filter(person_id=sale["buyer"].id).count()
    assert holders == 1
    sim = app.services.simulators.utilities
    for record in await UtilityTransferRecord.filter(case_id=case_id):
        assert sim.applied(key=record.idempotency_key) == 1


# --- helpers for the walks below ------------------------------------------------------------------


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is problem+json with this status and stable code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status and body["title"] and body["request_id"]
    return body


async def open_case(client: httpx.AsyncClient, app: Any, sale: dict[str, Any], body: dict[str, Any]) -> int:
    r = await client.post(TRANSFERS, json=body, headers=citizen_headers(app, sale["seller"]))
    assert r.status_code == 201, r.text
    return int(r.json()["case_id"])


async def tax_answered(case_id: int) -> None:
    async def known() -> Any:
        return (await RegistrationCase.get(id=case_id)).tax_status

    await wait_for(known, what="the tax declaration's answer", timeout_s=10)


async def move(
    client: httpx.AsyncClient, clerk: dict[str, str], case_id: int, to: str, reason: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"to": to}
    if reason is not None:
        body["reason"] = reason
    return await client.post(f"/api/v1/clerk/cases/{case_id}/moves", json=body, headers=clerk)


async def registered(
    client: httpx.AsyncClient, app: Any, vault: Any, sale: dict[str, Any], **extra: Any
) -> tuple[int, dict[str, str]]:
    """Open, accept, confirm, review and register a transfer; the case id and the clerk's headers."""
    case_id = await open_case(client, app, sale, application(sale, vault, **extra))
    await tax_answered(case_id)
    clerk = await staff_headers(client, office=sale["office"].code)
    assert (await move(client, clerk, case_id, "accepted")).status_code == 200
    r = await client.post(f"{TRANSFERS}/{case_id}/confirm", headers=citizen_headers(app, sale["buyer"]))
    assert r.status_code == 200, r.text
    assert (await move(client, clerk, case_id, "reviewing")).status_code == 200
    r = await move(client, clerk, case_id, "registered")
    assert r.status_code == 200, r.text
    return case_id, clerk


async def utility_state(client: httpx.AsyncClient, app: Any, person: Any, case_id: int, kind: str) -> Any:
    body = (await client.get(f"{TRANSFERS}/{case_id}", headers=citizen_headers(app, person))).json()
    return next(u for u in body["utilities"] if u["kind"] == kind)


async def settled(
    client: httpx.AsyncClient,
    app: Any,
    person: Any,
    case_id: int,
    kind: str,
    state: str,
    timeout_s: float = 20,
) -> dict[str, Any]:
    async def reached() -> Any:
        u = await utility_state(client, app, person, case_id, kind)
        return u if u["state"] == state else None

    return await wait_for(reached, what=f"{kind} {state}", timeout_s=timeout_s)


async def record_of(case_id: int, kind: str) -> UtilityTransferRecord:
    return await UtilityTransferRecord.get(case_id=case_id, kind=kind)


# --- 1. each acceptance check has its own code ------------------------------------------------------


async def test_each_acceptance_check_fails_with_its_own_code_at_opening(client, app, vault):
    sale = await a_sale(app, vault)
    seller_h = citizen_headers(app, sale["seller"])

    # A right the seller does not hold and one that does not exist: the same 404.
    others = await create_right(holders=[(await create_person(vault=vault), 1)])
    for right_id in (others.id, 2**62):
        r = await client.post(TRANSFERS, json=application(sale, vault, right_id=right_id), headers=seller_h)
        problem(r, 404, "RIGHT_NOT_HELD")
    # Checked before the civil registry is asked: a right one does not hold is no way to learn
    # whether an ID number and a name belong together.
    probe = application(sale, vault, right_id=others.id)
    probe["buyers"] = [{"id_number": make_id_number(), "name": "王五", "share": "1"}]
    problem(await client.post(TRANSFERS, json=probe, headers=seller_h), 404, "RIGHT_NOT_HELD")

    # The buyer: unknown to the civil registry, a wrong name, the seller themself.
    stranger_id = make_id_number()
    body = application(sale, vault)
    body["buyers"] = [{"id_number": stranger_id, "name": "王五", "share": "1"}]
    problem(await client.post(TRANSFERS, json=body, headers=seller_h), 422, "BUYER_NOT_IN_CIVIL_REGISTRY")
    body["buyers"] = [{"id_number": id_number_of(sale["buyer"], vault=vault), "name": "不对", "share": "1"}]
    problem(await client.post(TRANSFERS, json=body, headers=seller_h), 422, "BUYER_IDENTITY_MISMATCH")
    seller_id_number = id_number_of(sale["seller"], vault=vault)
    register_in_civil_registry(app, (seller_id_number, sale["seller"].name))
    body["buyers"] = [{"id_number": seller_id_number, "name": sale["seller"].name, "share": "1"}]
    problem(await client.post(TRANSFERS, json=body, headers=seller_h), 422, "BUYER_IS_SELLER")

    # Seizure, objection, mortgage: each its own code.
    seized = await a_sale(app, vault)
    await create_encumbrance(right=seized["right"], kind="seizure")
    r = await client.post(
        TRANSFERS, json=application(seized, vault), headers=citizen_headers(app, seized["seller"])
    )
    problem(r, 409, "RIGHT_SEIZED")

    objected = await a_sale(app, vault)
    await create_encumbrance(right=objected["right"], kind="objection")
    objected_h = citizen_headers(app, objected["seller"])
    problem(
        await client.post(TRANSFERS, json=application(objected, vault), headers=objected_h),
        409,
        "OBJECTION_PENDING",
    )
    r = await client.post(
        TRANSFERS,
        json=application(objected, vault, objection_consent_ref="异议人同意书-1"),
        headers=objected_h,
    )
    assert r.status_code == 201, r.text

    mortgaged = await a_sale(app, vault)
    await create_mortgage(right=mortgaged["right"])
    mortgaged_h = citizen_headers(app, mortgaged["seller"])
    problem(
        await client.post(TRANSFERS, json=application(mortgaged, vault), headers=mortgaged_h),
        409,
        "MORTGAGE_NOT_RESOLVED",
    )
    r = await client.post(
        TRANSFERS, json=application(mortgaged, vault, mortgage_handling="bank_consent"), headers=mortgaged_h
    )
    problem(r, 422, "VALIDATION_FAILED")

    # A second open on the same right.
    assert (await client.post(TRANSFERS, json=application(sale, vault), headers=seller_h)).status_code == 201
    problem(
        await client.post(TRANSFERS, json=application(sale, vault), headers=seller_h),
        409,
        "TRANSFER_IN_PROGRESS",
    )
    assert await RegistrationCase.filter(right_id=sale["right"].id).count() == 1


async def test_a_mortgage_cancelled_in_the_case_ends_at_registration(client, app, vault):
    sale = await a_sale(app, vault)
    mortgage = await create_mortgage(right=sale["right"])
    case_id, _ = await registered(client, app, vault, sale, mortgage_handling="cancel_in_case")
    await mortgage.refresh_from_db()
    assert mortgage.status == "cancelled" and mortgage.right_id == sale["right"].id  # type: ignore[attr-defined]
    case = await RegistrationCase.get(id=case_id)
    assert case.state == "registered" and case.open_key is None


async def test_with_the_banks_consent_the_mortgage_follows_the_new_right(client, app, vault):
    sale = await a_sale(app, vault)
    mortgage = await create_mortgage(right=sale["right"])
    await registered(client, app, vault, sale, mortgage_handling="bank_consent", bank_consent_ref="XY-同意-7")
    await mortgage.refresh_from_db()
    new_right = await RightHolder.get(person_id=sale["buyer"].id).values_list("right_id", flat=True)
    assert mortgage.status == "active" and mortgage.right_id == new_right  # type: ignore[attr-defined]


async def test_a_seizure_after_opening_stops_the_clerks_acceptance(client, app, vault):
    sale = await a_sale(app, vault)
    case_id = await open_case(client, app, sale, application(sale, vault))
    await tax_answered(case_id)
    await create_encumbrance(right=sale["right"], kind="seizure")
    clerk = await staff_headers(client, office=sale["office"].code)
    before = await CaseEvent.filter(case_id=case_id).count()
    problem(await move(client, clerk, case_id, "accepted"), 409, "RIGHT_SEIZED")
    case = await RegistrationCase.get(id=case_id)
    assert case.state == "applied" and await CaseEvent.filter(case_id=case_id).count() == before


async def test_without_the_tax_answer_the_clerk_cannot_accept(client, app, vault):
    tax = app.services.simulators.tax
    sale = await a_sale(app, vault)
    tax.set_fault("error", operations=["submit_transfer_declaration"])
    try:
        case_id = await open_case(client, app, sale, application(sale, vault))
        clerk = await staff_headers(client, office=sale["office"].code)
        number = (await RegistrationCase.get(id=case_id)).case_number

        async def refused_by_tax() -> Any:
            message = await OutboxMessage.get(idempotency_key=f"tax.declare:{number}")
            return message.attempts >= 1 and message.last_error

        await wait_for(refused_by_tax, what="a failed declaration attempt")
        problem(await move(client, clerk, case_id, "accepted"), 409, "TAX_DECLARATION_PENDING")
        assert (await RegistrationCase.get(id=case_id)).state == "applied"
    finally:
        tax.clear_faults()
    app.services.clock.advance(minutes=30)  # the declaration's retry is due
    await tax_answered(case_id)
    clerk = await staff_headers(client, office=sale["office"].code)  # the first token has expired
    assert (await move(client, clerk, case_id, "accepted")).status_code == 200


async def test_refusals_need_a_reason_and_moves_follow_the_states(client, app, vault):
    sale = await a_sale(app, vault)
    case_id = await open_case(client, app, sale, application(sale, vault))
    clerk = await staff_headers(client, office=sale["office"].code)
    problem(await move(client, clerk, case_id, "not_accepted"), 422, "REASON_REQUIRED")
    problem(await move(client, clerk, case_id, "registered"), 409, "INVALID_CASE_TRANSITION")
    problem(await move(client, clerk, case_id, "reviewing"), 409, "INVALID_CASE_TRANSITION")
    r = await move(client, clerk, case_id, "not_accepted", reason="材料不全")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "not_accepted" and r.json()["reason"] == "材料不全"
    problem(await move(client, clerk, case_id, "accepted"), 409, "INVALID_CASE_TRANSITION")
    # The case ended: the right is free for a new transfer.
    r = await client.post(
        TRANSFERS, json=application(sale, vault), headers=citizen_headers(app, sale["seller"])
    )
    assert r.status_code == 201, r.text


async def test_a_buyer_new_to_the_register_gets_an_encrypted_person_and_sees_the_case(client, app, vault):
    sale = await a_sale(app, vault)
    newcomer_id = make_id_number()
    register_in_civil_registry(app, (newcomer_id, "韩梅梅"))
    body = application(sale, vault)
    body["buyers"] = [{"id_number": newcomer_id, "name": "韩梅梅", "share": "1"}]
    case_id = await open_case(client, app, sale, body)

    person = await Person.get(id_number_index=vault.blind_index(newcomer_id))
    assert person.name == "韩梅梅" and vault.decrypt(person.id_number_enc) == newcomer_id
    raw = await Person.filter(id=person.id).values()
    assert all(newcomer_id not in str(v) for v in raw[0].values()), "the ID number is stored in clear"

    r = await client.get(f"{TRANSFERS}/{case_id}", headers=citizen_headers(app, person))
    assert r.status_code == 200, r.text
    assert [p["role"] for p in r.json()["parties"] if p["you"]] == ["buyer"]
    listed = (await client.get(TRANSFERS, headers=citizen_headers(app, person))).json()["items"]
    assert [c["case_id"] for c in listed] == [case_id]


# --- 2. who sees what ---------------------------------------------------------------------------------


async def test_only_the_parties_and_the_cases_office_see_a_case(client, app, vault):
    sale = await a_sale(app, vault)
    case_id = await open_case(client, app, sale, application(sale, vault))
    stranger = citizen_headers(app, await create_person(vault=vault))
    for path in (f"{TRANSFERS}/{case_id}", f"{TRANSFERS}/{case_id}/confirm"):
        method = "POST" if path.endswith("confirm") else "GET"
        problem(await client.request(method, path, headers=stranger), 404, "NOT_FOUND")
    assert (await client.get(TRANSFERS, headers=stranger)).json()["items"] == []

    other_office = await create_office(district_code="310115")
    elsewhere = await staff_headers(client, office=other_office.code)
    problem(await client.get(f"/api/v1/clerk/cases/{case_id}", headers=elsewhere), 404, "NOT_FOUND")
    problem(await move(client, elsewhere, case_id, "not_accepted", reason="x"), 404, "NOT_FOUND")
    assert case_id not in [
        c["case_id"] for c in (await client.get("/api/v1/clerk/cases", headers=elsewhere)).json()["items"]
    ]
    assert (await RegistrationCase.get(id=case_id)).state == "applied"

    await tax_answered(case_id)
    clerk = await staff_headers(client, office=sale["office"].code)
    listed = (await client.get("/api/v1/clerk/cases", headers=clerk)).json()["items"]
    assert [c["case_id"] for c in listed] == [case_id]
    assert (await move(client, clerk, case_id, "accepted")).status_code == 200
    r = await client.post(f"{TRANSFERS}/{case_id}/confirm", headers=citizen_headers(app, sale["buyer"]))
    assert r.status_code == 200, r.text
    problem(
        await client.post(f"{TRANSFERS}/{case_id}/confirm", headers=citizen_headers(app, sale["buyer"])),
        409,
        "NOTHING_TO_CONFIRM",
    )
    assert (await move(client, clerk, case_id, "reviewing")).status_code == 200
    assert (await move(client, clerk, case_id, "registered")).status_code == 200

    seller, buyer = sale["seller"], sale["buyer"]
    for me, other in ((seller, buyer), (buyer, seller)):
        await settled(client, app, me, case_id, "gas", "confirmed")
        body = (await client.get(f"{TRANSFERS}/{case_id}", headers=citizen_headers(app, me))).json()
        assert {u["kind"] for u in body["utilities"]} == {"water", "electricity", "gas", "cable_tv"}
        names = {p["you"]: p["name"] for p in body["parties"]}
        assert names[True] == me.name
        assert names[False] != other.name and names[False].startswith(other.name[0]) and "*" in names[False]
        assert (
            other.name
            not in (await client.get(f"{TRANSFERS}/{case_id}", headers=citizen_headers(app, me))).text
        )

    body = (await client.get(f"/api/v1/clerk/cases/{case_id}", headers=clerk)).json()
    assert {p["name"] for p in body["parties"]} == {seller.name, buyer.name}
    assert [(e["from_state"], e["to_state"], e["by"]) for e in body["events"]] == [
        (None, "applied", "person"),
        ("applied", "accepted", "staff"),
        ("accepted", "reviewing", "staff"),
        ("reviewing", "registered", "staff"),
    ]
    events = await CaseEvent.filter(case_id=case_id).order_by("id")
    assert events[0].actor_id == str(seller.id)
    assert len({e.actor_id for e in events[1:]}) == 1 and events[1].actor_id != str(seller.id)
    assert all(e.at is not None for e in events)


# --- 3. a permanent refusal of one utility ---------------------------------------------------------------


async def test_arrears_refuse_water_the_others_confirm_and_the_parties_are_told(client, app, vault):
    sim = app.services.simulators.utilities
    sale = await a_sale(app, vault)
    water = app.services.integrations.utilities.provider_for(UtilityKind.WATER, "310115").name
    unit_number = (await sale["right"].unit).unit_number
    sim.set_arrears(water, account_number(water, unit_number), 12_345)
    try:
        case_id, _ = await registered(client, app, vault, sale)
        refused = await settled(client, app, sale["buyer"], case_id, "water", "refused")
        for kind in ("electricity", "gas", "cable_tv"):
            await settled(client, app, sale["seller"], case_id, kind, "confirmed")
    finally:
        sim.set_arrears(water, account_number(water, unit_number), 0)
    assert "ARREARS" in refused["reason"] and "123.45" in refused["reason"]
    assert sim.applied(key=(await record_of(case_id, "water")).idempotency_key) == 0

    for person in (sale["seller"], sale["buyer"]):
        messages = await InboxMessage.filter(person_id=person.id, kind="case_update").values_list(
            "data", flat=True
        )
        assert any(m.get("utility") == "water" and m.get("state") == "refused" for m in messages)
        sms = await wait_for_sms(app, phone_of(person, vault=vault), "utility_transfer_refused", 1)
        assert len(sms) == 1 and sms[0]["params"]["case_number"]


# --- 4. an answer lost after applying, at a provider that cannot deduplicate -------------------------------


async def test_a_dropped_answer_at_a_non_deduplicating_provider_is_one_transfer(client, app, vault):
    sim = app.services.simulators.utilities
    provider = app.services.integrations.utilities.provider_for(UtilityKind.WATER, "310112")
    assert provider.name == "water.minhang-jiading" and not provider.dedupes
    sale = await a_sale(app, vault, district="310112")
    sim.set_fault("drop", count=1, operations=["portal_file_task"])
    try:
        case_id, _ = await registered(client, app, vault, sale)
        water = await settled(client, app, sale["buyer"], case_id, "water", "confirmed")
    finally:
        sim.clear_faults()
    record = await record_of(case_id, "water")
    assert record.attempts >= 2, "the drop was never hit"
    assert sim.applied(key=record.idempotency_key) == 1
    assert sim.applied_by_key(provider.name)[record.idempotency_key] == 1
    assert water["final_reading"] is not None


# --- 5. transient outages: retried; given up on: re-driven by an administrator --------------------------


async def test_a_transient_outage_is_retried_and_confirmed_once(client, app, vault):
    sim = app.services.simulators.utilities
    sale = await a_sale(app, vault)
    faulted_before = sim.state()["faulted"].get("transfer_account", 0)
    sim.set_fault("error", count=3, operations=["transfer_account"])
    try:
        case_id, _ = await registered(client, app, vault, sale)

        async def all_confirmed() -> Any:
            app.services.clock.advance(seconds=5)  # the outbox's backoff runs on the app's clock
            rows = await UtilityTransferRecord.filter(case_id=case_id).values_list("state", flat=True)
            return len(rows) == 4 and set(rows) == {"confirmed"}

        await wait_for(all_confirmed, what="four confirmed utilities")
    finally:
        sim.clear_faults()
    for record in await UtilityTransferRecord.filter(case_id=case_id):
        assert sim.applied(key=record.idempotency_key) == 1
    # The three failures were answered (by the adapter's own retry or the outbox's) and none applied.
    assert sim.state()["faulted"]["transfer_account"] - faulted_before == 3


async def test_a_transfer_the_outbox_gave_up_on_needs_attention_until_redriven(client, app, vault):
    sim = app.services.simulators.utilities
    sale = await a_sale(app, vault)
    sim.set_fault("error", operations=["transfer_account"])  # until cleared
    try:
        case_id, _ = await registered(client, app, vault, sale)
        key = f"utility:{(await RegistrationCase.get(id=case_id)).case_number}:gas"

        async def dead() -> Any:
            message = await OutboxMessage.get(idempotency_key=key)
            if message.status == "dead":
                return True
            if message.lease_owner is None:
                app.services.clock.advance(seconds=700)  # past the longest backoff, one retry at a time
            return False

        await wait_for(dead, what="the gas transfer given up on", timeout_s=30)
        gas = await utility_state(client, app, sale["buyer"], case_id, "gas")
        assert gas["state"] == "needs_attention"
        assert (await utility_state(client, app, sale["seller"], case_id, "gas"))[
            "state"
        ] == "needs_attention"
    finally:
        sim.clear_faults()

    redrive = f"/api/v1/admin/cases/{case_id}/utilities/gas/redrive"
    admin = await staff_headers(client, role="admin")
    r = await client.post(redrive, headers=admin)
    assert r.status_code == 200 and r.json() == {"redriven": 1}, r.text
    await settled(client, app, sale["buyer"], case_id, "gas", "confirmed")
    record = await record_of(case_id, "gas")
    assert sim.applied(key=record.idempotency_key) == 1
    r = await client.post(redrive, headers=await staff_headers(client, role="admin"))
    assert r.json() == {"redriven": 0}  # nothing left to re-drive


async def test_each_role_gets_only_its_own_case_routes(client, app, vault):
    """The id-route walk (test_access_matrix.py) covers outsiders of the right role; here each
    other role: 401 anonymous, 403 for a role the route is not for."""
    sale = await a_sale(app, vault)
    case_id = await open_case(client, app, sale, application(sale, vault))
    bank = await create_api_client()
    r = await client.post(
        "/api/v1/auth/client-tokens",
        data={
            "grant_type": "client_credentials",
            "client_id": bank.client_id,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )
    assert r.status_code == 200, r.text
    roles = {
        "citizen": citizen_headers(app, sale["seller"]),
        "clerk": await staff_headers(client, office=sale["office"].code),
        "admin": await staff_headers(client, role="admin"),
        "bank": {"Authorization": f"Bearer {r.json()['access_token']}"},
    }
    routes = [
        ("POST", TRANSFERS, {"citizen"}),
        ("GET", TRANSFERS, {"citizen"}),
        ("GET", f"{TRANSFERS}/{case_id}", {"citizen"}),
        ("POST", f"{TRANSFERS}/{case_id}/confirm", {"citizen"}),
        ("GET", "/api/v1/clerk/cases", {"clerk"}),
        ("GET", f"/api/v1/clerk/cases/{case_id}", {"clerk"}),
        ("POST", f"/api/v1/clerk/cases/{case_id}/moves", {"clerk"}),
        ("POST", f"/api/v1/admin/cases/{case_id}/utilities/water/redrive", {"admin"}),
    ]
    for method, path, allowed in routes:
        problem(await client.request(method, path, json={}), 401, "AUTHENTICATION_REQUIRED")
        for role, headers in roles.items():
            if role not in allowed:
                r = await client.request(method, path, json={}, headers=headers)
                problem(r, 403, "PERMISSION_DENIED")
    assert (await RegistrationCase.get(id=case_id)).state == "applied"


async def test_opening_a_transfer_refreshes_the_sellers_cached_list(client, app, vault):
    """The opening alerts the holders inside a savepoint; their cached property lists must still
    be invalidated once the case commits, or 我的不动产 keeps saying nothing is in progress."""
    sale = await a_sale(app, vault)
    seller_h = citizen_headers(app, sale["seller"])

    async def in_progress() -> bool:
        items = (await client.get("/api/v1/me/properties", headers=seller_h)).json()["items"]
        return next(i for i in items if i["right_id"] == sale["right"].id)["registration_in_progress"]

    assert await in_progress() is False  # read once: the list is now cached
    r = await client.post(TRANSFERS, json=application(sale, vault), headers=seller_h)
    assert r.status_code == 201, r.text
    assert await in_progress() is True
