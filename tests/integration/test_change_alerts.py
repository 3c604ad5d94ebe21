"""Register changes: alerts to every holder (inbox + SMS through the outbox), the inbox routes,
and property lists that are never served stale once a change has committed."""

from __future__ import annotations

import asyncio
from datetime import date

import orjson
import pytest

from services.errors import InvalidCaseTransition, RegisterStateConflict, ValidationFailed
from services.messages.models import InboxMessage
from services.outbox.models import OutboxMessage
from services.registry import changes as registry_changes
from services.registry.models import PropertyPage, RealEstateUnit
from services.registry.properties import PropertyFilters, list_properties
from tests.factories import (
    create_organisation,
    create_person,
    create_right,
    make_certificate_number,
    phone_of,
)
from tests.integration.citizen_support import citizen_headers, wait_for_sms
from tests.integration.test_wards import WARDS, make_family

LIST = "/api/v1/me/properties"
MESSAGES = "/api/v1/me/messages"


def deps(app):
    return {"kv": app.services.kv, "clock": app.services.clock}


def proof_number() -> str:
    return make_certificate_number(kind="registration")


async def test_every_change_alerts_every_holder_in_app_and_by_sms(client, app, vault):
    a = await create_person(vault=vault, name="王小明")
    b = await create_person(vault=vault, phone=None)  # no phone: in-app only
    buyer = await create_person(vault=vault)
    bank = await create_organisation(kind="bank")
    right = await create_right(holders=[(a, "0.5"), (b, "0.5")])
    d = deps(app)
    mortgage = await registry_changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=10_000_00,
        term_start=date(2025, 1, 1),
        term_end=date(2035, 1, 1),
        certificate_number=proof_number(),
        **d,
    )
    await registry_changes.cancel_mortgage(mortgage_id=mortgage.id, **d)
    seizure = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="seizure",
        authority="上海市第一中级人民法院",
        document_number="(2025)沪01执9号",
        starts_on=date(2025, 3, 1),
        **d,
    )
    await registry_changes.lift_encumbrance(encumbrance_id=seizure.id, **d)
    objection = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="objection",
        authority="李*",
        document_number="YY-2",
        starts_on=date(2025, 4, 1),
        **d,
    )
    await registry_changes.lift_encumbrance(encumbrance_id=objection.id, **d)
    case = await registry_changes.start_case(
        unit_id=right.unit.id, kind="transfer", case_number=f"T{right.id:012d}", **d
    )
    await registry_changes.advance_case(case_id=case.id, state="accepted", **d)
    new = await registry_changes.register_transfer(
        right_id=right.id, new_holders=[(buyer.id, "1")], certificate_number=make_certificate_number(), **d
    )
    events = [
        "抵押权登记", "抵押权注销登记", "查封登记", "解除查封登记", "异议登记", "异议注销登记",
        "转移登记申请", "转移登记已受理", "转移登记",
    ]  # fmt: skip

    # In-app, through the API, newest first, for both old holders; the buyer only for the transfer.
    for person in (a, b):
        page = (
            await client.get(MESSAGES, params={"limit": 100}, headers=citizen_headers(app, person))
        ).json()
        assert [m["data"]["event"] for m in page["items"]] == events[::-1]
        assert page["unread_count"] == len(events)
        assert all(
            m["kind"] == "property_change" and right.unit.unit_number in m["body"] for m in page["items"]
        )
    page = (await client.get(MESSAGES, headers=citizen_headers(app, buyer))).json()
    assert [(m["data"]["event"], m["data"]["right_id"]) for m in page["items"]] == [("转移登记", new.id)]

    # SMS through the outbox to the SMS simulator, one per event, none for the holder without a phone.
    sent = await wait_for_sms(app, phone_of(a, vault=vault), "property_alert", len(events))
    assert sorted(m["params"]["event"] for m in sent) == sorted(events)  # the outbox does not promise order
    assert sent[0]["params"]["unit_number"] == right.unit.unit_number
    assert sent[0]["params"]["hotline"] == registry_changes.DEFAULT_HOTLINE
    assert len(await wait_for_sms(app, phone_of(buyer, vault=vault), "property_alert", 1)) == 1
    b_messages = await InboxMessage.filter(person_id=b.id).values_list("id", flat=True)
    assert len(b_messages) == len(events)
    keys = [f"property-alert:{i}" for i in b_messages]
    assert await OutboxMessage.filter(idempotency_key__in=keys).count() == 0


