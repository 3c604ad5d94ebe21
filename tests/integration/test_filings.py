"""Bank mortgage filings over HTTP (issue 14): a bank onboarded at run time files and receives
signed callbacks without a restart; suspension refuses its next request; idempotent submissions;
every blocking error at once; clerk review; change and cancel; a batch of 100; attachments."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import orjson

from integrations.banks.base import HMAC_SHA256, SIGNATURE_HEADER, TIMESTAMP_HEADER
from integrations.banks.http import sign_v2
from services.filings.models import FilingAttachment, MortgageFiling
from services.messages.models import InboxMessage
from services.registry.models import Mortgage, RealEstateUnit, Right
from tests.factories import (
    DEFAULT_STAFF_PASSWORD,
    create_encumbrance,
    create_mortgage,
    create_office,
    create_organisation,
    create_person,
    create_staff,
    id_number_of,
)
from tests.integration.citizen_support import citizen_headers
from tests.integration.filing_support import (
    admin_headers,
    bank_token,
    create_body,
    holder_with_right,
    key,
    onboard_bank,
    wait_for_callbacks,
)

FILINGS = "/api/v1/bank/mortgage-filings"
BATCHES = "/api/v1/bank/mortgage-filing-batches"
CONCURRENT = 120  # a limit that holds one request at a time is not a limit


async def unit_of(right: Right) -> str:
    return (await RealEstateUnit.get(id=right.unit_id)).unit_number  # type: ignore[attr-defined]


async def file(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], k: str | None = None
):
    return await client.post(FILINGS, json=body, headers={**headers, "Idempotency-Key": k or key()})


async def test_a_bank_onboarded_at_run_time_files_and_gets_signed_callbacks(
    client: httpx.AsyncClient, app: Any
) -> None:
    bank = await onboard_bank(client, app)
    person, right = await holder_with_right()
    await create_office(district_code=right.district_code)
    r = await file(
        client, bank.headers, create_body(person, right, await unit_of(right), borrower_name="赵六")
    )
    assert r.status_code == 201, r.text
    filing = r.json()
    assert filing["status"] == "registered"
    assert filing["errors"] == [] and filing["warnings"] == []
    assert filing["case_number"] and filing["priority_at"]
    assert "不动产证明第" in filing["certificate_number"]

    mortgage = await Mortgage.get(certificate_number=filing["certificate_number"])
    assert mortgage.contract_number == filing["contract_number"]
    assert mortgage.borrower_name == "赵六" and mortgage.priority_at is not None

    # Callbacks, signed v2 with the secret agreed at registration: no restart in between.
    callbacks = await wait_for_callbacks(app, bank.code, 2)
    statuses = [c["payload"]["status"] for c in callbacks]
    assert statuses == ["accepted", "registered"]
    assert callbacks[1]["payload"]["certificate_number"] == filing["certificate_number"]
    assert all(c["refusal"] is None for c in callbacks)

    # Pollable, and the mortgagor sees it: an in-app message, and the mortgage in 我的不动产.
    r = await client.get(f"{FILINGS}/{filing['id']}", headers=bank.headers)
    assert r.status_code == 200 and r.json()["status"] == "registered"
    assert await InboxMessage.filter(person_id=person.id).count() >= 1
    r = await client.get(f"/api/v1/me/properties/{right.id}", headers=citizen_headers(app, person))
    assert r.status_code == 200, r.text
    mortgages = r.json()["encumbrances"]["mortgages"]
    assert [m["certificate_number"] for m in mortgages] == [filing["certificate_number"]]
    # The filing and the bank's read are in the mortgagor's access log, under the bank's name.
    r = await client.get("/api/v1/me/access-log", headers=citizen_headers(app, person))
    bank_entries = [e for e in r.json()["items"] if e["reader_role"] == "bank"]
    assert {e["action"] for e in bank_entries} == {"mortgage_filing.submit", "mortgage_filing.read"}
    assert all(
        e["reader"].startswith("运行时银行") and e["object_id"] == str(filing["id"]) for e in bank_entries
    )


async def test_suspension_refuses_the_very_next_request(client: httpx.AsyncClient, app: Any) -> None:
    admin = await admin_headers(client)
    bank = await onboard_bank(client, app, admin)
    assert (await client.get(FILINGS, headers=bank.headers)).status_code == 200
    r = await client.post(f"/api/v1/admin/banks/{bank.code}/suspension", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = await client.get(FILINGS, headers=bank.headers)  # the same, unexpired token
    assert r.status_code == 403 and r.json()["code"] == "BANK_SUSPENDED"
    assert (await bank_token(client, bank.client_id, bank.client_secret)).status_code == 401
    r = await client.delete(f"/api/v1/admin/banks/{bank.code}/suspension", headers=admin)
    assert r.json()["status"] == "active"
    assert (await client.get(FILINGS, headers=bank.headers)).status_code == 200


async def test_rotated_credentials_refuse_the_old_secret(client: httpx.AsyncClient, app: Any) -> None:
    admin = await admin_headers(client)
    bank = await onboard_bank(client, app, admin)
    r = await client.post(f"/api/v1/admin/banks/{bank.code}/credentials", headers=admin)
    rotated = r.json()
    assert rotated["client_id"] == bank.client_id and rotated["client_secret"] != bank.client_secret
    assert (await bank_token(client, bank.client_id, bank.client_secret)).status_code == 401
    assert (await bank_token(client, bank.client_id, rotated["client_secret"])).status_code == 200
    listed = (await client.get("/api/v1/admin/banks", headers=admin)).json()["items"]
    assert not any("secret" in k for item in listed for k in item)


async def test_idempotent_retries_and_many_concurrent_requests_make_one_filing(
    client: httpx.AsyncClient, app: Any
) -> None:
    bank = await onboard_bank(client, app)
    person, right = await holder_with_right()
    body = create_body(person, right, await unit_of(right))
    k = key()
    first = await file(client, bank.headers, body, k)
    assert first.status_code == 201, first.text
    again = await file(client, bank.headers, body, k)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await file(client, bank.headers, {**body, "amount_fen": 1}, k)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Keys are scoped to the bank: another bank's same key is its own.
    other_bank = await onboard_bank(client, app)
    r = await file(client, other_bank.headers, body, k)
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    assert r.json()["status"] == "clerk_review"  # the first bank's mortgage is a warning now
    assert [w["code"] for w in r.json()["warnings"]] == ["OTHER_BANK_MORTGAGE"]

    person2, right2 = await holder_with_right()
    body2 = create_body(person2, right2, await unit_of(right2))
    k2 = key()
    answers = await asyncio.gather(*(file(client, bank.headers, body2, k2) for _ in range(CONCURRENT)))
    statuses = {a.status_code for a in answers}
    assert statuses <= {201, 409}, statuses
    ids = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(ids) == 1
    assert await MortgageFiling.filter(contract_number=body2["contract_number"]).count() == 1
    assert await Mortgage.filter(right_id=right2.id).count() == 1


async def test_every_blocking_error_is_reported_at_once(client: httpx.AsyncClient, app: Any) -> None:
    bank = await onboard_bank(client, app, filing_types=["create", "change"])
    person, right = await holder_with_right()
    await create_encumbrance(right=right, kind="seizure")
    foreign = await create_mortgage(right=right, mortgagee=await create_organisation(kind="bank"))
    await create_encumbrance(right=right, kind="objection")
    body = {
        "type": "cancel",
        "unit_number": await unit_of(right),
        "mortgage_certificate_number": foreign.certificate_number,
        "mortgagors": [{"id_number": id_number_of(person), "name": "不是这个名字"}],
        "contract_number": "HT-ALL",
        "submitted_by": "信贷员",
    }
    r = await file(client, bank.headers, body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "FILING_REJECTED" and problem["filing_status"] == "rejected"
    assert {e["code"] for e in problem["errors"]} == {
        "FILING_TYPE_NOT_ALLOWED",
        "MORTGAGOR_NAME_MISMATCH",
        "UNIT_SEIZED",
        "MORTGAGE_NOT_HELD",
    }
    assert "OBJECTION_PENDING" in {w["code"] for w in problem["warnings"]}
    assert id_number_of(person) not in r.text
    # The rejected filing is recorded with its reasons, pollable, and the bank is told.
    r = await client.get(f"{FILINGS}/{problem['filing_id']}", headers=bank.headers)
    assert r.json()["status"] == "rejected" and len(r.json()["errors"]) == 4
    callbacks = await wait_for_callbacks(app, bank.code, 1)
    assert callbacks[-1]["payload"]["status"] == "rejected"

    stranger = await create_person()
    unknown = create_body(stranger, right, "310115001001GB99999F00010001")
    r = await file(client, bank.headers, unknown)
    assert {e["code"] for e in r.json()["errors"]} == {"UNIT_UNKNOWN"}
    r = await file(client, bank.headers, create_body(stranger, right, await unit_of(right)))
    assert {e["code"] for e in r.json()["errors"]} == {"MORTGAGOR_NOT_HOLDER", "UNIT_SEIZED"}


async def test_the_daily_quota_is_never_passed(client: httpx.AsyncClient, app: Any) -> None:
    quota = 5
    bank = await onboard_bank(client, app, daily_quota=quota)
    bodies = []
    for _ in range(CONCURRENT):
        person, right = await holder_with_right()
        bodies.append(create_body(person, right, await unit_of(right)))
    answers = await asyncio.gather(*(file(client, bank.headers, b) for b in bodies))
    assert sorted(a.status_code for a in answers) == [201] * quota + [422] * (CONCURRENT - quota)
    assert await MortgageFiling.filter(bank__code=bank.code).exclude(status="rejected").count() == quota
    for a in answers:
        if a.status_code == 422:
            assert [e["code"] for e in a.json()["errors"]] == ["DAILY_QUOTA_EXCEEDED"]


async def test_a_warning_sends_the_filing_to_a_clerk(client: httpx.AsyncClient, app: Any) -> None:
    bank = await onboard_bank(client, app)
    person, right = await holder_with_right()
    office = await create_office(district_code=right.district_code, code="OFF-FILING-1")
    await create_mortgage(right=right, mortgagee=await create_organisation(kind="bank"))
    r = await file(client, bank.headers, create_body(person, right, await unit_of(right)))
    assert r.status_code == 201, r.text
    filing = r.json()
    assert filing["status"] == "clerk_review"
    assert [w["code"] for w in filing["warnings"]] == ["OTHER_BANK_MORTGAGE"]
    case = (await MortgageFiling.get(id=filing["id"]).select_related("case")).case
    clerk = await create_staff(role="clerk", office_code=office.code)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": clerk.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    clerk_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for to in ("reviewing", "registered"):
        r = await client.post(f"/api/v1/clerk/cases/{case.id}/moves", json={"to": to}, headers=clerk_headers)
        assert r.status_code == 200, r.text
    r = await client.get(f"{FILINGS}/{filing['id']}", headers=bank.headers)
    assert r.json()["status"] == "registered" and "不动产证明第" in r.json()["certificate_number"]
    statuses = [c["payload"]["status"] for c in await wait_for_callbacks(app, bank.code, 3)]
    assert statuses == ["accepted", "clerk_review", "registered"]


async def test_change_then_cancel_a_mortgage_the_bank_holds(client: httpx.AsyncClient, app: Any) -> None:
    bank = await onboard_bank(client, app)
    person, right = await holder_with_right()
    unit = await unit_of(right)
    created = (await file(client, bank.headers, create_body(person, right, unit))).json()
    changed = await file(
        client,
        bank.headers,
        create_body(
            person,
            right,
            unit,
            type="change",
            mortgage_certificate_number=created["certificate_number"],
            amount_fen=90_000_000,
        ),
    )
    assert changed.status_code == 201, changed.text
    assert changed.json()["status"] == "registered"
    mortgage = await Mortgage.get(right_id=right.id)
    assert (
        mortgage.amount_fen == 90_000_000
        and mortgage.certificate_number == changed.json()["certificate_number"]
    )
    cancel = {
        "type": "cancel",
        "certificate_number": right.certificate_number,
        "mortgage_certificate_number": mortgage.certificate_number,
        "mortgagors": [{"id_number": id_number_of(person), "name": person.name}],
        "contract_number": "HT-CANCEL",
        "submitted_by": "信贷员",
    }
    r = await file(client, bank.headers, cancel)
    assert r.status_code == 201 and r.json()["status"] == "registered", r.text
    assert (await Mortgage.get(id=mortgage.id)).status == "cancelled"


async def test_a_bank_cannot_read_another_banks_filing(client: httpx.AsyncClient, app: Any) -> None:
    mine = await onboard_bank(client, app)
    other = await onboard_bank(client, app)
    person, right = await holder_with_right()
    filing = (await file(client, mine.headers, create_body(person, right, await unit_of(right)))).json()
    r = await client.get(f"{FILINGS}/{filing['id']}", headers=other.headers)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    assert (await client.get(FILINGS, headers=other.headers)).json()["items"] == []
    listed = (await client.get(FILINGS, params={"status": "registered"}, headers=mine.headers)).json()
    assert [f["id"] for f in listed["items"]] == [filing["id"]]


async def test_the_simulated_bank_refuses_stale_and_tampered_callbacks(app: Any) -> None:
    sim = app.services.simulators.banks
    secret = "s" * 24
    sim.add_bank("stale-check", secret, "signed-json-v2", mac=HMAC_SHA256)  # signed below with sign_v2
    body = orjson.dumps(
        {"event": "x", "bank_code": "stale-check", "filing_ref": "MF-1", "status": "accepted"}
    )
    url = f"{sim.base_url}/stale-check/callback"

    async def post(ts: int, payload: bytes, signed: bytes | None = None) -> httpx.Response:
        headers = {
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign_v2(secret, ts, signed if signed is not None else payload),
            "Content-Type": "application/json",
            "Idempotency-Key": key(),
        }
        async with httpx.AsyncClient() as c:
            return await c.post(url, content=payload, headers=headers)

    now = int(time.time())
    stale = await post(now - 3600, body)
    assert stale.status_code == 401 and stale.json()["code"] == "STALE_TIMESTAMP"
    tampered = await post(now, body.replace(b"accepted", b"registered"), signed=body)
    assert tampered.status_code == 401 and tampered.json()["code"] == "BAD_SIGNATURE"
    fresh = await post(now, body)
    assert fresh.status_code == 200 and fresh.json()["code"] == "0000"


async def test_a_callback_endpoint_that_is_down_gets_the_event_later_once(
    client: httpx.AsyncClient, app: Any
) -> None:
    bank = await onboard_bank(client, app)
    sim = app.services.simulators.banks
    person, right = await holder_with_right()
    sim.set_fault("error", count=4, status=503)
    try:
        r = await file(client, bank.headers, create_body(person, right, await unit_of(right)))
        assert r.status_code == 201
        callbacks = await wait_for_callbacks(app, bank.code, 2, timeout_s=20)
    finally:
        sim.clear_faults()
    assert sorted(c["payload"]["status"] for c in callbacks) == ["accepted", "registered"]
    await asyncio.sleep(0.5)
    assert len(sim.received(bank.code)) == 2


async def test_a_batch_of_100_has_one_result_per_filing(client: httpx.AsyncClient, app: Any) -> None:
    bank = await onboard_bank(client, app)
    items = []
    for i in range(100):
        person, right = await holder_with_right()
        body = create_body(person, right, await unit_of(right))
        if i % 10 == 3:
            body["mortgagors"][0]["name"] = "错名"
        if i % 10 == 7:
            body["unit_number"] = "310115001001GB99998F00010001"
        items.append({"idempotency_key": f"batch-{i}-{key()}", "filing": body})
    items[99]["filing"] = {"type": "create"}  # not even a filing
    r = await client.post(BATCHES, json={"items": items}, headers=bank.headers, timeout=120)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["idempotency_key"] for x in results] == [i["idempotency_key"] for i in items]
    codes = [x["status"] for x in results]
    assert codes.count(201) == 79 and codes.count(422) == 21
    assert {results[3]["body"]["errors"][0]["code"], results[7]["body"]["errors"][0]["code"]} == {
        "MORTGAGOR_NAME_MISMATCH",
        "UNIT_UNKNOWN",
    }
    assert results[99]["body"]["code"] == "VALIDATION_FAILED"
    # Retried whole: every item replays its own first answer, nothing is filed twice.
    again = (await client.post(BATCHES, json={"items": items}, headers=bank.headers, timeout=120)).json()
    assert all(x["replayed"] for x in again["results"])
    assert [x["body"].get("id") for x in again["results"]] == [x["body"].get("id") for x in results]
    assert await MortgageFiling.filter(bank__code=bank.code, status="registered").count() == 79
    too_many = await client.post(BATCHES, json={"items": items + items[:1]}, headers=bank.headers)
    assert too_many.status_code == 422 and too_many.json()["code"] == "BATCH_TOO_LARGE"


async def test_attachments_are_checked_on_receipt_and_used_once(client: httpx.AsyncClient, app: Any) -> None:
    bank = await onboard_bank(client, app)
    data = b"%PDF-1.7 contract " * 100
    digest = hashlib.sha256(data).hexdigest()
    url = "/api/v1/bank/attachments"
    headers = {**bank.headers, "Content-Type": "application/pdf"}
    wrong = await client.post(
        url, params={"name": "c.pdf", "size": len(data), "sha256": "0" * 64}, content=data, headers=headers
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "ATTACHMENT_MISMATCH"
    short = await client.post(
        url, params={"name": "c.pdf", "size": len(data) + 1, "sha256": digest}, content=data, headers=headers
    )
    assert short.status_code == 422
    r = await client.post(
        url, params={"name": "c.pdf", "size": len(data), "sha256": digest}, content=data, headers=headers
    )
    assert r.status_code == 201, r.text
    attachment_id = r.json()["id"]
    row = await FilingAttachment.get(id=attachment_id)
    assert await app.services.filings.storage.get(row.storage_key) == data  # outside the database
    person, right = await holder_with_right()
    body = create_body(person, right, await unit_of(right), attachment_ids=[attachment_id])
    assert (await file(client, bank.headers, body)).status_code == 201
    person2, right2 = await holder_with_right()
    r = await file(
        client,
        bank.headers,
        create_body(person2, right2, await unit_of(right2), attachment_ids=[attachment_id]),
    )
    assert [e["code"] for e in r.json()["errors"]] == ["ATTACHMENT_UNKNOWN"]
    other = await onboard_bank(client, app)
    r = await file(
        client,
        other.headers,
        create_body(person2, right2, await unit_of(right2), attachment_ids=[attachment_id]),
    )
    assert "ATTACHMENT_UNKNOWN" in [e["code"] for e in r.json()["errors"]]
