"""Sign-in, SMS-simulator and date helpers for the property, ward, access-log and change-alert tests.

This module creates no rows: register rows come from tests/factories.py, written directly (these
tests are about reading them); every change a test makes *after* the first read goes through
services/registry_changes.py, as production code must.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt

from services.clock import local_today
from services.models.registry import Person

_token_ids = itertools.count(1)


def years_ago(today: date, years: int, plus_days: int = 0) -> date:
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = date(today.year - years, 3, 1)
    return born + timedelta(days=plus_days)


# --- signing in ----------------------------------------------------------------------------------


async def sign_in_by_sms(client: httpx.AsyncClient, app: Any, phone: str) -> dict[str, str]:
    """The real flow: a code through the SMS simulator, exchanged for tokens."""
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 202, r.text
    async with httpx.AsyncClient() as c:
        messages = (
            await c.get(f"{app.services.settings.sms_gateway_url}/messages", params={"phone": phone})
        ).json()
    code = next(m["params"]["code"] for m in messages if m["template"] == "login_code")
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def citizen_headers(app: Any, person: Person) -> dict[str, str]:
    """A citizen's access token as sign-in issues it, without spending the per-IP SMS quota.

    Once a test has moved the app clock forward, the token's `iat` is set to the real time: PyJWT
    rejects a token "issued in the future" by the wall clock, while services/tokens.py checks
    expiry against the app clock, so only such a token works on both clocks.
    """
    signer = app.services.signer
    claims = {"pid": person.id}
    app_now = app.services.clock.now()
    if app_now <= datetime.now(UTC) + timedelta(seconds=2):
        token, _ = signer.issue(subject=f"person:{person.id}", role="citizen", claims=claims)
    else:
        payload = {
            **claims,
            "iss": app.services.settings.jwt_issuer,
            "aud": app.services.settings.jwt_audience,
            "sub": f"person:{person.id}",
            "role": "citizen",
            "iat": int(time.time()),
            "exp": int(app_now.timestamp()) + signer.ttl_s,
            "jti": f"test-{next(_token_ids)}",
        }
        token = jwt.encode(payload, signer._private_key, algorithm="EdDSA", headers={"kid": signer.kid})
    return {"Authorization": f"Bearer {token}"}


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
