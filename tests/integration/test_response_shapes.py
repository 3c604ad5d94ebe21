"""Every documented response is what its one description says: the body validates against the
shape the OpenAPI document is generated from (the services' dataclasses, through
`api.openapi.response_adapter`), and dumping the validated value gives the body back unchanged,
so no field is missing, extra, renamed or differently formatted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api.openapi import response_adapter
from api.routes.clerk import ClerkPropertyPage
from api.routes.me import Profile
from api.routes.messages import MessagePage
from api.routes.properties import AccessLogPage, PropertyPage
from api.routes.wards import WardList
from services.messages.inbox import MessageView
from services.registry import changes as registry_changes
from services.registry.models import PropertyRecord
from tests.factories import (
    create_case,
    create_encumbrance,
    create_mortgage,
    create_organisation,
    create_person,
    create_right,
    id_number_of,
)
from tests.integration.citizen_support import citizen_headers
from tests.integration.test_clerk_queries import staff_headers
from tests.integration.test_wards import WARDS, make_family


def assert_shape(shape: Any, body: bytes) -> None:
    adapter = response_adapter(shape)
    value = adapter.validate_json(body)
    assert adapter.dump_python(value, mode="json") == response_adapter(Any).validate_json(body)


async def _holder_with_history(vault):
    me = await create_person(vault=vault)
    co = await create_person(vault=vault)
    bank = await create_organisation(kind="bank")
    company = await create_organisation()
    earlier = await create_right(holders=[(co, "1")], status="historical")
    right = await create_right(
        holders=[(me, "0.4"), (co, "0.3"), (company, "0.3")],
        unit=await earlier.unit,
        registered_at=earlier.registered_at + timedelta(days=400),
    )
    await create_mortgage(right=right, mortgagee=bank)
    await create_mortgage(right=right, mortgagee=bank, status="cancelled")
    await create_encumbrance(right=right, kind="seizure")
    await create_encumbrance(right=right, kind="objection", status="lifted")
    await create_case(right=right, state="reviewing")
    return me, right


async def test_citizen_responses_match_their_documented_shapes(client, app, vault):
    me, right = await _holder_with_history(vault)
    headers = citizen_headers(app, me)
    for _ in range(2):  # a cache miss, then a hit: the same shape
        r = await client.get("/api/v1/me/properties", params={"limit": 1}, headers=headers)
        assert r.status_code == 200, r.text
        assert_shape(PropertyPage, r.content)
    r = await client.get(f"/api/v1/me/properties/{right.id}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["history"]["earlier_rights"] and body["history"]["cases"]
    assert body["encumbrance_history"]["mortgages"][1]["cancelled_at"] is not None
    assert_shape(PropertyRecord, r.content)
    r = await client.get("/api/v1/me/access-log", headers=headers)
    assert r.status_code == 200 and r.json()["items"]
    assert_shape(AccessLogPage, r.content)
    r = await client.get("/api/v1/me", headers=headers)
    assert_shape(Profile, r.content)


async def test_message_and_ward_responses_match_their_documented_shapes(client, app, vault):
    me, right = await _holder_with_history(vault)
    await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="objection",
        authority="某*",
        document_number="R-9",
        starts_on=right.registered_at.date(),
        kv=app.services.kv,
        clock=app.services.clock,
    )
    headers = citizen_headers(app, me)
    r = await client.get("/api/v1/me/messages", headers=headers)
    assert r.status_code == 200 and r.json()["items"], r.text
    assert_shape(MessagePage, r.content)
    message_id = r.json()["items"][0]["message_id"]
    r = await client.post(f"/api/v1/me/messages/{message_id}/read", headers=headers)
    assert_shape(MessageView, r.content)

    family = await make_family(app, vault)
    guardian = citizen_headers(app, family.guardians[0])
    r = await client.get(WARDS, headers=guardian)
    assert r.status_code == 200 and r.json()["items"], r.text
    assert_shape(WardList, r.content)
    ward_id = r.json()["items"][0]["ward_id"]
    r = await client.get(f"{WARDS}/{ward_id}/properties", headers=guardian)
    assert r.status_code == 200, r.text
    assert_shape(PropertyPage, r.content)


async def test_staff_responses_match_their_documented_shapes(client, app, vault):
    me, _ = await _holder_with_history(vault)
    clerk = await staff_headers(client)
    query = {"id_number": id_number_of(me, vault=vault), "purpose": "holder_request", "reference": "A-1"}
    r = await client.post("/api/v1/clerk/property-queries", json=query, headers=clerk)
    assert r.status_code == 200, r.text
    assert_shape(ClerkPropertyPage, r.content)
    r = await client.get("/api/v1/me", headers=clerk)
    assert_shape(Profile, r.content)
