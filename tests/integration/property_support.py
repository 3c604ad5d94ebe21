"""Shared helpers for the property, ward, access-log and change-alert tests.

Register rows are written directly (these tests are about reading them); every change a test
makes *after* the first read goes through services/registry_changes.py, as production code must.
Values stay out of the ranges services/demo/ and tests/factories.py use: ID numbers carry the
retired address code 310230, phones start 147, units use cadastral district 950 and
certificates use sequences 8,000,000-8,999,999.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt

from services.clock import local_today
from services.identifiers import id_check_char, mask_id_number
from services.models.registry import Organisation, Person, RealEstateUnit, Right, RightHolder
from services.pii import PiiVault

_rng = random.Random(time.time_ns())
_counter = itertools.count(_rng.randrange(1_000, 9_000_000))
_used_ids: set[str] = set()

DISTRICTS = [
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
    "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
]  # fmt: skip
NAMES = ["王小明", "李华", "张伟", "欧阳娜娜", "陈静", "刘洋", "赵敏", "孙丽"]


def make_id_number(born: date) -> str:
    while True:
        first17 = f"310230{born:%Y%m%d}{_rng.randrange(0, 1000):03d}"
        value = first17 + id_check_char(first17)
        if value not in _used_ids:
            _used_ids.add(value)
            return value


def fresh_phone() -> str:
    return f"147{next(_counter) % 100_000_000:08d}"


def years_ago(today: date, years: int, plus_days: int = 0) -> date:
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = date(today.year - years, 3, 1)
    return born + timedelta(days=plus_days)


async def create_person(
    *,
    vault: PiiVault,
    name: str | None = None,
    phone: str | bool | None = True,
    born: date | None = None,
    id_number: str | None = None,
) -> Person:
    """phone=True gives a fresh phone, None/False none, a string that phone."""
    id_number = id_number or make_id_number(
        born or date(1980 + _rng.randrange(0, 20), 1 + _rng.randrange(12), 10)
    )
    born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    return await Person.create(
        name=name or _rng.choice(NAMES),
        id_number_enc=vault.encrypt(id_number),
        id_number_index=vault.blind_index(id_number),
        id_number_masked=mask_id_number(id_number),
        phone=fresh_phone() if phone is True else (phone or None),
        birth_date=born,
        gender="M" if int(id_number[16]) % 2 else "F",
    )


async def create_unit(
    *, district: str = "310115", use: str = "residential", area: str = "89.50"
) -> RealEstateUnit:
    n = next(_counter)
    number = f"{district}950{n % 1000:03d}GB{n % 99999 + 1:05d}F{n % 9999 + 1:04d}{n % 9998 + 1:04d}"
    assert len(number) == 28
    return await RealEstateUnit.create(
        unit_number=number,
        district_code=district,
        address=f"测试路{n % 2000 + 1}号{n % 30 + 1}室",
        use=use,
        area_m2=Decimal(area),
    )


def certificate_number(district_name: str = "浦东新区") -> str:
    return f"沪(2024){district_name}不动产权第{8_000_000 + next(_counter) % 1_000_000:07d}号"


async def create_right(
    *,
    holders: list[tuple[Person, str]] | list[tuple[Person, Decimal]],
    unit: RealEstateUnit | None = None,
    district: str = "310115",
    right_type: str = "house_ownership",
    status: str = "current",
    registered_at: datetime | None = None,
) -> Right:
    unit = unit or await create_unit(district=district)
    right = await Right.create(
        certificate_number=certificate_number(),
        unit=unit,
        right_type=right_type,
        co_ownership="sole" if len(holders) == 1 else "shares",
        status=status,
        registered_at=registered_at or datetime.now(UTC) - timedelta(days=400),
        ended_at=datetime.now(UTC) - timedelta(days=1) if status == "historical" else None,
        district_code=unit.district_code,
    )
    for person, share in holders:
        await RightHolder.create(right=right, person=person, share=Decimal(str(share)))
    return right


async def create_bank(name: str = "测试银行上海分行") -> Organisation:
    n = next(_counter)
    return await Organisation.create(name=name, credit_code=f"9131TEST{n:010d}"[:18], kind="bank")


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
            "jti": f"test-{next(_counter)}",
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