async def test_inbox_pagination_and_read_marks(client, app, vault):
    me = await create_person(vault=vault)
    other = await create_person(vault=vault)
    right = await create_right(holders=[(me, "1")])
    for n in range(3):
        await registry_changes.register_encumbrance(
            right_id=right.id,
            kind="objection",
            authority="某*",
            document_number=f"YY-{n}",
            starts_on=date(2025, 1, 1),
            **deps(app),
        )
    headers = citizen_headers(app, me)
    first = (await client.get(MESSAGES, params={"limit": 2}, headers=headers)).json()
    second = (
        await client.get(MESSAGES, params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers)
    ).json()
    ids = [m["message_id"] for m in first["items"] + second["items"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True) and second["next_cursor"] is None
    assert first["unread_count"] == 3

    r = await client.post(f"{MESSAGES}/{ids[0]}/read", headers=headers)
    assert r.status_code == 200 and r.json()["read"] is True
    again = await client.post(f"{MESSAGES}/{ids[0]}/read", headers=headers)
    assert again.json()["read_at"] == r.json()["read_at"], "idempotent: the first read time stays"
    page = (await client.get(MESSAGES, params={"unread_only": "true"}, headers=headers)).json()
    assert page["unread_count"] == 2 and [m["message_id"] for m in page["items"]] == ids[1:]
    r = await client.post(f"{MESSAGES}/{ids[1]}/read", headers=citizen_headers(app, other))
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


# --- the cache -----------------------------------------------------------------------------------


def _find(page: dict, right_id: int) -> dict | None:
    return next((i for i in page["items"] if i["right_id"] == right_id), None)


def _item(page: dict, right_id: int) -> dict:
    found = _find(page, right_id)
    assert found is not None, f"right {right_id} is not listed"
    return found


async def test_a_cached_list_is_invalidated_by_every_registry_change(client, app, vault):
    me = await create_person(vault=vault)
    buyer = await create_person(vault=vault)
    right = await create_right(holders=[(me, "1")])
    bank = await create_organisation(kind="bank")
    mine, theirs = citizen_headers(app, me), citizen_headers(app, buyer)
    before = (await client.get(LIST, headers=mine)).json()
    assert (await client.get(LIST, headers=theirs)).json()["items"] == []

    # Proof that lists are served from the cache: a write that bypasses registry_changes is not seen.
    await RealEstateUnit.filter(id=right.unit.id).update(address="改过的地址1号")
    assert (await client.get(LIST, headers=mine)).json() == before

    await registry_changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=5,
        term_start=date(2025, 1, 1),
        term_end=date(2026, 1, 1),
        certificate_number=proof_number(),
        **deps(app),
    )
    item = _item((await client.get(LIST, headers=mine)).json(), right.id)
    assert len(item["encumbrances"]["mortgages"]) == 1
    assert item["address"] == "改过的地址1号"

    case = await registry_changes.start_case(
        unit_id=right.unit.id, kind="change", case_number=f"K{right.id:012d}", **deps(app)
    )
    assert _item((await client.get(LIST, headers=mine)).json(), right.id)["registration_in_progress"] is True
    await registry_changes.advance_case(case_id=case.id, state="not_accepted", reason="材料不全", **deps(app))
    assert _item((await client.get(LIST, headers=mine)).json(), right.id)["registration_in_progress"] is False

    new = await registry_changes.register_transfer(
        right_id=right.id,
        new_holders=[(buyer.id, "1")],
        certificate_number=make_certificate_number(),
        **deps(app),
    )
    assert _find((await client.get(LIST, headers=mine)).json(), right.id) is None
    assert [i["right_id"] for i in (await client.get(LIST, headers=theirs)).json()["items"]] == [new.id]


async def test_a_guardians_cached_view_of_a_ward_is_invalidated_too(client, app, vault):
    family = await make_family(app, vault)
    guardian = family.guardians[0]
    path = f"{WARDS}/{family.links[guardian.id]}/properties"
    headers = citizen_headers(app, guardian)
    assert (
        _item((await client.get(path, headers=headers)).json(), family.minor_right.id)["encumbrances"][
            "seizures"
        ]
        == []
    )
    await registry_changes.register_encumbrance(
        right_id=family.minor_right.id,
        kind="seizure",
        authority="法院",
        document_number="Z-1",
        starts_on=date(2025, 1, 1),
        **deps(app),
    )
    seizures = _item((await client.get(path, headers=headers)).json(), family.minor_right.id)["encumbrances"][
        "seizures"
    ]
    assert len(seizures) == 1


