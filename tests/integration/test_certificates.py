"""No-housing certificates end to end: issue, PDF and QR, verification, revocation, the library."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from certificates.keys import CertificateKeyring
from certificates.links import token_from_scan, verification_url
from certificates.offline import OfflineVerifier
from certificates.tokens import CertificateClaims
from services.certificates.models import Certificate
from services.errors import RegisterStateConflict
from services.outbox.models import OutboxMessage
from services.ratelimit import per_seconds
from services.registry.changes import register_transfer
from tests.factories import (
    create_person,
    create_right,
    create_unit,
    id_number_of,
    make_certificate_number,
    make_id_number,
)
from tests.integration.citizen_support import citizen_headers, shanghai_today, wait_for_sms, years_ago
from tests.integration.test_clerk_queries import staff_headers
from tests.support.tools import qr_texts_in_pdf

CERTS = "/api/v1/me/certificates"
VERIFY = "/api/v1/verifications"


def _household(app: Any, *members: tuple[str, str, str], household: str) -> None:
    """(id_number, name, relation to the head) registered in one household at the civil registry."""
    app.services.simulators.civil_registry.load(
        people=[
            {"id_number": number, "name": name, "household_id": household, "relation": relation}
            for number, name, relation in members
        ]
    )


async def _issue(client: httpx.AsyncClient, app: Any, person: Any, purpose: str = "talent") -> httpx.Response:
    return await client.post(
        CERTS, json={"type": "no-housing", "purpose": purpose}, headers=citizen_headers(app, person)
    )


async def _issued(
    client: httpx.AsyncClient, app: Any, person: Any, purpose: str = "talent"
) -> dict[str, Any]:
    r = await _issue(client, app, person, purpose)
    assert r.status_code == 201, r.text
    return r.json()


async def _verify(client: httpx.AsyncClient, clerk: dict[str, str], qr: str) -> dict[str, Any]:
    r = await client.post(VERIFY, json={"qr": qr}, headers=clerk)
    assert r.status_code == 200, r.text
    return r.json()


async def _wait_filed(serial: str, timeout_s: float = 20.0) -> Certificate:
    deadline = time.monotonic() + timeout_s
    while True:
        cert = await Certificate.get(serial=serial)
        if cert.license_id or time.monotonic() > deadline:
            return cert
        await asyncio.sleep(0.1)


# --- issue ------------------------------------------------------------------------------------


async def test_a_person_without_housing_is_issued_one_and_told(client, app, vault) -> None:
    person = await create_person(vault=vault, name="陈静")
    await create_right(holders=[(person, 1)], unit=await create_unit(use="commercial"))  # not housing
    await create_right(holders=[(person, 1)], status="historical")  # sold long ago
    body = await _issued(client, app, person)
    assert body["status"] == "valid" and body["purpose"] == "talent" and body["type"] == "no-housing"
    assert body["qr_text"].startswith(app.services.settings.base_url + "/v#")
    assert (body["valid_until"] > body["issued_at"]) and body["serial"].startswith("WF")

    listed = (await client.get(CERTS, headers=citizen_headers(app, person))).json()["items"]
    assert [c["serial"] for c in listed] == [body["serial"]]
    sms = await wait_for_sms(app, vault.decrypt_phone(person.phone_enc), "certificate_issued", 1)
    assert sms and sms[0]["params"]["number"] == body["serial"]
    inbox = (await client.get("/api/v1/me/messages", headers=citizen_headers(app, person))).json()["items"]
    assert any(m["data"].get("serial") == body["serial"] for m in inbox)


async def test_a_person_with_housing_is_refused_and_nothing_is_issued(client, app, vault) -> None:
    person = await create_person(vault=vault, name="王刚")
    await create_right(holders=[(person, "0.5"), (await create_person(vault=vault), "0.5")])
    r = await _issue(client, app, person)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "HOLDER_HAS_HOUSING"
    assert problem["member"] == {"relation": "self", "name": "王*"}
    assert await Certificate.filter(person_id=person.id).count() == 0


async def test_the_household_counts_for_a_purchase_but_not_for_talent_settlement(client, app, vault) -> None:
    today = shanghai_today(app)
    me = await create_person(vault=vault, name="周敏", born=years_ago(today, 34))
    spouse_number = make_id_number(birth_date=years_ago(today, 36))
    spouse = await create_person(vault=vault, id_number=spouse_number, name="吴强")
    await create_right(holders=[(spouse, 1)])
    _household(
        app,
        (spouse_number, spouse.name, "head"),
        (id_number_of(me, vault=vault), me.name, "spouse"),
        household=f"h-{me.id}",
    )
    r = await _issue(client, app, me, "purchase")
    assert r.status_code == 409 and r.json()["member"] == {"relation": "spouse", "name": "吴*"}
    assert (await _issue(client, app, me, "talent")).status_code == 201


async def test_a_minor_child_with_housing_counts_an_adult_child_does_not(client, app, vault) -> None:
    today = shanghai_today(app)
    me = await create_person(vault=vault, name="郑洁", born=years_ago(today, 45))
    adult = make_id_number(birth_date=years_ago(today, 20))
    minor = make_id_number(birth_date=years_ago(today, 12))
    await create_right(holders=[(await create_person(vault=vault, id_number=adult, name="郑一"), 1)])
    members = [(id_number_of(me, vault=vault), me.name, "head"), (adult, "郑一", "child")]
    _household(app, *members, household=f"h-{me.id}")
    assert (await _issue(client, app, me, "loan")).status_code == 201  # the adult child is not counted
    await create_right(holders=[(await create_person(vault=vault, id_number=minor, name="郑二"), 1)])
    _household(app, *members, (minor, "郑二", "child"), household=f"h-{me.id}")
    r = await _issue(client, app, me, "loan")
    assert r.status_code == 409 and r.json()["member"]["relation"] == "child"


async def test_bad_requests_get_their_own_codes(client, app, vault) -> None:
    person = await create_person(vault=vault)
    headers = citizen_headers(app, person)
    r = await client.post(CERTS, json={"type": "no-housing", "purpose": "lottery"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_CERTIFICATE_PURPOSE"
    r = await client.post(CERTS, json={"type": "marriage", "purpose": "talent"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_FAILED"
    r = await client.get(f"{CERTS}/WF20260101ABCDEFGHJK/pdf", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    # A household purpose for someone the civil registry does not know: refused, not guessed.
    r = await client.post(CERTS, json={"type": "no-housing", "purpose": "purchase"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "HOUSEHOLD_NOT_FOUND"


async def test_issuance_is_limited_per_person_even_in_parallel(client, app, vault) -> None:
    person = await create_person(vault=vault)
    cap = app.services.settings.certificate_issues_per_day
    answers = await asyncio.gather(*(_issue(client, app, person) for _ in range(100)))
    statuses = [r.status_code for r in answers]
    assert statuses.count(201) == cap and statuses.count(429) == 100 - cap, statuses
    assert await Certificate.filter(person_id=person.id).count() == cap


async def test_someone_elses_certificate_is_not_found(client, app, vault) -> None:
    owner, other = await create_person(vault=vault), await create_person(vault=vault)
    serial = (await _issued(client, app, owner))["serial"]
    r = await client.get(f"{CERTS}/{serial}/pdf", headers=citizen_headers(app, other))
    assert r.status_code == 404
    r = await client.post(f"{CERTS}/{serial}/presentations", headers=citizen_headers(app, other))
    assert r.status_code == 404


# --- the document, its QR and verification -----------------------------------------------------


async def test_the_printed_qr_verifies_and_every_kind_of_bad_one_gets_its_verdict(
    client, app, vault, clock, tmp_path
) -> None:
    person = await create_person(vault=vault, name="林𠀀")
    body = await _issued(client, app, person)
    r = await client.get(f"{CERTS}/{body['serial']}/pdf", headers=citizen_headers(app, person))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    [scanned] = qr_texts_in_pdf(r.content, tmp_path)
    assert scanned == body["qr_text"]
    clerk = await staff_headers(client)

    valid = await _verify(client, clerk, scanned)
    assert valid["verdict"] == "valid"
    assert valid["certificate"]["holder"] == "林*" and valid["certificate"]["purpose"] == "talent"
    assert "id_number" not in str(valid) and valid["status_known_at"]

    token = token_from_scan(scanned)
    assert token is not None
    flipped = token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]
    assert (await _verify(client, clerk, flipped))["verdict"] == "forged"
    assert (await _verify(client, clerk, "not a certificate"))["verdict"] == "forged"

    other_keys = CertificateKeyring.ensure(tmp_path / "other-keys")
    stored = await Certificate.get(serial=body["serial"])
    forged = other_keys.sign_certificate(
        CertificateClaims(
            serial=stored.serial,
            cert_type=stored.cert_type,
            purpose=stored.purpose,
            holder="林*",
            issued_at=stored.issued_at,
            valid_until=stored.valid_until + timedelta(days=365),
            as_of=stored.as_of,
        )
    )
    assert (await _verify(client, clerk, forged))["verdict"] == "forged"
    real_keys = app.services.certificates.keyring
    unknown = real_keys.sign_certificate(
        CertificateClaims(
            "WF20200101ABCDEFGHJK",
            "no-housing",
            "talent",
            "X*",
            stored.issued_at,
            stored.valid_until,
            stored.as_of,
        )
    )
    assert (await _verify(client, clerk, unknown))["verdict"] == "unknown"

    clock.advance(days=31)
    assert (await _verify(client, await staff_headers(client), scanned))["verdict"] == "expired"
    clock.reset()

    log = (await client.get("/api/v1/me/access-log", headers=citizen_headers(app, person))).json()["items"]
    checks = [e for e in log if e["action"] == "certificate.verify"]
    assert len(checks) == 2 and all("登记工作人员" in e["reader"] for e in checks), checks


async def test_a_presentation_goes_stale_and_a_public_scan_sees_the_minimum(
    client, app, vault, clock
) -> None:
    person = await create_person(vault=vault, name="何佳")
    serial = (await _issued(client, app, person))["serial"]
    r = await client.post(f"{CERTS}/{serial}/presentations", headers=citizen_headers(app, person))
    assert r.status_code == 201, r.text
    shown = r.json()
    assert shown["qr_svg"].startswith("<svg") and "http" not in shown["qr_svg"].split(">", 1)[1]
    public = (await client.post("/api/v1/public/verifications", json={"qr": shown["qr_text"]})).json()
    assert public["verdict"] == "valid" and public["presentation"] is True
    assert set(public["certificate"]) == {
        "serial",
        "type",
        "type_label",
        "holder",
        "purpose",
        "purpose_label",
        "valid_from",
        "valid_until",
        "as_of",
    }
    clock.advance(seconds=app.services.settings.certificate_presentation_ttl_s + 1)
    stale = (await client.post("/api/v1/public/verifications", json={"qr": shown["qr_text"]})).json()
    assert stale["verdict"] == "expired" and stale["reason"] == "presentation_expired"


# --- revocation ---------------------------------------------------------------------------------


async def test_a_transfer_that_gives_the_holder_housing_revokes_in_the_same_transaction(
    client, app, vault
) -> None:
    buyer = await create_person(vault=vault, name="蒋雯")
    body = await _issued(client, app, buyer)
    clerk = await staff_headers(client)
    assert (await _verify(client, clerk, body["qr_text"]))["verdict"] == "valid"

    right = await create_right()
    await register_transfer(
        right_id=right.id,
        new_holders=[(buyer.id, "1")],
        certificate_number=make_certificate_number(),
        kv=app.services.kv,
        clock=app.services.clock,
    )
    cert = await Certificate.get(serial=body["serial"])
    assert cert.status == "revoked" and cert.revoked_by == "system:registration"
    assert (await _verify(client, clerk, body["qr_text"]))["verdict"] == "revoked"
    listed = (await client.get(CERTS, headers=citizen_headers(app, buyer))).json()["items"]
    assert listed[0]["status"] == "revoked"

    # Offline: the published keys and the signed list say the same, with the list's age.
    jwks = (await client.get("/api/v1/certificate-keys")).json()
    crl = (await client.get("/api/v1/certificate-revocations")).json()
    offline = OfflineVerifier(jwks, crl["token"]).verify(body["qr_text"], app.services.clock.now())
    assert offline.verdict == "revoked" and not offline.stale


async def test_a_failed_transfer_revokes_nothing(client, app, vault) -> None:
    buyer = await create_person(vault=vault)
    serial = (await _issued(client, app, buyer))["serial"]
    right = await create_right(status="historical")  # not current: the transfer is refused
    with pytest.raises(RegisterStateConflict):
        await register_transfer(
            right_id=right.id,
            new_holders=[(buyer.id, "1")],
            certificate_number=make_certificate_number(),
            kv=app.services.kv,
            clock=app.services.clock,
        )
    assert (await Certificate.get(serial=serial)).status == "issued"


async def test_the_library_gets_the_document_then_its_revocation_even_when_down_at_first(
    client, app, vault
) -> None:
    library = app.services.simulators.elicense
    library.set_fault("error", count=4, operations=["store_license"])  # two deliveries fail
    person = await create_person(vault=vault)
    serial = (await _issued(client, app, person))["serial"]
    admin = await staff_headers(client, role="admin")
    r = await client.post(
        f"/api/v1/admin/certificates/{serial}/revocation", json={"reason": "申请材料不实"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    revoke = await OutboxMessage.get(idempotency_key=f"elicense.revoke:{serial}")
    store = await OutboxMessage.get(idempotency_key=f"elicense.store:{serial}")
    assert revoke.after_id == store.id

    cert = await _wait_filed(serial, timeout_s=30)
    assert cert.license_id, "the filing was not delivered"
    for _ in range(200):  # the revocation follows its filing through the outbox
        if library.licenses[cert.license_id]["status_code"] == "2":
            break
        await asyncio.sleep(0.1)
    record = library.licenses[cert.license_id]
    assert record["number"] == serial and record["status_code"] == "2"
    assert record["revoked_reason"] == "申请材料不实"
    assert library.pdfs[cert.license_id].startswith(b"%PDF")
    again = await client.post(
        f"/api/v1/admin/certificates/{serial}/revocation", json={"reason": "again"}, headers=admin
    )
    assert again.status_code == 409 and again.json()["code"] == "CERTIFICATE_NOT_CURRENT"


async def test_a_certificate_signed_before_a_key_rotation_still_verifies(client, app, vault) -> None:
    person = await create_person(vault=vault)
    body = await _issued(client, app, person)
    services = app.services
    directory = services.settings.key_dir / "certificates"
    old_kid = services.certificates.keyring.signing_kid
    new_kid = CertificateKeyring.rotate(directory)
    rotated = CertificateKeyring.load(directory)
    try:
        services.certificates.keyring = services.verifier.keyring = rotated
        clerk = await staff_headers(client)
        assert (await _verify(client, clerk, body["qr_text"]))["verdict"] == "valid"
        newer = await _issued(client, app, person)
        assert (await Certificate.get(serial=newer["serial"])).kid == new_kid != old_kid
        kids = {k["kid"]: k["status"] for k in (await client.get("/api/v1/certificate-keys")).json()["keys"]}
        assert kids[old_kid] == "retired" and kids[new_kid] == "current"
        assert verification_url(services.settings.base_url, "x").endswith("/v#x")
    finally:
        services.certificates.keyring = services.verifier.keyring = rotated


async def test_the_public_check_is_limited_per_address_even_in_parallel(client, app, vault) -> None:
    """100 checks at once from one address: exactly the per-minute allowance is answered."""
    person = await create_person(vault=vault)
    qr = (await _issued(client, app, person))["qr_text"]
    cap = app.services.settings.public_verifications_per_minute
    window = per_seconds(cap, 60)
    await app.services.limiter.clear(window, "certificate-verify-ip", "127.0.0.1")  # earlier tests' checks
    try:
        answers = await asyncio.gather(
            *(client.post("/api/v1/public/verifications", json={"qr": qr}) for _ in range(100))
        )
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == cap and statuses.count(429) == 100 - cap, statuses
        assert all(r.json()["code"] == "RATE_LIMITED" for r in answers if r.status_code == 429)
    finally:
        await app.services.limiter.clear(window, "certificate-verify-ip", "127.0.0.1")
