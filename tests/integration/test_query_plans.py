"""Every hot query uses an index (issue 15): on a city-sized register, no request of a citizen, a
guardian, a clerk, a bank or the public makes PostgreSQL scan a large table from end to end.

The module loads a register once (demo/city.py `seed_city`: the demo base plus PERSONS generated
persons and their units, rights, holders, mortgages, encumbrances and guardianship links), pads the
tables the loader keeps small and the service fills as it runs (access log, slots, appointments,
certificates, messages, filings, case parties, events and utility transfers, outbox, idempotency
records: tests/support/padding.py) to tens of thousands of rows each, runs the real app on it with every
statement recorded (tests/support/query_plans.py), makes one or a few realistic requests per route
and role, reads and writes, and then EXPLAINs each distinct statement with its own arguments. A
`Seq Scan` of a table over 10,000 rows (a partition: of a partitioned table over 10,000 rows)
fails the test, naming the request, the statement, the table and the planner's estimates; the
output lists every table the plans touch, with its size. docs/scale.md ("Query plans") shows the
failure with an index dropped.

`TEST_PLANS_DATABASE_URL` runs the same requests on a register already loaded (kept; padded the
first time, and the requests add rows to it), with the PII keys of the environment (ESTATE_PII_KEY
...), as the service reads them: to look at one plan without loading the city each time.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings, load_settings
from services.pii import PiiVault
from tests.support.padding import PaddingReport, pad_register
from tests.support.postgres import scratch_postgres
from tests.support.query_plans import QueryRecorder, recording, seq_scans_of_large_tables, settle
from tests.support.server import RunningApp, running_app

pytestmark = pytest.mark.postgres

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_PLANS_DATABASE_URL = os.environ.get("TEST_PLANS_DATABASE_URL", "")
NEEDS_PG = "needs PostgreSQL: set TEST_DATABASE_URL"

# The register's size: loaded in about a minute on two shared cores (docs/scale.md).
PERSONS, UNITS, RIGHTS = 200_000, 300_000, 400_000

CLERK_OFFICE = "OFF-310115-01"  # clerk.pudong of the demo base (demo/identities.py)


# --- the register and the app ----------------------------------------------------------------------


def _settings(database_url: str, key_dir: Path) -> Settings:
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "key_dir": key_dir,
        "redis_url": os.environ.get("TEST_REDIS_URL") or None,
        "redis_key_prefix": f"estate-plans-{uuid.uuid4().hex[:8]}:",
        "simulators_in_process": True,
        "simulator_base_port": 0,
        "load_demo_data": False,
        "migrate_on_start": True,  # a kept register gets the new migrations
        # No background worker: what runs while a request is made is what the request sent.
        "outbox_in_process": False,
        "guardianship_feed_poll_interval_s": 0,
        "slot_release_interval_s": 0,
        "external_timeout_s": 2.0,
        "external_retries": 1,
        "log_json": False,
    }
    if TEST_PLANS_DATABASE_URL:  # the keys the register was loaded with
        return load_settings(**overrides)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        secret_key=secrets.token_urlsafe(32),
        pii_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        pii_sm4_key=base64.b64encode(secrets.token_bytes(16)).decode(),
        blind_index_key=secrets.token_urlsafe(32),
        **overrides,
    )


@dataclass
class City:
    settings: Settings
    database_url: str
    load_seconds: float
    padding: PaddingReport


@pytest.fixture(scope="module")
def vault() -> None:
    """This module writes no rows with the factories, and builds its own vault: the session's
    (tests/conftest.py) and its database are not needed here."""


@pytest.fixture(scope="module")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[City]:
    key_dir = tmp_path_factory.mktemp("plans-keys")
    if TEST_PLANS_DATABASE_URL:
        settings = _settings(TEST_PLANS_DATABASE_URL, key_dir)
        padding = await pad_register(settings, TEST_PLANS_DATABASE_URL)
        yield City(settings, TEST_PLANS_DATABASE_URL, 0.0, padding)
        return
    if not TEST_DATABASE_URL:
        pytest.skip(NEEDS_PG)
    from demo.city import seed_city

    async with scratch_postgres(TEST_DATABASE_URL, prefix="plans") as url:
        settings = _settings(url, key_dir)
        started = time.perf_counter()
        await seed_city(settings, persons=PERSONS, units=UNITS, rights=RIGHTS, progress=False)
        loaded = time.perf_counter() - started
        yield City(settings, url, loaded, await pad_register(settings, url))


@pytest.fixture(scope="module")
async def recorded(city: City) -> AsyncIterator[tuple[RunningApp, QueryRecorder]]:
    with recording(QueryRecorder()) as recorder:
        async with running_app(city.settings) as app:
            yield app, recorder


# --- who makes the requests ------------------------------------------------------------------------

# Holders of 2 to 5 current rights, in a random spread over the whole register (mostly generated
# persons); ended rights in the sample's history make the detail read earlier rights too.
_HOLDERS = """
SELECT h.person_id FROM right_holder h JOIN "right" r ON r.id = h.right_id AND r.status = 'current'
 WHERE h.person_id IS NOT NULL AND h.person_id % 97 = $1
 GROUP BY h.person_id HAVING COUNT(*) BETWEEN 2 AND 5 LIMIT 3