async def test_a_read_racing_a_change_cannot_put_a_stale_list_back(client, app, vault):
    """The reader reads the database before the change commits and writes the cache after the
    change's invalidation: its stale list must land where no later read looks."""
    from services.registry.cache import cached_property_list

    me = await create_person(vault=vault)
    right = await create_right(holders=[(me, "1")])
    read_done, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> PropertyPage:
        page = await list_properties(person_id=me.id, filters=PropertyFilters(), after_id=None, limit=20)
        read_done.set()
        await release.wait()
        return page

    params = {**PropertyFilters().__dict__, "after": None, "limit": 20}  # the key the route uses
    reader = asyncio.create_task(
        cached_property_list(kv=app.services.kv, person_id=me.id, params=params, ttl_s=300, load=slow_load)
    )
    await read_done.wait()
    await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="objection",
        authority="某*",
        document_number="R-1",
        starts_on=date(2025, 1, 1),
        **deps(app),
    )
    release.set()
    stale = await reader
    stale_body = orjson.loads(orjson.dumps(stale))  # the items as the response carries them
    assert _item(stale_body, right.id)["encumbrances"]["objections"] == []  # what the racing reader saw
    fresh = (await client.get(LIST, headers=citizen_headers(app, me))).json()
    assert len(_item(fresh, right.id)["encumbrances"]["objections"]) == 1


# --- refusals ------------------------------------------------------------------------------------


async def test_changes_refuse_impossible_moves(app, vault):
    me = await create_person(vault=vault)
    right = await create_right(holders=[(me, "1")])
    d = deps(app)
    case = await registry_changes.start_case(
        unit_id=right.unit.id, kind="first", case_number=f"X{right.id:012d}", **d
    )
    with pytest.raises(InvalidCaseTransition):
        await registry_changes.advance_case(case_id=case.id, state="issued", **d)
    objection = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="objection",
        authority="某*",
        document_number="N-1",
        starts_on=date(2025, 1, 1),
        **d,
    )
    await registry_changes.lift_encumbrance(encumbrance_id=objection.id, **d)
    with pytest.raises(RegisterStateConflict):
        await registry_changes.lift_encumbrance(encumbrance_id=objection.id, **d)
    with pytest.raises(ValidationFailed):
        await registry_changes.register_transfer(
            right_id=right.id, new_holders=[(me.id, "0.5")], certificate_number=make_certificate_number(), **d
        )
    await registry_changes.register_transfer(
        right_id=right.id, new_holders=[(me.id, "1")], certificate_number=make_certificate_number(), **d
    )
    with pytest.raises(RegisterStateConflict):  # the right is historical now
        await registry_changes.register_transfer(
            right_id=right.id, new_holders=[(me.id, "1")], certificate_number=make_certificate_number(), **d
        )


async def test_a_seized_right_is_not_transferred_and_a_mortgage_follows_a_transfer(client, app, vault):
    seller, buyer = await create_person(vault=vault), await create_person(vault=vault)
    bank = await create_organisation(kind="bank")
    right = await create_right(holders=[(seller, "1")])
    d = deps(app)
    mortgage = await registry_changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=80_000_000,
        term_start=date(2025, 1, 1),
        term_end=date(2045, 1, 1),
        certificate_number=proof_number(),
        **d,
    )
    seizure = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="seizure",
        authority="某区人民法院",
        document_number="(2026)执1号",
        starts_on=date(2026, 1, 1),
        **d,
    )
    with pytest.raises(RegisterStateConflict) as refused:
        await registry_changes.register_transfer(
            right_id=right.id,
            new_holders=[(buyer.id, "1")],
            certificate_number=make_certificate_number(),
            **d,
        )
    assert refused.value.fields["reason"] == "seized"
    seller_view = (await client.get(LIST, headers=citizen_headers(app, seller))).json()
    assert [i["right_id"] for i in seller_view["items"]] == [right.id], "nothing changed"
    assert (await client.get(LIST, headers=citizen_headers(app, buyer))).json()["items"] == []

    await registry_changes.lift_encumbrance(encumbrance_id=seizure.id, **d)
    new = await registry_changes.register_transfer(
        right_id=right.id, new_holders=[(buyer.id, "1")], certificate_number=make_certificate_number(), **d
    )
    bought = _item((await client.get(LIST, headers=citizen_headers(app, buyer))).json(), new.id)
    assert [m["mortgage_id"] for m in bought["encumbrances"]["mortgages"]] == [mortgage.id]
    assert bought["encumbrances"]["mortgages"][0]["amount_fen"] == 80_000_000
    assert (await client.get(LIST, headers=citizen_headers(app, seller))).json()["items"] == []
