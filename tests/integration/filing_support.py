"""Helpers of the bank filing tests: a bank onboarded through the admin API, signed in with the
credentials it was given, and filings built on real register rows."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from services.registry.models import Person, Right
from tests.factories import (
    DEFAULT_STAFF_PASSWORD,
    create_person,
    create_right,
    create_staff,
    id_number_of,
    make_credit_code,
)

_seq = itertools.count(1)


@dataclass
class Bank:
    code: str
    client_id: str
    client_secret: str
    callback_secret: str
    headers: dict[str, str]


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    admin = await create_staff(role="admin", office_code=None)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": admin.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def bank_token(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/client-tokens",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


async def onboard_bank(
    client: httpx.AsyncClient, app: Any, admin: dict[str, str] | None = None, **overrides: Any
) -> Bank:
    """Register a bank through the admin API, as an administrator does at run time; the bank's
    receiver (the simulator) is told the callback secret, as the real bank would be."""
    admin = admin or await admin_headers(client)
    sim = app.services.simulators.banks
    code = f"rt-bank-{next(_seq)}-{secrets.token_hex(2)}"
    callback_secret = secrets.token_urlsafe(24)
    body = {
        "code": code,
        "name": f"运行时银行{code}",
        "credit_code": make_credit_code(),
        "branches": ["浦东支行"],
        "callback_url": f"{sim.base_url}/{code}/callback",
        "callback_secret": callback_secret,
        "adapter": "signed-json-v2",
        **overrides,
    }
    r = await client.post("/api/v1/admin/banks", json=body, headers=admin)
    assert r.status_code == 201, r.text
    sim.add_bank(code, callback_secret, body["adapter"])
    r = await client.post(f"/api/v1/admin/banks/{code}/credentials", headers=admin)
    assert r.status_code == 201, r.text
    credentials = r.json()
    token = await bank_token(client, credentials["client_id"], credentials["client_secret"])
    assert token.status_code == 200, token.text
    return Bank(
        code=code,
        client_id=credentials["client_id"],
        client_secret=credentials["client_secret"],
        callback_secret=callback_secret,
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )


async def holder_with_right(**right: Any) -> tuple[Person, Right]:
    person = await create_person()
    return person, await create_right(holders=[(person, 1)], **right)


def create_body(person: Person, right: Right, unit_number: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "create",
        "unit_number": unit_number,
        "mortgagors": [{"id_number": id_number_of(person), "name": person.name}],
        "amount_fen": 120_000_000,
        "term_start": date(2026, 1, 1).isoformat(),
        "term_end": date(2046, 1, 1).isoformat(),
        "contract_number": f"HT-{next(_seq):06d}",
        "submitted_by": "信贷员王五",
    }
    body.update(overrides)
    return body


def key() -> str:
    return f"k-{secrets.token_hex(8)}"


async def wait_for_callbacks(
    app: Any, bank_code: str, count: int, *, timeout_s: float = 10.0, valid_only: bool = True
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    sim = app.services.simulators.banks
    while True:
        found = sim.received(bank_code, valid_only=valid_only)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)
