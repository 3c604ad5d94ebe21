"""Inbound Idempotency-Key (api/idempotency.py, services/idempotency) on POST /api/v1/me/certificates:
a retry replays, another body is refused, a running request holds its key, keys are per caller,
expire, are released by a failure, and a burst of one key runs the operation once."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sanic.compat import Header

from api.errors import status_for
from api.idempotency import idempotent, parse_key
from services.certificates.models import Certificate
from services.errors import IdempotencyKeyInFlight, IdempotencyKeyInvalid, IdempotencyKeyRequired
from services.idempotency import IdempotencyStore
from services.idempotency.models import DONE, RUNNING, IdempotencyRecord
from tests.factories import create_person, create_right, id_number_of
from tests.integration.citizen_support import citizen_headers

CERTS = "/api/v1/me/certificates"


def _key() -> str:
    return str(uuid.uuid4())


async def _apply(
    client: httpx.AsyncClient, app: Any, person: Any, key: str | None, purpose: str = "talent"
) -> httpx.Response:
    headers = citizen_headers(app, person)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(CERTS, json={"type": "no-housing", "purpose": purpose}, headers=headers)


async def _issued_to(person: Any) -> int:
    return await Certificate.filter(person_id=person.id).count()


def _in_civil_registry(app: Any, person: Any, vault: Any) -> None:
    """A household of one, so a household purpose (purchase) asks the civil registry."""
    app.services.simulators.civil_registry.load(
        people=[
            {
                "id_number": id_number_of(person, vault=vault),
                "name": person.name,
                "household_id": f"idem-{person.id}",
                "relation": "head",
            }
        ]
    )


async def _wait_for_record(person: Any, key: str, status: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await IdempotencyRecord.filter(scope=f"person:{person.id}", key=key, status=status).exists():
        assert time.monotonic() < deadline, f"no {status} idempotency record within {timeout_s} s"
        await asyncio.sleep(0.005)


# --- replay and refusal -----------------------------------------------------------------------


async def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(client, app, vault) -> None:
    person = await create_person(vault=vault)
    key = _key()
    first = await _apply(client, app, person, key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers

    again = await _apply(client, app, person, key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["cache-control"] == "no-store"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]  # this request's own id
    assert await _issued_to(person) == 1

    quoted = await _apply(client, app, person, f'"{key}"')  # the draft's Structured Field form
    assert quoted.headers.get("Idempotent-Replayed") == "true" and quoted.json() == first.json()
    assert await _issued_to(person) == 1


async def test_the_same_key_with_another_body_is_refused(client, app, vault) -> None:
    person = await create_person(vault=vault)
    key = _key()
    assert (await _apply(client, app, person, key, "talent")).status_code == 201
    other = await _apply(client, app, person, key, "school")
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert other.headers["content-type"].startswith("application/problem+json")
    assert await _issued_to(person) == 1


async def test_a_domain_refusal_is_stored_and_replayed(client, app, vault) -> None:
    person = await create_person(vault=vault)
    await create_right(holders=[(person, 1)])
    key = _key()
    first = await _apply(client, app, person, key)
    assert first.status_code == 409 and first.json()["code"] == "HOLDER_HAS_HOUSING"
    again = await _apply(client, app, person, key)
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_without_a_key_the_route_runs_as_before(client, app, vault) -> None:
    person = await create_person(vault=vault)
    assert (await _apply(client, app, person, None)).status_code == 201
    assert (await _apply(client, app, person, None)).status_code == 201
    assert await _issued_to(person) == 2


@pytest.mark.parametrize(
    "value", ["", '""', "a b", "x" * 256, '"' + "x" * 256 + '"', '"unterminated', 'a"b', '"a\\nb"']
)
async def test_a_malformed_key_is_refused_before_anything_runs(client, app, vault, value: str) -> None:
    person = await create_person(vault=vault)
    r = await _apply(client, app, person, value)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert await _issued_to(person) == 0


async def test_two_key_headers_are_refused(client, app, vault) -> None:
    person = await create_person(vault=vault)
    headers = [*citizen_headers(app, person).items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    r = await client.post(CERTS, json={"type": "no-housing", "purpose": "talent"}, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "IDEMPOTENCY_KEY_INVALID"


def test_key_forms() -> None:
    assert parse_key(["abc-123"]) == "abc-123"
    assert parse_key(['"abc 123"']) == "abc 123"
    assert parse_key(['"a\\"b\\\\c"']) == 'a"b\\c'
    assert parse_key(["x" * 255]) == "x" * 255
    with pytest.raises(IdempotencyKeyInvalid):
        parse_key(["键"])


async def test_a_required_key_is_asked_for_with_400() -> None:
    ran = []

    @idempotent(required=True)
    async def handler(request: Any) -> None:
        ran.append(request)

    with pytest.raises(IdempotencyKeyRequired) as raised:
        await handler(SimpleNamespace(headers=Header()))
    assert status_for(raised.value) == 400 and raised.value.code == "IDEMPOTENCY_KEY_REQUIRED"
    assert ran == []


# --- a running request --------------------------------------------------------------------------


async def test_a_request_still_running_holds_its_key(client, app, vault) -> None:
    person = await create_person(vault=vault)
    _in_civil_registry(app, person, vault)
    registry = app.services.simulators.civil_registry
    # The first request waits 0.6 s at the civil registry, with its key claimed (state running).
    registry.set_fault("latency", count=1, latency_ms=600, operations=["get_household"])
    key = _key()
    try:
        slow = asyncio.create_task(_apply(client, app, person, key, "purchase"))
        await _wait_for_record(person, key, RUNNING)
        busy = await _apply(client, app, person, key, "purchase")
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        other = await _apply(client, app, person, key, "loan")  # another body: refused outright
        assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
        first = await slow
    finally:
        registry.clear_faults()
    assert first.status_code == 201, first.text
    after = await _apply(client, app, person, key, "purchase")
    assert after.status_code == 201 and after.headers["Idempotent-Replayed"] == "true"
    assert after.json() == first.json()
    assert await _issued_to(person) == 1


# --- scope and expiry ------------------------------------------------------------------------


async def test_keys_are_per_caller(client, app, vault) -> None:
    alice, bob = await create_person(vault=vault), await create_person(vault=vault)
    key = _key()
    a = await _apply(client, app, alice, key)
    b = await _apply(client, app, bob, key)
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers and a.json()["serial"] != b.json()["serial"]
    assert await _issued_to(alice) == await _issued_to(bob) == 1


async def test_an_expired_key_runs_again(client, app, vault, clock) -> None:
    person = await create_person(vault=vault)
    key = _key()
    first = await _apply(client, app, person, key)
    assert first.status_code == 201
    clock.advance(seconds=app.services.settings.idempotency_ttl_s - 60)
    assert (await _apply(client, app, person, key)).headers.get("Idempotent-Replayed") == "true"
    clock.advance(seconds=120)  # past the TTL
    again = await _apply(client, app, person, key, "school")  # not REUSED: the old row is gone
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers and again.json()["serial"] != first.json()["serial"]
    assert await _issued_to(person) == 2
    rows = await IdempotencyRecord.filter(scope=f"person:{person.id}", key=key)
    assert len(rows) == 1 and rows[0].status == DONE


async def test_purge_deletes_only_expired_records(app, clock) -> None:
    ttl = app.services.settings.idempotency_ttl_s
    store = IdempotencyStore(clock, ttl)
    old = await store.begin("test:purge", _key(), "a" * 64)
    clock.advance(seconds=ttl / 2)
    young = await store.begin("test:purge", _key(), "b" * 64)
    clock.advance(seconds=ttl / 2 + 1)
    assert await store.purge_expired() >= 1
    assert not await IdempotencyRecord.filter(id=old.record.id).exists()
    assert await IdempotencyRecord.filter(id=young.record.id).exists()
    await store.abandon(young.record)


async def test_a_request_whose_process_died_is_replaced_once_stale(app, clock) -> None:
    store = IdempotencyStore(clock, app.services.settings.idempotency_ttl_s, stale_after_s=600)
    key, fingerprint = _key(), "c" * 64
    dead = await store.begin("test:stale", key, fingerprint)  # never finished nor abandoned
    clock.advance(seconds=599)
    with pytest.raises(IdempotencyKeyInFlight):
        await store.begin("test:stale", key, fingerprint)
    clock.advance(seconds=2)
    retry = await store.begin("test:stale", key, fingerprint)
    assert retry.proceed and retry.record.id != dead.record.id
    assert not await store.finish(dead.record, 201, b"late", {})  # the dead one changes nothing
    assert not await store.abandon(dead.record)
    assert await store.finish(retry.record, 201, b"{}", {"content-type": "application/json"})
    replay = await store.begin("test:stale", key, fingerprint)
    assert replay.replay is not None and replay.replay.body == b"{}" and replay.replay.status == 201


# --- failures are not stored ---------------------------------------------------------------------


async def test_an_upstream_failure_is_not_stored_and_a_retry_runs(client, app, vault) -> None:
    person = await create_person(vault=vault)
    _in_civil_registry(app, person, vault)
    registry = app.services.simulators.civil_registry
    registry.set_fault("error", status=503, operations=["get_household"])
    key = _key()
    try:
        failed = await _apply(client, app, person, key, "purchase")
    finally:
        registry.clear_faults()
    assert failed.status_code == 503, failed.text
    assert not await IdempotencyRecord.filter(scope=f"person:{person.id}", key=key).exists()
    retry = await _apply(client, app, person, key, "purchase")
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert await _issued_to(person) == 1


async def test_an_unexpected_error_is_not_stored(client, app, vault, monkeypatch) -> None:
    person = await create_person(vault=vault)
    certificates = app.services.certificates

    async def broken(**_: Any) -> None:
        raise RuntimeError("a bug")

    key = _key()
    with monkeypatch.context() as patch:
        patch.setattr(certificates, "issue", broken)
        failed = await _apply(client, app, person, key)
    assert failed.status_code == 500 and failed.json()["code"] == "INTERNAL_ERROR"
    assert not await IdempotencyRecord.filter(scope=f"person:{person.id}", key=key).exists()
    retry = await _apply(client, app, person, key)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert await _issued_to(person) == 1


# --- concurrency ---------------------------------------------------------------------------------


async def test_a_burst_of_one_key_runs_once(app, vault) -> None:
    person = await create_person(vault=vault)
    key = _key()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30, limits=limits) as burst:
        answers = await asyncio.gather(*(_apply(burst, app, person, key) for _ in range(100)))
    statuses = sorted({r.status_code for r in answers})
    assert set(statuses) <= {201, 409}, [r.text for r in answers if r.status_code not in (201, 409)]
    ran = [r for r in answers if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(ran) == 1
    serials = {r.json()["serial"] for r in answers if r.status_code == 201}
    assert serials == {ran[0].json()["serial"]}
    assert all(r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE" for r in answers if r.status_code == 409)
    assert await _issued_to(person) == 1
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        after = await _apply(client, app, person, key)
    assert after.headers["Idempotent-Replayed"] == "true" and after.json()["serial"] in serials


# --- documentation ---------------------------------------------------------------------------------


async def test_the_header_is_documented_on_decorated_routes_only(client) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    issue = spec["paths"]["/api/v1/me/certificates"]["post"]
    header = [p for p in issue["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key"]
    assert len(header) == 1 and header[0]["required"] is False
    assert {"400", "409", "422"} <= set(issue["responses"])
    listing = spec["paths"]["/api/v1/me/certificates"]["get"]
    assert not any(p["name"] == "Idempotency-Key" for p in listing.get("parameters", []))
