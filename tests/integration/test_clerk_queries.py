"""A registration clerk looks a person up at the window: the answer, the ground, and the trace the
person sees in their access log."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.audit.models import AccessLogEntry
from tests.factories import (
    DEFAULT_STAFF_PASSWORD,
    create_person,
    create_right,
    create_staff,
    id_number_of,
    make_id_number,
)
from tests.integration.citizen_support import citizen_headers

QUERY = "/api/v1/clerk/property-queries"
LOG = "/api/v1/me/access-log"


async def staff_headers(client: httpx.AsyncClient, role: str = "clerk", office: str | None = None) -> dict:
    staff = await create_staff(role=role, office_code=office or "OFF-310104-01", display_name="赵敏")
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def query(id_number: str, **extra: Any) -> dict[str, Any]:
    return {"id_number": id_number, "purpose": "holder_request", "reference": "查询申请 2026-0001", **extra}


async def test_clerk_sees_every_right_and_the_person_sees_the_clerk(client, app, vault):
    person = await create_person(vault=vault, name="孙丽")
    partner = await create_person(vault=vault, name="周强")
    rights = [
        await create_right(holders=[(person, "1")], district_code="310101"),
        await create_right(holders=[(person, "0.5"), (partner, "0.5")], district_code="310115"),
        await create_right(holders=[(person, "1")], district_code="310151"),
    ]
    await create_right(holders=[(partner, "1")])  # not hers
    await create_right(holders=[(person, "1")], status="historical")
    clerk = await staff_headers(client)
    request_id = uuid.uuid4().hex

    r = await client.post(
        QUERY, json=query(id_number_of(person, vault=vault)), headers={**clerk, "X-Request-ID": request_id}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject"]["name"] == "孙丽" and body["subject"]["in_register"] is True
    assert "*" in body["subject"]["id_number"] and body["subject"]["id_number"] != id_number_of(
        person, vault=vault
    )
    assert [i["right_id"] for i in body["items"]] == [r.id for r in rights]
    assert {i["district_code"] for i in body["items"]} == {"310101", "310115", "310151"}
    shared = body["items"][1]
    assert shared["share"] == "0.5" and shared["co_holders"] == [
        {"kind": "person", "name": "周*", "share": "0.5"}
    ]

    # Historical rights on request, paged like /me/properties.
    r = await client.post(
        QUERY, json=query(id_number_of(person, vault=vault), include_historical=True, limit=2), headers=clerk
    )
    first = r.json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    r = await client.post(
        QUERY,
        json=query(
            id_number_of(person, vault=vault), include_historical=True, limit=2, cursor=first["next_cursor"]
        ),
        headers=clerk,
    )
    assert len(first["items"]) + len(r.json()["items"]) == 4 and r.json()["next_cursor"] is None

    entry = await AccessLogEntry.get(request_id=request_id)
    assert (entry.person_id, entry.reader_role, entry.purpose) == (person.id, "clerk", "holder_request")
    assert entry.object_id == "查询申请 2026-0001"
    seen = (await client.get(LOG, headers=citizen_headers(app, person))).json()["items"]
    mine = next(i for i in seen if i["request_id"] == request_id)
    assert mine["reader_role"] == "clerk" and mine["by_self"] is False
    assert mine["reader"] == "登记工作人员 赵*（OFF-310104-01）"
    assert (mine["purpose"], mine["object_id"]) == ("holder_request", "查询申请 2026-0001")


async def test_an_authoritys_reference_is_kept_but_not_shown_to_the_person(client, app, vault):
    person = await create_person(vault=vault)
    await create_right(holders=[(person, "1")])
    clerk = await staff_headers(client)
    request_id = uuid.uuid4().hex
    letter = "(2026)沪0115执1234号协助查询通知书"
    r = await client.post(
        QUERY,
        json=query(id_number_of(person, vault=vault), purpose="authority_request", reference=letter),
        headers={**clerk, "X-Request-ID": request_id},
    )
    assert r.status_code == 200, r.text
    assert (await AccessLogEntry.get(request_id=request_id)).object_id == letter
    seen = (await client.get(LOG, headers=citizen_headers(app, person))).json()["items"]
    mine = next(i for i in seen if i["request_id"] == request_id)
    assert mine["purpose"] == "authority_request" and mine["object_id"] is None


async def test_someone_not_in_the_register_is_an_answer_and_the_read_waits_for_them(client, app, vault):
    id_number = make_id_number(district_code="310112")
    clerk = await staff_headers(client)
    request_id = uuid.uuid4().hex
    r = await client.post(QUERY, json=query(id_number), headers={**clerk, "X-Request-ID": request_id})
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == {
        "id_number": id_number[:4] + "*" * 10 + id_number[-4:],
        "name": None,
        "in_register": False,
    }
    assert r.json()["items"] == [] and r.json()["next_cursor"] is None
    entry = await AccessLogEntry.get(request_id=request_id)
    assert entry.person_id is None and entry.person_index == vault.blind_index(id_number)

    # Registered later, the person finds the clerk's read in their log.
    person = await create_person(vault=vault, id_number=id_number)
    seen = (await client.get(LOG, headers=citizen_headers(app, person))).json()["items"]
    assert request_id in {i["request_id"] for i in seen}


async def test_only_clerks_may_ask(client, app, vault):
    person = await create_person(vault=vault)
    body = query(id_number_of(person, vault=vault))
    r = await client.post(QUERY, json=body)
    assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_REQUIRED"
    r = await client.post(QUERY, json=body, headers=citizen_headers(app, person))
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    r = await client.post(QUERY, json=body, headers=await staff_headers(client, role="admin"))
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    assert await AccessLogEntry.filter(person_id=person.id).count() == 0


async def test_bad_queries_are_refused_and_log_nothing(client, app, vault):
    person = await create_person(vault=vault)
    good = id_number_of(person, vault=vault)
    clerk = await staff_headers(client)
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    cases = [
        (query(wrong_check), "INVALID_ID_NUMBER", "id_number"),
        ({k: v for k, v in query(good).items() if k != "reference"}, "VALIDATION_FAILED", "reference"),
        (query(good, reference="   "), "VALIDATION_FAILED", "reference"),
        (query(good, reference="a\nb"), "VALIDATION_FAILED", "reference"),
        (query(good, purpose="curiosity"), "VALIDATION_FAILED", "purpose"),
        (query(good, limit=0), "VALIDATION_FAILED", "limit"),
        (query(good, surname="孙"), "VALIDATION_FAILED", "surname"),
        (query(good, cursor="not-a-cursor"), "INVALID_CURSOR", "cursor"),
    ]
    for body, code, field in cases:
        r = await client.post(QUERY, json=body, headers=clerk)
        assert r.status_code in (400, 422), (body, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == code, (body, problem)
        assert field in r.text, (field, problem)
    r = await client.post(QUERY, content=b"{not json", headers={**clerk, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "MALFORMED_REQUEST"
    assert await AccessLogEntry.filter(person_id=person.id).count() == 0
