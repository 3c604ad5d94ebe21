"""我的不动产 over real HTTP: completeness, co-holders, encumbrances, pagination, 404s, query count."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta

from services.identifiers import mask_id_number
from services.registry import changes as registry_changes
from services.registry.properties import DISTRICT_NAMES, PropertyFilters, list_properties
from tests.factories import (
    create_organisation,
    create_person,
    create_right,
    create_unit,
    make_certificate_number,
    make_phone,
)
from tests.integration.citizen_support import citizen_headers, sign_in_by_sms

LIST = "/api/v1/me/properties"
DISTRICTS = [
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
    "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
]  # fmt: skip


def changes(app):
    return {"kv": app.services.kv, "clock": app.services.clock}


async def test_list_is_complete_across_all_16_districts(client, app, vault):
    phone = make_phone()
    me = await create_person(vault=vault, phone=phone, name="王小明")
    other = await create_person(vault=vault)
    mine = [await create_right(holders=[(me, "1")], district_code=d) for d in DISTRICTS]
    land = await create_right(holders=[(me, "1")], district_code="310151", right_type="land_use")
    old = await create_right(holders=[(me, "1")], district_code="310104", status="historical")
    await create_right(holders=[(other, "1")], district_code="310115")  # not mine

    headers = await sign_in_by_sms(client, app, phone)  # the real sign-in, once
    r = await client.get(LIST, params={"limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None
    assert [i["right_id"] for i in body["items"]] == [x.id for x in [*mine, land]]
    assert {i["district_code"] for i in body["items"]} == set(DISTRICTS)
    first = body["items"][0]
    assert first["district_name"] == DISTRICT_NAMES[first["district_code"]]
    assert first["share"] == "1" and first["co_holders"] == [] and first["status"] == "current"
    assert first["unit_number"] and first["address"] and first["use"] == "residential"
    # 88.50 m² is tests/factories.py's default; 2024 the year of its default registration time.
    assert first["area_m2"] == "88.50" and first["certificate_number"].startswith("沪(2024)")
    assert first["registration_in_progress"] is False
    assert first["encumbrances"] == {"mortgages": [], "seizures": [], "objections": []}

    r = await client.get(LIST, params={"include_historical": "true", "limit": 100}, headers=headers)
    assert old.id in [i["right_id"] for i in r.json()["items"]] and len(r.json()["items"]) == 18
    r = await client.get(LIST, params={"district_code": "310151"}, headers=headers)
    assert [i["right_id"] for i in r.json()["items"]] == [mine[-1].id, land.id]
    r = await client.get(LIST, params={"right_type": "land_use"}, headers=headers)
    assert [i["right_id"] for i in r.json()["items"]] == [land.id]


async def test_a_co_held_right_appears_for_each_holder_with_masked_co_holders(client, app, vault):
    a = await create_person(vault=vault, name="欧阳娜娜")
    b = await create_person(vault=vault, name="李华")
    right = await create_right(holders=[(a, "0.5"), (b, "0.5")])
    for me, co_name in ((a, "李*"), (b, "欧阳**")):
        r = await client.get(LIST, headers=citizen_headers(app, me))
        items = [i for i in r.json()["items"] if i["right_id"] == right.id]
        assert len(items) == 1
        assert items[0]["share"] == "0.5"
        assert items[0]["co_holders"] == [{"kind": "person", "name": co_name, "share": "0.5"}]
        text = r.text
        for person in (a, b):
            id_number = vault.decrypt(person.id_number_enc)
            assert id_number not in text
            assert mask_id_number(id_number) not in text  # no ID numbers at all, not even masked


async def test_encumbrances_and_registration_in_progress(client, app, vault):
    me = await create_person(vault=vault)
    bank = await create_organisation(kind="bank", name="中国工商银行上海市分行")
    right = await create_right(holders=[(me, "1")])
    headers = citizen_headers(app, me)
    mortgage = await registry_changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=150_000_000,
        term_start=date(2024, 1, 1),
        term_end=date(2054, 1, 1),
        certificate_number=make_certificate_number(kind="registration"),
        **changes(app),
    )
    old = await registry_changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=1,
        term_start=date(2020, 1, 1),
        term_end=date(2021, 1, 1),
        certificate_number=make_certificate_number(kind="registration"),
        **changes(app),
    )
    await registry_changes.cancel_mortgage(mortgage_id=old.id, **changes(app))
    seizure = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="seizure",
        authority="上海市浦东新区人民法院",
        document_number="(2025)沪0115执1号",
        starts_on=date(2025, 1, 1),
        ends_on=date(2028, 1, 1),
        **changes(app),
    )
    objection = await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="objection",
        authority="张*",
        document_number="YY-1",
        starts_on=date(2025, 2, 1),
        **changes(app),
    )
    case = await registry_changes.start_case(
        unit_id=right.unit.id,
        kind="transfer",
        case_number=f"C{right.id:012d}",
        right_id=right.id,
        **changes(app),
    )

    item = next(
        i for i in (await client.get(LIST, headers=headers)).json()["items"] if i["right_id"] == right.id
    )
    assert [m["mortgage_id"] for m in item["encumbrances"]["mortgages"]] == [mortgage.id]
    m = item["encumbrances"]["mortgages"][0]
    assert m["mortgagee"] == "中国工商银行上海市分行" and m["amount_fen"] == 150_000_000
    assert (m["term_start"], m["term_end"]) == ("2024-01-01", "2054-01-01")
    assert [e["encumbrance_id"] for e in item["encumbrances"]["seizures"]] == [seizure.id]
    assert [e["encumbrance_id"] for e in item["encumbrances"]["objections"]] == [objection.id]
    assert item["registration_in_progress"] is True

    # Every non-final state counts as in progress; issuing the certificate ends it.
    for state in ("accepted", "reviewing", "registered"):
        await registry_changes.advance_case(case_id=case.id, state=state, **changes(app))
        item = (await client.get(f"{LIST}/{right.id}", headers=headers)).json()
        assert item["registration_in_progress"] is True, state
    await registry_changes.advance_case(case_id=case.id, state="issued", **changes(app))
    await registry_changes.lift_encumbrance(encumbrance_id=seizure.id, **changes(app))
    item = next(
        i for i in (await client.get(LIST, headers=headers)).json()["items"] if i["right_id"] == right.id
    )
    assert item["registration_in_progress"] is False
    assert item["encumbrances"]["seizures"] == []

    detail = (await client.get(f"{LIST}/{right.id}", headers=headers)).json()
    history = detail["encumbrance_history"]
    assert {m["mortgage_id"]: m["status"] for m in history["mortgages"]} == {
        mortgage.id: "active",
        old.id: "cancelled",
    }
    assert [e["status"] for e in history["seizures"]] == ["lifted"]
    assert [(c["case_number"], c["state"], c["in_progress"]) for c in detail["history"]["cases"]] == [
        (case.case_number, "issued", False)
    ]


async def test_detail_shows_earlier_rights_with_masked_holders(client, app, vault):
    seller = await create_person(vault=vault, name="张伟")
    buyer = await create_person(vault=vault, name="陈静")
    unit = await create_unit(district_code="310104")
    first = await create_right(holders=[(seller, "1")], unit=unit)
    second = await registry_changes.register_transfer(
        right_id=first.id,
        new_holders=[(buyer.id, "1")],
        certificate_number=make_certificate_number(district_code="310104"),
        **changes(app),
    )
    r = await client.get(f"{LIST}/{second.id}", headers=citizen_headers(app, buyer))
    assert r.status_code == 200
    body = r.json()
    assert body["history"]["earlier_rights"][0]["holders"] == ["张*"]
    assert body["history"]["earlier_rights"][0]["status"] == "historical"
    assert vault.decrypt(seller.id_number_enc) not in r.text

    # The seller still sees the right they held, as historical, and nothing later.
    r = await client.get(f"{LIST}/{first.id}", headers=citizen_headers(app, seller))
    assert r.status_code == 200 and r.json()["status"] == "historical"
    assert r.json()["history"]["earlier_rights"] == []
    assert (await client.get(f"{LIST}/{second.id}", headers=citizen_headers(app, seller))).status_code == 404


async def test_someone_elses_right_is_404_like_a_missing_one(client, app, vault):
    me = await create_person(vault=vault)
    other = await create_person(vault=vault)
    theirs = await create_right(holders=[(other, "1")])
    headers = citizen_headers(app, me)
    answers = []
    for right_id in (theirs.id, theirs.id + 10_000_000, 2**63 - 1, 2**70):
        r = await client.get(f"{LIST}/{right_id}", headers=headers)
        assert r.status_code == 404, (right_id, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        answers.append(r.json()["code"])
    assert set(answers) == {"NOT_FOUND"}
    assert (await client.get(LIST)).status_code == 401


async def test_pagination_is_stable_while_rights_are_added(client, app, vault):
    me = await create_person(vault=vault)
    headers = citizen_headers(app, me)
    existing = [
        (await create_right(holders=[(me, "1")], district_code=DISTRICTS[i % 16])).id for i in range(7)
    ]
    seen: list[int] = []
    r = await client.get(LIST, params={"limit": 3}, headers=headers)
    page = r.json()
    seen += [i["right_id"] for i in page["items"]]
    added = []
    while page["next_cursor"]:
        # New rights arrive between pages, including one bought from someone else.
        added.append((await create_right(holders=[(me, "1")])).id)
        seller = await create_person(vault=vault)
        bought = await create_right(holders=[(seller, "1")])
        added.append(
            (
                await registry_changes.register_transfer(
                    right_id=bought.id,
                    new_holders=[(me.id, "1")],
                    certificate_number=make_certificate_number(),
                    **changes(app),
                )
            ).id
        )
        if len(added) > 12:
            break
        r = await client.get(LIST, params={"limit": 3, "cursor": page["next_cursor"]}, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [i["right_id"] for i in page["items"]]
    assert len(seen) == len(set(seen)), "a right was listed twice"
    assert set(existing) <= set(seen), "a right that existed before paging started was skipped"
    assert seen == sorted(seen)


async def test_bad_cursor_and_limit_are_422(client, app, vault):
    headers = citizen_headers(app, await create_person(vault=vault))
    for params in ({"cursor": "not-a-cursor"}, {"cursor": "eyJrIjoibWVzc2FnZXMiLCJwIjoxfQ"}, {"limit": 0},
                   {"limit": 101}, {"district_code": "31"}, {"surprise": "1"}):  # fmt: skip
        r = await client.get(LIST, params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
    r = await client.get(LIST, params={"cursor": "x"}, headers=headers)
    assert r.json()["code"] == "INVALID_CURSOR"


class _QueryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[str] = []
        # Only the queries of the code under test: the in-process outbox worker and the
        # guardianship poller query meanwhile, each in a task of its own.
        self._task = asyncio.current_task()

    def emit(self, record: logging.LogRecord) -> None:
        if asyncio.current_task() is self._task:
            self.queries.append(record.getMessage())


async def _count_queries(person_id: int, limit: int) -> tuple[int, int]:
    logger = logging.getLogger("tortoise.db_client")
    handler, level, disabled = _QueryCounter(), logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False  # import-linter's CLI (tests/unit/test_architecture.py) disables loggers
    try:
        page = await list_properties(
            person_id=person_id, filters=PropertyFilters(), after_id=None, limit=limit
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    return len(handler.queries), len(page.items)


async def test_a_page_costs_the_same_few_queries_whatever_its_size(app, vault):
    bank = await create_organisation(kind="bank")
    small, large = await create_person(vault=vault), await create_person(vault=vault)
    co = await create_person(vault=vault)
    for person, n in ((small, 1), (large, 25)):
        for i in range(n):
            right = await create_right(
                holders=[(person, "0.5"), (co, "0.5")], district_code=DISTRICTS[i % 16]
            )
            await registry_changes.register_mortgage(
                right_id=right.id,
                mortgagee_id=bank.id,
                amount_fen=100,
                term_start=date(2024, 1, 1),
                term_end=date(2034, 1, 1),
                certificate_number=make_certificate_number(kind="registration"),
                kv=app.services.kv,
                clock=app.services.clock,
            )
            await registry_changes.start_case(
                unit_id=right.unit.id,
                kind="mortgage",
                case_number=f"Q{right.id:012d}",
                kv=app.services.kv,
                clock=app.services.clock,
            )
    small_queries, small_items = await _count_queries(small.id, 100)
    large_queries, large_items = await _count_queries(large.id, 100)
    assert (small_items, large_items) == (1, 25)
    assert 1 <= small_queries == large_queries <= 5, (small_queries, large_queries)


async def test_only_citizens_have_a_property_list(client, app, vault):
    signer = app.services.signer
    token, _ = signer.issue(subject="staff:1", role="clerk", claims={"office": "OFF-1"})
    r = await client.get(LIST, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    # timestamps are shown in Shanghai time
    me = await create_person(vault=vault)
    await create_right(holders=[(me, "1")], registered_at=datetime(2024, 5, 1, 16, 30, tzinfo=UTC))
    item = (await client.get(LIST, headers=citizen_headers(app, me))).json()["items"][0]
    assert item["registered_at"] == "2024-05-02T00:30:00+08:00"
    assert datetime.fromisoformat(item["registered_at"]).utcoffset() == timedelta(hours=8)
