"""A bank registered at run time chooses the MAC of its callbacks (HMAC-SHA256 or HMAC-SM3):
`callback_mac` on the admin API, `participating_bank.callback_mac` (migration 0016), carried into
the CallbackEndpoint the sender signs with. Over HTTP, with the bank simulator told the bank's MAC
as the real bank would configure its receiver. Runs under either cryptography profile
(ESTATE_CRYPTO_PROFILE) and on SQLite or PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sqlite3
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.openapi import response_adapter
from config.settings import Settings, tortoise_config
from integrations.banks.base import CALLBACK_MACS, HMAC_SHA256, HMAC_SM3
from integrations.banks.config import BankConfig
from integrations.banks.http import profile_mac
from services.db import apply_migrations
from services.errors import ValidationFailed
from services.filings import seed_banks
from services.filings.models import ParticipatingBank
from services.filings.views import BankView, CallbackMac
from services.pii import PiiVault
from services.registry.models import Organisation, RealEstateUnit
from tests.conftest import TEST_DATABASE_URL
from tests.factories import create_organisation, make_credit_code
from tests.integration.filing_support import (
    Bank,
    admin_headers,
    create_body,
    holder_with_right,
    key,
    onboard_bank,
    wait_for_callbacks,
)
from tests.support.postgres import scratch_postgres

BANKS = "/api/v1/admin/banks"
FILINGS = "/api/v1/bank/mortgage-filings"


async def _onboard(client: httpx.AsyncClient, app: Any, mac: str | None, **overrides: Any) -> Bank:
    """A bank registered with `callback_mac = mac`, its receiver (the simulator) verifying `mac`."""
    if mac is not None:
        overrides["callback_mac"] = mac
    bank = await onboard_bank(client, app, **overrides)
    _bank_verifies(app, bank, mac, overrides.get("adapter", "signed-json-v2"))
    return bank


def _bank_verifies(app: Any, bank: Bank, mac: str | None, adapter: str = "signed-json-v2") -> None:
    app.services.simulators.banks.add_bank(bank.code, bank.callback_secret, adapter, mac=mac)


async def _file_one(client: httpx.AsyncClient, app: Any, bank: Bank, already: int = 0) -> dict[str, Any]:
    """File a filing without warnings; returns the bank's `registered` callback as delivered."""
    person, right = await holder_with_right()
    unit = await RealEstateUnit.get(id=right.unit_id)  # type: ignore[attr-defined]
    r = await client.post(
        FILINGS,
        json=create_body(person, right, unit.unit_number),
        headers={**bank.headers, "Idempotency-Key": key()},
    )
    assert r.status_code == 201 and r.json()["status"] == "registered", r.text
    found = await wait_for_callbacks(app, bank.code, already + 2, valid_only=False)
    assert len(found) == already + 2, found
    delivered = found[already:]
    assert [d["payload"]["status"] for d in delivered] == ["accepted", "registered"]
    assert all(d["signature_valid"] and d["refusal"] is None for d in delivered), delivered
    return delivered[-1]


# --- the MAC reaches the bank ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "adapter"),
    [
        (HMAC_SM3, "signed-json-v2"),
        (HMAC_SM3, "signed-json-v1"),
        (HMAC_SHA256, "signed-json-v2"),
        (HMAC_SHA256, "signed-json-v1"),
    ],
)
async def test_a_bank_registered_with_a_mac_gets_callbacks_signed_with_it(
    client: httpx.AsyncClient, app: Any, mac: str, adapter: str
) -> None:
    bank = await _onboard(client, app, mac, adapter=adapter)
    admin = await admin_headers(client)
    view = (await client.get(f"{BANKS}/{bank.code}", headers=admin)).json()
    assert view["callback_mac"] == mac and view["adapter"] == adapter
    listed = (await client.get(BANKS, headers=admin)).json()["items"]
    assert [b["callback_mac"] for b in listed if b["code"] == bank.code] == [mac]
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac == mac
    endpoint = await app.services.banks.callback_endpoint(bank.code)
    assert endpoint is not None and endpoint.mac == mac

    delivery = await _file_one(client, app, bank)
    # The simulator checked the signature with this MAC only (a value labelled for the other one
    # is refused WRONG_MAC), whatever the session's profile.
    assert delivery["mac"] == mac


async def test_a_bank_without_a_mac_gets_the_profiles(
    client: httpx.AsyncClient, app: Any, settings: Settings
) -> None:
    bank = await _onboard(client, app, None)
    admin = await admin_headers(client)
    assert (await client.get(f"{BANKS}/{bank.code}", headers=admin)).json()["callback_mac"] is None
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac is None
    delivery = await _file_one(client, app, bank)
    assert delivery["mac"] == profile_mac(settings.crypto_profile)