"""
# A sole holder of a current right with nothing on it and no case open on its unit: a seller.
_SELLABLE = """
SELECT r.id AS right_id, h.person_id, u.unit_number FROM "right" r
  JOIN right_holder h ON h.right_id = r.id AND h.person_id IS NOT NULL
  JOIN real_estate_unit u ON u.id = r.unit_id
 WHERE r.status = 'current' AND r.co_ownership = 'sole' AND r.right_type = 'house_ownership'
   AND r.id % 89 = $1
   AND NOT EXISTS (SELECT 1 FROM mortgage m WHERE m.right_id = r.id AND m.status = 'active')
   AND NOT EXISTS (SELECT 1 FROM encumbrance e WHERE e.right_id = r.id AND e.status = 'active')
   AND NOT EXISTS (SELECT 1 FROM registration_case c WHERE c.unit_id = r.unit_id AND c.open_key IS NOT NULL)
 LIMIT 2
"""

_FREE_SLOT = """
SELECT s.id, (s.starts_at AT TIME ZONE 'Asia/Shanghai')::date AS day FROM slot s
 WHERE s.office_id = $1 AND s.service = 'transfer' AND s.released_at <= now()
   AND s.starts_at > now() + interval '2 days'
   AND EXISTS (SELECT 1 FROM slot_stripe t WHERE t.slot_id = s.id AND t.booked < t.capacity)
 ORDER BY s.starts_at LIMIT 1
"""


@dataclass
class Actors:
    citizens: list[int]  # person ids
    seller: tuple[int, int, str]  # person id, right id, unit number
    buyer: int
    mortgagor: tuple[int, int, str]
    slot: tuple[int, str]  # a free slot at the clerk's office, days ahead, and its day in Shanghai
    guardian_key: str = "guardian"
    ward_key: str = "child"


async def _actors(url: str) -> Actors:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        bucket = secrets.randbelow(89)  # a kept register gets new actors on each run
        holders = [int(r["person_id"]) for r in await conn.fetch(_HOLDERS, bucket % 97)]
        sellable = [
            (int(r["person_id"]), int(r["right_id"]), str(r["unit_number"]))
            for r in await conn.fetch(_SELLABLE, bucket)
        ]
        buyer = await conn.fetchval(
            "SELECT id FROM person WHERE id % 101 = $1 AND id <> ALL($2::bigint[]) LIMIT 1",
            bucket,
            [p for p, _, _ in sellable],
        )
        slot = await conn.fetchrow(_FREE_SLOT, CLERK_OFFICE)
    finally:
        await conn.close()
    assert slot is not None, f"no free transfer slot at {CLERK_OFFICE} in the coming days"
    assert len(holders) >= 2 and len(sellable) == 2 and buyer, "the register is too small to find the actors"
    return Actors(
        citizens=holders,
        seller=sellable[0],
        buyer=int(buyer),
        mortgagor=sellable[1],
        slot=(int(slot["id"]), str(slot["day"])),
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Requests:
    """The requests of one run, each recorded under its label; asserts each gets what it expects."""

    def __init__(self, app: RunningApp, recorder: QueryRecorder, client: httpx.AsyncClient) -> None:
        self.app, self.recorder, self.client = app, recorder, client

    async def __call__(
        self, method: str, path: str, headers: dict[str, str] | None = None, *, expect: int = 200, **kw: Any
    ) -> Any:
        label = f"{method} {path.split('?')[0]}"
        with self.recorder.during(label):
            r = await self.client.request(method, path, headers=headers, **kw)
            await settle()
        assert r.status_code == expect, f"{label}: {r.status_code} {r.text[:300]}"
        return r.json() if r.headers.get("content-type", "").endswith("json") else r.content

    def citizen(self, person_id: int) -> dict[str, str]:
        token, _ = self.app.services.signer.issue(
            subject=f"person:{person_id}", role="citizen", claims={"pid": person_id}
        )
        return _bearer(token)


async def _person(app: RunningApp, person_id: int) -> tuple[str, str]:
    """(ID number, name) of a person, with the app's keys."""
    from services.registry.models import Person

    person = await Person.get(id=person_id)
    return app.services.vault.decrypt(person.id_number_enc), person.name


