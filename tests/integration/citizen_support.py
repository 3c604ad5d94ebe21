"""Sign-in, SMS-simulator and date helpers for the property, ward, access-log and change-alert tests.

This module creates no rows: register rows come from tests/factories.py, written directly (these
tests are about reading them); every change a test makes *after* the first read goes through
services/registry_changes.py, as production code must.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import date, timedelta
from typing import Any

import httpx

from services.clock import local_today
from services.identity.auth import AuthPolicy, AuthService
from services.registry.models import Person


def years_ago(today: date, years: int, plus_days: int = 0) -> date:
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = date(today.year - years, 3, 1)
    return born + timedelta(days=plus_days)


# --- signing in ----------------------------------------------------------------------------------


async def login_codes(app: Any, phone: str) -> list[str]:
    """The sign-in codes the SMS simulator holds for `phone`, newest first."""
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{app.services.settings.sms_gateway_url}/messages", params={"phone": phone})
    return [str(m["params"]["code"]) for m in r.json() if m["template"] == "login_code"]


async def wait_for_new_code(app: Any, phone: str, *, seen: int, timeout_s: float = 10.0) -> str:
    """The newest code once more than `seen` have arrived: the outbox worker sends it after the
    202, so it arrives a moment later."""
    deadline = time.monotonic() + timeout_s
    while True:
        codes = await login_codes(app, phone)
        if len(codes) > seen:
            return codes[0]
        assert time.monotonic() < deadline, f"no new sign-in code for {phone} within {timeout_s} s"
        await asyncio.sleep(0.02)


async def request_code(client: httpx.AsyncClient, app: Any, phone: str) -> str:
    """Ask for a sign-in code over HTTP and read it from the SMS simulator."""
    seen = len(await login_codes(app, phone))
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 202, r.text
    return await wait_for_new_code(app, phone, seen=seen)


async def sign_in_by_sms(client: httpx.AsyncClient, app: Any, phone: str) -> dict[str, str]:
    """The real flow: a code through the SMS simulator, exchanged for tokens."""
    code = await request_code(client, app, phone)
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def citizen_headers(app: Any, person: Person) -> dict[str, str]:
    """A citizen's access token as sign-in issues it, without spending the per-IP SMS quota.

    Issued on the app's clock, which a test may have moved: services/tokens.py checks every time
    against that clock, and PyJWT's own wall-clock checks are off there.
    """
    signer = app.services.signer
    token, _ = signer.issue(subject=f"person:{person.id}", role="citizen", claims={"pid": person.id})
    return {"Authorization": f"Bearer {token}"}


def auth_service(
    app: Any, *, limiter: Any = None, kv: Any = None, **policy: Any
) -> AuthService:
    """A second AuthService on the app's own signer, gateway, vault and clock, with the app's
    policy changed by `policy` (e.g. a small cap) and its own limiter or store where given."""
    services = app.services
    return AuthService(
        signer=services.signer,
        sms=services.integrations.sms,
        limiter=limiter or services.limiter,
        kv=kv or services.kv,
        vault=services.vault,
        clock=services.clock,
        policy=dataclasses.replace(AuthPolicy.from_settings(services.settings), **policy),
        otp_secret="test",
    )


def shanghai_today(app: Any) -> date:
    return local_today(app.services.clock)


async def sms_to(app: Any, phone: str | None, template: str | None = None) -> list[dict[str, Any]]:
    assert phone, "the person has no phone"
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{app.services.settings.sms_gateway_url}/messages", params={"phone": phone})
    return [m for m in r.json() if template is None or m["template"] == template]


async def wait_for_sms(
    app: Any, phone: str | None, template: str, count: int, timeout_s: float = 8.0
) -> list[dict[str, Any]]:
    """Poll the SMS simulator until `count` messages arrived (the outbox delivers them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await sms_to(app, phone, template)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)
