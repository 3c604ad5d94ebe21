"""First registration and cancellation registration (issue 13), over HTTP against the real
database and the simulators: a developer's first registration walked through every state to its
units in the register, a citizen's cancellation walked to a historical right in 我的不动产, a
refused tax clearance stopping acceptance with nothing half-done, the organisation role's sign-in
(password and client credentials) and the 422s that name their field."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from services.registry.models import CaseEvent, Organisation, RealEstateUnit, RegistrationCase, Right
from tests.factories import (
    DEFAULT_CLIENT_SECRET,
    DEFAULT_STAFF_PASSWORD,
    create_api_client,
    create_encumbrance,
    create_mortgage,
    create_office,
    create_organisation,
    create_person,
    create_right,
    create_staff,
    create_unit,
    make_unit_number,
    phone_of,
)
from tests.integration.citizen_support import citizen_headers, wait_for_sms
from tests.integration.test_clerk_queries import staff_headers
from tests.integration.test_transfers import move, problem, wait_for

FIRST = "/api/v1/org/first-registrations"
CERTIFICATE = re.compile(r"^沪\(\d{4}\)浦东新区不动产权第\d{7}号$")


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def org_staff_headers(client: httpx.AsyncClient, organisation: Organisation) -> dict[str, str]:
    staff = await create_staff(role="organisation", office_code=None, organisation_id=organisation.id)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "organisation"
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def org_client_headers(
    client: httpx.AsyncClient, organisation: Organisation, scopes: tuple[str, ...]
) -> dict[str, str]:
    api_client = await create_api_client(
        organisation=organisation, scopes=scopes, role="organisation", bank_code=None
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": api_client.client_id,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    r = await client.post("/api/v1/auth/client-tokens", data=form)
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "organisation"
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def a_project(units: int = 3) -> dict[str, Any]:
    """A developer holding the land-use right of a parcel in 浦东新区, and an office there."""
    office = await create_office(district_code="310115")
    developer = await create_organisation(kind="developer")
    parcel = await create_unit(unit_number=make_unit_number(fixture="W"), use="residential")
    land = await create_right(holders=[(developer, 1)], unit=parcel, right_type="land_use")
    prefix = parcel.unit_number[:19]
    body = {
        "parcel_unit_number": parcel.unit_number,
        "building": {"number": "0003", "address": "上海市浦东新区锦绣路1888弄3号"},
        "units": [
            {
                "unit_number": f"{prefix}F0003{n:04d}",
                "area_m2": f"{80 + n}.50",
                "use": "residential",
                "address": f"上海市浦东新区锦绣路1888弄3号{n}01室",
            }
            for n in range(1, units + 1)
        ],
        "office_code": office.code,
    }
    return {"office": office, "developer": developer, "parcel": parcel, "land": land, "body": body}


async def tax_status(case_id: int) -> Any:
    async def known() -> Any:
        return (await RegistrationCase.get(id=case_id)).tax_status

    return await wait_for(known, what="the tax clearance's answer", timeout_s=10)


async def test_a_first_registration_walks_every_state_to_units_in_the_register(client, app):
    project = await a_project()
    org = await org_staff_headers(client, project["developer"])
    r = await client.post(FIRST, json=project["body"], headers={**org, **key()})
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["kind"], case["state"], case["unit_number"]) == (
        "first",
        "applied",
        project["parcel"].unit_number,
    )
    case_id = case["case_id"]
    assert await tax_status(case_id) == "cleared"

    clerk = await staff_headers(client, office=project["office"].code)
    listed = (await client.get("/api/v1/clerk/cases?kind=first", headers=clerk)).json()["items"]
    assert case_id in [c["case_id"] for c in listed]
    for state in ("accepted", "reviewing", "registered"):
        r = await move(client, clerk, case_id, state)
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "registered"

    # The organisation sees the case and its units, each with its own certificate number.
    view = (await client.get(f"/api/v1/org/cases/{case_id}", headers=org)).json()
    assert [e["to_state"] for e in view["events"]] == ["applied", "accepted", "reviewing", "registered"]
    registered = view["details"]["registered"]
    assert [u["unit_number"] for u in registered] == [u["unit_number"] for u in project["body"]["units"]]
    assert all(CERTIFICATE.match(u["certificate_number"]) for u in registered)
    assert len({u["certificate_number"] for u in registered}) == 3
    reader = await org_client_headers(client, project["developer"], ("registration:read",))
    mine = (await client.get("/api/v1/org/properties", headers=reader)).json()["items"]
    new = {p["unit_number"]: p for p in mine if p["right_type"] == "house_ownership"}
    assert set(new) == {u["unit_number"] for u in registered}
    assert {p["area_m2"] for p in new.values()} == {"81.50", "82.50", "83.50"}
    assert all(p["status"] == "current" for p in new.values())
    cases = (await client.get("/api/v1/org/cases", headers=reader)).json()["items"]
    assert [c["case_id"] for c in cases] == [case_id]

    # A second application for the same units is refused: they are in the register now.
    r = await client.post(FIRST, json=project["body"], headers={**org, **key()})
    problem(r, 409, "UNITS_ALREADY_REGISTERED")


async def test_a_client_applies_only_with_its_scope_and_another_organisation_sees_nothing(client, app):
    project = await a_project(units=1)
    reader = await org_client_headers(client, project["developer"], ("registration:read",))
    problem(
        await client.post(FIRST, json=project["body"], headers={**reader, **key()}), 403, "PERMISSION_DENIED"
    )
    system = await org_client_headers(
        client, project["developer"], ("registration:apply", "registration:read")
    )
    r = await client.post(FIRST, json=project["body"], headers={**system, **key()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    problem(
        await client.post(FIRST, json=project["body"], headers={**system, **key()}),
        409,
        "FIRST_REGISTRATION_IN_PROGRESS",
    )
    other = await org_staff_headers(client, await create_organisation(kind="developer"))
    problem(await client.get(f"/api/v1/org/cases/{case_id}", headers=other), 404, "NOT_FOUND")
    # A parcel the organisation does not hold: 404, as for one that does not exist.
    problem(
        await client.post(FIRST, json=project["body"], headers={**other, **key()}), 404, "PARCEL_NOT_HELD"
    )
    # Citizens and clerks have no organisation routes.
    citizen = citizen_headers(app, await create_person())
    problem(await client.get("/api/v1/org/cases", headers=citizen), 403, "PERMISSION_DENIED")


async def test_a_refused_tax_clearance_stops_acceptance_and_stores_nothing_half_done(client, app):
    project = await a_project()
    app.services.simulators.tax.refuse_clearance(project["developer"].credit_code)
    org = await org_staff_headers(client, project["developer"])
    r = await client.post(FIRST, json=project["body"], headers={**org, **key()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    assert await tax_status(case_id) == "refused"
    clerk = await staff_headers(client, office=project["office"].code)
    body = problem(await move(client, clerk, case_id, "accepted"), 409, "TAX_CLEARANCE_REFUSED")
    assert "tax" in body["title"].lower() or "税" in body["title"]
    case = await RegistrationCase.get(id=case_id)
    assert (case.state, case.certificate_number) == ("applied", None)
    assert [e.to_state for e in await CaseEvent.filter(case_id=case_id)] == ["applied"]
    numbers = [u["unit_number"] for u in project["body"]["units"]]
    assert not await RealEstateUnit.filter(unit_number__in=numbers).exists()
    assert await Right.filter(holders__organisation_id=project["developer"].id).count() == 1  # the land
    view = (await client.get(f"/api/v1/org/cases/{case_id}", headers=org)).json()
    assert view["tax"]["status"] == "refused" and view["details"]["tax_reason"]
    # The clerk refuses to accept it, with the reason; the case ends.
    r = await move(client, clerk, case_id, "not_accepted", reason="税务机关未确认完税")
    assert r.status_code == 200, r.text


async def test_invalid_unit_numbers_and_credit_codes_are_422_naming_the_field(client, app):
    project = await a_project(units=2)
    org = await org_staff_headers(client, project["developer"])
    bad = dict(project["body"])
    bad["units"] = [dict(u) for u in project["body"]["units"]]
    bad["units"][1]["unit_number"] = bad["units"][1]["unit_number"][:-8] + "00000000"  # F without a unit
    body = problem(await client.post(FIRST, json=bad, headers={**org, **key()}), 422, "INVALID_UNIT_NUMBER")
    assert body["field"] == "units.1.unit_number"
    bad["units"][1]["unit_number"] = make_unit_number()  # valid, but on another parcel
    body = problem(await client.post(FIRST, json=bad, headers={**org, **key()}), 422, "INVALID_UNIT_NUMBER")
    assert body["field"] == "units[1].unit_number"
    house = dict(project["body"], parcel_unit_number=project["body"]["units"][0]["unit_number"])
    body = problem(await client.post(FIRST, json=house, headers={**org, **key()}), 422, "INVALID_UNIT_NUMBER")
    assert body["field"] == "parcel_unit_number"
    assert not await RegistrationCase.filter(unit_id=project["parcel"].id).exists()

    admin = await create_staff(role="admin", office_code=None)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": admin.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    admin_h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    organisations = "/api/v1/admin/organisations"
    wrong = {"name": "上海某某置业有限公司", "credit_code": "91310000M291417Q3Q", "kind": "developer"}
    body = problem(await client.post(organisations, json=wrong, headers=admin_h), 422, "INVALID_CREDIT_CODE")
    assert body["field"] == "credit_code"
    good = dict(wrong, credit_code="91350100M000100Y43")
    r = await client.post(organisations, json=good, headers=admin_h)
    if r.status_code == 409:  # another run of the suite put it on record already
        problem(r, 409, "ORGANISATION_EXISTS")
    else:
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "developer"
        problem(await client.post(organisations, json=good, headers=admin_h), 409, "ORGANISATION_EXISTS")


# --- cancellation --------------------------------------------------------------------------------

CANCEL = "/api/v1/me/cancellations"


async def test_a_cancellation_walks_to_a_historical_right_in_my_properties(client, app, vault):
    office = await create_office(district_code="310115")
    holder, co_holder = await create_person(vault=vault), await create_person(vault=vault)
    right = await create_right(holders=[(holder, "0.5"), (co_holder, "0.5")], district_code="310115")
    holder_h, co_h = citizen_headers(app, holder), citizen_headers(app, co_holder)
    body = {
        "right_id": right.id,
        "reason": "demolished",
        "supporting_refs": ["浦东征收〔2026〕12号"],
        "office_code": office.code,
    }
    r = await client.post(CANCEL, json=body, headers={**holder_h, **key()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    assert {p["role"] for p in r.json()["parties"]} == {"holder"}
    assert await tax_status(case_id) == "cleared"
    # Both holders follow it; a stranger gets 404.
    assert (await client.get(f"{CANCEL}/{case_id}", headers=co_h)).status_code == 200
    stranger = citizen_headers(app, await create_person(vault=vault))
    problem(await client.get(f"{CANCEL}/{case_id}", headers=stranger), 404, "NOT_FOUND")
    clerk = await staff_headers(client, office=office.code)
    for state in ("accepted", "reviewing", "registered"):
        r = await move(client, clerk, case_id, state)
        assert r.status_code == 200, r.text

    items = (await client.get("/api/v1/me/properties?include_historical=true", headers=holder_h)).json()[
        "items"
    ]
    ended = next(p for p in items if p["right_id"] == right.id)
    assert ended["status"] == "historical" and ended["ended_at"]
    current = (await client.get("/api/v1/me/properties", headers=co_h)).json()["items"]
    assert right.id not in [p["right_id"] for p in current]
    listed = (await client.get(CANCEL, headers=co_h)).json()["items"]
    assert [(c["case_id"], c["state"]) for c in listed] == [(case_id, "registered")]
    # The co-holder is told by SMS of the application and the registration.
    sms = await wait_for_sms(app, phone_of(co_holder, vault=vault), "case_update", 3)
    events = [m["params"]["event"] for m in sms]
    assert "已申请" in events and "已登簿" in events and "已受理" in events


async def test_each_cancellation_refusal_has_its_own_code(client, app, vault):
    office = await create_office(district_code="310115")
    holder = await create_person(vault=vault)
    holder_h = citizen_headers(app, holder)

    def body(right: Any, **extra: Any) -> dict[str, Any]:
        return {
            "right_id": right.id,
            "reason": "lost",
            "supporting_refs": ["证明2026-1"],
            "office_code": office.code,
            **extra,
        }

    someone_elses = await create_right()
    problem(
        await client.post(CANCEL, json=body(someone_elses), headers={**holder_h, **key()}),
        404,
        "RIGHT_NOT_HELD",
    )
    seized = await create_right(holders=[(holder, 1)])
    await create_encumbrance(right=seized, kind="seizure")
    problem(await client.post(CANCEL, json=body(seized), headers={**holder_h, **key()}), 409, "RIGHT_SEIZED")
    mortgaged = await create_right(holders=[(holder, 1)])
    mortgage = await create_mortgage(right=mortgaged)
    r = await client.post(CANCEL, json=body(mortgaged), headers={**holder_h, **key()})
    problem(r, 409, "MORTGAGEE_CONSENT_REQUIRED")
    r = await client.post(
        CANCEL, json=body(mortgaged, mortgagee_consent_ref="银行同意书2026-7"), headers={**holder_h, **key()}
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    problem(
        await client.post(
            CANCEL, json=body(mortgaged, mortgagee_consent_ref="x"), headers={**holder_h, **key()}
        ),
        409,
        "CASE_IN_PROGRESS",
    )
    await tax_status(case_id)
    clerk = await staff_headers(client, office=office.code)
    for state in ("accepted", "reviewing", "registered"):
        assert (await move(client, clerk, case_id, state)).status_code == 200
    await mortgage.refresh_from_db()
    assert mortgage.status == "cancelled"
    problem(
        await client.post(CANCEL, json={**body(mortgaged), "reason": "sold"}, headers={**holder_h, **key()}),
        422,
        "VALIDATION_FAILED",
    )


async def test_an_organisation_cancels_a_right_it_holds(client, app):
    project = await a_project(units=1)
    org = await org_staff_headers(client, project["developer"])
    r = await client.post(
        "/api/v1/org/cancellations",
        json={"right_id": project["land"].id, "reason": "given_up", "supporting_refs": ["放弃声明2026-1"]},
        headers={**org, **key()},
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    assert await tax_status(case_id) == "cleared"
    cases = (await client.get("/api/v1/org/cases", headers=org)).json()["items"]
    assert [(c["case_id"], c["kind"]) for c in cases] == [(case_id, "cancellation")]