async def _fixed_person_id(app: RunningApp, key: str) -> tuple[int, str, str]:
    from demo.identities import FIXED_PERSONS
    from services.registry.models import Person

    fixed = next(p for p in FIXED_PERSONS if p.key == key)
    vault: PiiVault = app.services.vault
    person = await Person.get(id_number_index=vault.blind_index(fixed.id_number))
    return int(person.id), fixed.id_number, fixed.name


# --- the requests, by role -------------------------------------------------------------------------


async def public_requests(call: Requests) -> None:
    await call("GET", "/api/v1/offices")
    await call("GET", f"/api/v1/offices/{CLERK_OFFICE}/slots?service=transfer")


async def citizen_requests(call: Requests, actors: Actors) -> None:
    for person_id in actors.citizens[:2]:
        me = call.citizen(person_id)
        await call("GET", "/api/v1/me", me)
        page = await call("GET", "/api/v1/me/properties?include_historical=true", me)
        for item in page["items"][:2]:
            await call("GET", f"/api/v1/me/properties/{item['right_id']}", me)
        await call("GET", "/api/v1/me/access-log", me)
        await call("GET", "/api/v1/me/messages", me)
        await call("GET", "/api/v1/me/certificates", me)
        await call("GET", "/api/v1/me/appointments", me)
        await call("GET", "/api/v1/me/transfers", me)
        await call("GET", "/api/v1/me/cancellations", me)
        await call("GET", "/api/v1/me/wards", me)
    me = call.citizen(actors.citizens[-1])
    # No-housing certificate: decided from the register (a holder is refused, after the same reads).
    issued = await call(
        "POST",
        "/api/v1/me/certificates",
        me,
        json={"type": "no-housing", "purpose": "talent"},
        expect=409,
    )
    assert issued["code"] == "HOLDER_HAS_HOUSING", issued
    no_housing, _, _ = await _fixed_person_id(call.app, "no_housing")
    view = await call(
        "POST",
        "/api/v1/me/certificates",
        call.citizen(no_housing),
        json={"type": "no-housing", "purpose": "talent"},
        expect=201,
    )
    clerk = await clerk_headers(call)
    await call("POST", "/api/v1/verifications", clerk, json={"qr": view["qr_text"]})
    shown = await call(
        "POST",
        f"/api/v1/me/certificates/{view['serial']}/presentations",
        call.citizen(no_housing),
        expect=201,
    )
    await call("POST", "/api/v1/public/verifications", json={"qr": shown["qr_text"]})
    # An appointment at the clerk's office, then the office's day.
    slot_id, day = actors.slot
    day_slots = await call("GET", f"/api/v1/offices/{CLERK_OFFICE}/slots?service=transfer&date={day}")
    assert any(s["id"] == slot_id for s in day_slots["slots"]), day_slots
    booked = await call(
        "POST", "/api/v1/me/appointments", me, json={"slot_id": slot_id, "service": "transfer"}, expect=201
    )
    await call("GET", "/api/v1/me/appointments", me)
    await call("GET", f"/api/v1/clerk/appointments?date={day}", clerk)
    await call("DELETE", f"/api/v1/me/appointments/{booked['id']}", me)


async def clerk_headers(call: Requests) -> dict[str, str]:
    from demo.identities import FIXED_STAFF

    staff = next(s for s in FIXED_STAFF if s.username == "clerk.pudong")
    token = await call(
        "POST", "/api/v1/auth/staff-tokens", json={"username": staff.username, "password": staff.password}
    )
    return _bearer(token["access_token"])


async def clerk_requests(call: Requests, actors: Actors) -> None:
    clerk = await clerk_headers(call)
    for person_id in actors.citizens[:2]:
        id_number, _ = await _person(call.app, person_id)
        body = {"id_number": id_number, "purpose": "holder_request", "reference": "查询申请 执行计划"}
        await call("POST", "/api/v1/clerk/property-queries", clerk, json=body)
    await call("GET", "/api/v1/clerk/cases", clerk)
    await call("GET", "/api/v1/clerk/cases?state=applied&kind=transfer", clerk)