async def test_the_demo_seed_keeps_the_mac_of_config_banks(app: Any, vault: PiiVault) -> None:
    """config/banks.toml's `callback_mac` reaches the row `seed_banks` writes, and so the sender."""
    seeded = []
    for mac in (HMAC_SM3, None):
        org = await create_organisation(kind="bank")
        seeded.append(
            BankConfig(
                code=org.bank_code or "",
                name=org.name,
                uscc=org.credit_code,
                client_id=f"{org.bank_code}-client",
                client_secret="c" * 24,
                callback_url="",
                callback_secret="s" * 24,
                adapter="signed-json-v2",
                callback_mac=mac,
            )
        )
    assert await seed_banks(seeded, vault=vault, clock=app.services.clock) == 2
    endpoints = [await app.services.banks.callback_endpoint(b.code) for b in seeded]
    assert [e.mac if e else "missing" for e in endpoints] == [HMAC_SM3, None]


# --- refused values -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["hmac-md5", "HMAC-SM3", "sm3", "", 1, ["hmac-sm3"]])
async def test_an_invalid_mac_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, app: Any, bad: Any
) -> None:
    admin = await admin_headers(client)
    code = f"bad-mac-{secrets.token_hex(4)}"
    credit_code = make_credit_code()
    body = {
        "code": code,
        "name": "错误MAC银行",
        "credit_code": credit_code,
        "callback_url": "https://bank.example/callback",
        "callback_secret": "s" * 24,
        "callback_mac": bad,
    }
    r = await client.post(BANKS, json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert [e["field"] for e in problem["errors"]] == ["callback_mac"]
    assert not await ParticipatingBank.exists(code=code)
    assert not await Organisation.exists(credit_code=credit_code)
    assert (await client.get(f"{BANKS}/{code}", headers=admin)).status_code == 404

    # A change to a bad value is refused too, and the bank keeps its MAC.
    bank = await _onboard(client, app, HMAC_SM3)
    r = await client.patch(f"{BANKS}/{bank.code}", json={"callback_mac": bad}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_FAILED", r.text
    assert [e["field"] for e in r.json()["errors"]] == ["callback_mac"]
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac == HMAC_SM3


async def test_the_service_refuses_a_mac_it_does_not_know(client: httpx.AsyncClient, app: Any) -> None:
    """The rule is the service's as well, for a caller that is not the API (CALLBACK_MACS)."""
    bank = await _onboard(client, app, HMAC_SHA256)
    with pytest.raises(ValidationFailed, match="callback_mac"):
        await app.services.banks.set_callback_mac(bank.code, "hmac-md5")
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac == HMAC_SHA256


def test_the_api_offers_exactly_the_macs_a_bank_may_verify() -> None:
    assert set(typing.get_args(CallbackMac)) == CALLBACK_MACS


async def test_changing_a_bank_that_does_not_exist_is_not_found(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    r = await client.patch(f"{BANKS}/no-such-bank", json={"callback_mac": HMAC_SM3}, headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = await client.patch(f"{BANKS}/no-such-bank", json={"adapter": "x"}, headers=admin)
    assert r.status_code == 422  # only callback_mac may change here


async def test_only_an_administrator_changes_a_bank(client: httpx.AsyncClient, app: Any) -> None:
    bank = await _onboard(client, app, HMAC_SHA256)
    r = await client.patch(f"{BANKS}/{bank.code}", json={"callback_mac": HMAC_SM3}, headers=bank.headers)
    assert r.status_code == 403, r.text
    r = await client.patch(f"{BANKS}/{bank.code}", json={"callback_mac": HMAC_SM3})
    assert r.status_code == 401
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac == HMAC_SHA256


# --- a change takes effect on the next callback ---------------------------------------------------


async def test_a_change_signs_the_next_callback_with_the_new_mac(
    client: httpx.AsyncClient, app: Any, settings: Settings
) -> None:
    admin = await admin_headers(client)
    bank = await _onboard(client, app, HMAC_SHA256)
    assert (await _file_one(client, app, bank))["mac"] == HMAC_SHA256
    before = (await client.get(f"{BANKS}/{bank.code}", headers=admin)).json()

    r = await client.patch(f"{BANKS}/{bank.code}", json={"callback_mac": HMAC_SM3}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    changed = r.json()
    response_adapter(BankView).validate_json(r.content)  # the documented shape, no more, no less
    assert set(changed) == {f.name for f in dataclasses.fields(BankView)}
    assert changed["callback_mac"] == HMAC_SM3 and changed["updated_at"] >= before["updated_at"]
    assert {k: v for k, v in changed.items() if k not in ("callback_mac", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("callback_mac", "updated_at")
    }
    _bank_verifies(app, bank, HMAC_SM3)  # the bank switches its receiver at the same moment
    assert (await _file_one(client, app, bank, already=2))["mac"] == HMAC_SM3

    # A body without the field keeps it; null goes back to the profile's MAC.
    r = await client.patch(f"{BANKS}/{bank.code}", json={}, headers=admin)
    assert r.status_code == 200 and r.json()["callback_mac"] == HMAC_SM3
    r = await client.patch(f"{BANKS}/{bank.code}", json={"callback_mac": None}, headers=admin)
    assert r.status_code == 200 and r.json()["callback_mac"] is None
    assert (await ParticipatingBank.get(code=bank.code)).callback_mac is None
    _bank_verifies(app, bank, None)
    delivery = await _file_one(client, app, bank, already=4)
    assert delivery["mac"] == profile_mac(settings.crypto_profile)


# --- documentation --------------------------------------------------------------------------------


async def test_the_field_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    schemas = spec.get("components", {}).get("schemas", {})

    def resolved(node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        return schemas[ref.rsplit("/", 1)[-1]] if ref else node

    def mac_schema(operation: dict[str, Any], *, answer: bool) -> dict[str, Any]:
        if answer:
            media = operation["responses"]["200" if "200" in operation["responses"] else "201"]
        else:
            media = operation["requestBody"]
        schema = resolved(media["content"]["application/json"]["schema"])
        return schema["properties"]["callback_mac"]

    for method, path in (("post", BANKS), ("patch", BANKS + "/{code}")):
        operation = spec["paths"][path][method]
        for answer in (False, True):
            schema = mac_schema(operation, answer=answer)
            flat = str(schema)
            assert HMAC_SHA256 in flat and HMAC_SM3 in flat, (method, path, answer, schema)
            assert "null" in flat and "profile" in flat, schema  # null: the profile's MAC


# --- the migration --------------------------------------------------------------------------------


@asynccontextmanager
async def _scratch_database(tmp_path: Path) -> AsyncIterator[str]:
    if TEST_DATABASE_URL:
        async with scratch_postgres(TEST_DATABASE_URL, prefix="bank_mac") as url:
            yield url
    else:
        yield f"sqlite://{tmp_path / 'before-0016.sqlite3'}"


async def _sql(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Plain SQL outside Tortoise, as the previous version of the service left the database."""
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            n = iter(range(1, 100))
            pg_query = "".join(f"${next(n)}" if ch == "?" else ch for ch in query)
            return [dict(r) for r in await conn.fetch(pg_query, *args)]
        finally:
            await conn.close()
    lite = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
    lite.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in lite.execute(query, args).fetchall()]
    finally:
        lite.close()


async def test_migration_0016_adds_the_column_to_a_database_with_banks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _scratch_database(tmp_path) as url:
        config = tortoise_config(url)
        await apply_migrations(config, target="models.0015_query_indexes")
        postgres = url.startswith("postgres")
        stamp: Any = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
        if not postgres:
            stamp = stamp.isoformat()
        for n in (1, 2):
            await _sql(
                url,
                "INSERT INTO organisation (id, name, credit_code, kind, bank_code, created_at)"
                " VALUES (?, ?, ?, 'bank', ?, ?)",
                n,
                f"旧银行{n}",
                make_credit_code(),
                f"old-bank-{n}",
                stamp,
            )
            await _sql(
                url,
                "INSERT INTO participating_bank (id, code, organisation_id, branches, filing_types,"
                " daily_quota, callback_url, callback_secret_enc, adapter, status, created_at, updated_at)"
                f" VALUES (?, ?, ?, {'?::jsonb' if postgres else '?'}, 'create change cancel', 1000, '',"
                " 'enc', 'signed-json-v2', 'active', ?, ?)",
                n,
                f"old-bank-{n}",
                n,
                "[]",
                stamp,
                stamp,
            )

        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            await apply_migrations(config)
        statements = [r.getMessage() for r in caplog.records if "participating_bank" in r.getMessage()]
        assert any('ADD COLUMN "callback_mac"' in q for q in statements), statements
        assert not any("CREATE TABLE" in q or "DROP TABLE" in q for q in statements), statements  # no copy

        rows = await _sql(url, "SELECT code, callback_mac, adapter FROM participating_bank ORDER BY id")
        assert rows == [
            {"code": "old-bank-1", "callback_mac": None, "adapter": "signed-json-v2"},
            {"code": "old-bank-2", "callback_mac": None, "adapter": "signed-json-v2"},
        ]  # every existing bank keeps the profile's MAC it has been sent
        await _sql(url, "UPDATE participating_bank SET callback_mac = ? WHERE id = 2", HMAC_SM3)
        rows = await _sql(url, "SELECT callback_mac FROM participating_bank ORDER BY id")
        assert [r["callback_mac"] for r in rows] == [None, HMAC_SM3]
        applied = await _sql(url, "SELECT name FROM tortoise_migrations WHERE name LIKE '0016%'")
        assert [r["name"] for r in applied] == ["0016_bank_callback_mac"]