async def transfer_requests(call: Requests, actors: Actors) -> None:
    """A transfer opened by a seller at the clerk's office, confirmed by the buyer, read and moved
    by the clerk."""
    seller_id, right_id, _ = actors.seller
    buyer_number, buyer_name = await _person(call.app, actors.buyer)
    call.app.services.simulators.civil_registry.load(people=[{"id_number": buyer_number, "name": buyer_name}])
    seller = call.citizen(seller_id)
    body = {
        "right_id": right_id,
        "buyers": [{"id_number": buyer_number, "name": buyer_name, "share": "1"}],
        "price_fen": 350_000_000,
        "contract_number": f"HT-PLANS-{secrets.token_hex(4)}",
        "office_code": CLERK_OFFICE,
    }
    case = await call("POST", "/api/v1/me/transfers", seller, json=body, expect=201)
    case_id = case["case_id"]
    await call("GET", f"/api/v1/me/transfers/{case_id}", seller)
    buyer = call.citizen(actors.buyer)
    await call("GET", "/api/v1/me/transfers", buyer)
    await call("POST", f"/api/v1/me/transfers/{case_id}/confirm", buyer)
    clerk = await clerk_headers(call)
    await call("GET", f"/api/v1/clerk/cases/{case_id}", clerk)
    await call(
        "POST",
        f"/api/v1/clerk/cases/{case_id}/moves",
        clerk,
        json={"to": "not_accepted", "reason": "执行计划测试"},
    )


async def guardian_requests(call: Requests) -> None:
    guardian_id, guardian_number, guardian_name = await _fixed_person_id(call.app, "guardian")
    _, ward_number, ward_name = await _fixed_person_id(call.app, "child")
    call.app.services.simulators.civil_registry.load(
        people=[
            {"id_number": ward_number, "name": ward_name},
            {"id_number": guardian_number, "name": guardian_name},
        ],
        guardianships=[(guardian_number, ward_number, "母亲")],
    )
    me = call.citizen(guardian_id)
    wards = await call("GET", "/api/v1/me/wards", me)
    if not any(w["status"] == "active" for w in wards["items"]):
        await call("POST", "/api/v1/me/wards", me, json={"id_number": ward_number}, expect=201)
        wards = await call("GET", "/api/v1/me/wards", me)
    link = next(w for w in wards["items"] if w["status"] == "active")
    page = await call("GET", f"/api/v1/me/wards/{link['ward_id']}/properties", me)
    for item in page["items"][:1]:
        await call("GET", f"/api/v1/me/wards/{link['ward_id']}/properties/{item['right_id']}", me)


async def bank_requests(call: Requests, actors: Actors) -> None:
    from integrations.banks.config import load_banks

    bank = load_banks(call.app.services.settings.banks_file)[0]
    token = await call(
        "POST",
        "/api/v1/auth/client-tokens",
        data={
            "grant_type": "client_credentials",
            "client_id": bank.client_id,
            "client_secret": bank.client_secret,
        },
    )
    headers = _bearer(token["access_token"])
    person_id, _, unit_number = actors.mortgagor
    id_number, name = await _person(call.app, person_id)
    body = {
        "type": "create",
        "unit_number": unit_number,
        "mortgagors": [{"id_number": id_number, "name": name}],
        "amount_fen": 120_000_000,
        "term_start": date.today().isoformat(),
        "term_end": (date.today() + timedelta(days=365 * 20)).isoformat(),
        "contract_number": f"HT-PLANS-{secrets.token_hex(4)}",
        "submitted_by": "信贷员王五",
    }
    filing = await call(
        "POST",
        "/api/v1/bank/mortgage-filings",
        {**headers, "Idempotency-Key": uuid.uuid4().hex},
        json=body,
        expect=201,
    )
    await call("GET", f"/api/v1/bank/mortgage-filings/{filing['id']}", headers)
    await call("GET", "/api/v1/bank/mortgage-filings", headers)


# --- the test --------------------------------------------------------------------------------------


async def test_no_request_scans_a_large_table(city: City, recorded: tuple[RunningApp, QueryRecorder]) -> None:
    app, recorder = recorded
    actors = await _actors(city.database_url)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as client:
        call = Requests(app, recorder, client)
        await public_requests(call)
        await citizen_requests(call, actors)
        await guardian_requests(call)
        await clerk_requests(call, actors)
        await transfer_requests(call, actors)
        await bank_requests(call, actors)
    assert recorder.statements, "no statement was recorded: is the recording connection in the pool?"
    report = await seq_scans_of_large_tables(city.database_url, recorder.statements)
    padded = ", ".join(f"{t} +{n:,}" for t, n in city.padding.added.items() if n)
    print(
        f"\n{len(recorder.labels())} requests, {len(recorder.statements)} statements, {report.explained} "
        f"distinct explained; register loaded in {city.load_seconds:.0f} s, padded in "
        f"{city.padding.seconds:.0f} s ({padded or 'padded already'})\nrelations the plans touch:\n  "
        + "\n  ".join(f"{name}: {size}" for name, size in sorted(report.relations.items()))
    )
    assert not report.scans, (
        f"{len(report.scans)} statements scan a large table (add an index, or fix the query):\n  "
        + "\n  ".join(str(s) for s in report.scans)
    )
