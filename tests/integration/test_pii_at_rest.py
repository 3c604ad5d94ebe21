"""No resident ID number in plaintext, and none that the clear data gives away; no clear phone.

A guardian links a minor (the ID number travels in the request body and to the civil registry),
reads the ward's properties, and a bad ID number is refused; then the whole database and every
log record written meanwhile are searched for the ID numbers involved. A dump without keys is
attacked as issue 8 did (item 3); phones are looked for after an alert and a sign-in; and
migration 0005 is run on a database as an older version left it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise import connections

from api.outbox_handlers import build_handlers
from config.settings import tortoise_config
from demo import DISTRICTS
from services.clock import local_today
from services.db import MigrationNeedsKeys, apply_migrations, dialect
from services.identifiers import birth_date_of, id_check_char, mask_id_number, mask_phone
from services.messages.sms import NO_PHONE, SMS_SEND, sms_to_person
from services.outbox.models import OutboxMessage
from services.pii import PiiVault
from services.registry import changes as registry_changes
from services.registry.models import Person
from tests.conftest import TEST_DATABASE_URL
from tests.factories import create_person, create_right, id_number_of, make_phone
from tests.integration.citizen_support import citizen_headers, sign_in_by_sms, wait_for_sms, years_ago
from tests.integration.test_wards import WARDS, make_family
from tests.support.postgres import scratch_postgres


async def _database_text(settings) -> bytes:
    if settings.is_sqlite:
        path = Path(settings.database_url.removeprefix("sqlite://"))
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    conn = connections.get("default")
    tables = await conn.execute_query_dict(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    chunks = []
    for row in tables:
        rows = await conn.execute_query_dict(f'SELECT t::text AS line FROM "{row["table_name"]}" t')
        chunks += [r["line"] for r in rows]
    return "\n".join(chunks).encode()


async def test_no_plaintext_id_number_in_database_or_logs(app, vault, caplog):
    caplog.set_level(logging.DEBUG)
    family = await make_family(app, vault, guardians=2, link=True)
    guardian = family.guardians[0]
    headers = citizen_headers(app, guardian)
    async with httpx.AsyncClient(base_url=app.base_url) as client:
        ward_id = family.links[guardian.id]
        assert (await client.get(f"{WARDS}/{ward_id}/properties", headers=headers)).status_code == 200
        bad = family.ward_id_number[:17] + ("0" if family.ward_id_number[17] != "0" else "1")
        r = await client.post(WARDS, json={"id_number": bad}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "INVALID_ID_NUMBER"
        assert bad not in r.text

    secrets = [family.ward_id_number] + [vault.decrypt(g.id_number_enc) for g in family.guardians]
    database = await _database_text(app.services.settings)
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records, "the flow should have logged something"
    for id_number in secrets:
        assert id_number.encode() not in database, "an ID number is stored in plaintext"
        assert id_number not in logs, "an ID number was logged in full"
        assert id_number[:6] + "*" not in logs  # not a half-masked form either


# --- a dump without the keys (issue 8, item 3) ---------------------------------------------------
#
# The attacker holds a copy of the database (a backup, a replica, a stolen SQLite file) and no
# keys. Ciphertexts and keyed HMACs tell them nothing; what is left is the clear data. For each
# person they collect every clear value of the person's row and of the rows that point at it, read
# whatever an ID number's parts can be read from (a masked number, a birth date, a sex), and list
# the valid ID numbers consistent with it, as the report on issue 8 did (at most three candidates
# each). They are generous to themselves: the person is taken to be registered in one of
# Shanghai's 16 districts and born between 1920 and today.

SHANGHAI_COUNTIES = tuple(d.code for d in DISTRICTS)
EARLIEST_BIRTH = date(1920, 1, 1)
ENUMERATE_UP_TO = 200_000
_MASKED = re.compile(r"[0-9Xx*]{18}")
_ISO_DATE = re.compile(r"(19|20)\d\d-\d\d-\d\d")
_COMPACT_DATE = re.compile(r"(19|20)\d{6}")
_SEX = {"M": True, "F": False, "male": True, "female": False, "男": True, "女": False}


@dataclass
class Clues:
    """What clear data says about one ID number: characters at known positions, possible birth dates
    (any one of them), the sex."""

    known: dict[int, str] = field(default_factory=dict)
    births: set[date] = field(default_factory=set)
    male: bool | None = None

    def read(self, value: Any) -> None:
        if isinstance(value, date) and not isinstance(value, datetime):
            self.births.add(value)
            return
        if not isinstance(value, str):
            return
        text = value.strip()
        if _MASKED.fullmatch(text) and "*" in text and any(c.isdigit() for c in text):
            self.known.update({i: c.upper() for i, c in enumerate(text) if c != "*"})
        for pattern, fmt in ((_ISO_DATE, "%Y-%m-%d"), (_COMPACT_DATE, "%Y%m%d")):
            if pattern.fullmatch(text):
                with contextlib.suppress(ValueError):
                    self.births.add(datetime.strptime(text, fmt).date())
        if text in _SEX:
            self.male = _SEX[text]

    def _fits(self, text: str, offset: int) -> bool:
        return all(self.known.get(offset + i, c) == c for i, c in enumerate(text))

    def consistent(self, id_number: str) -> bool:
        born = birth_date_of(id_number)
        return (
            self._fits(id_number, 0)
            and (not self.births or born in self.births)
            and (self.male is None or (int(id_number[16]) % 2 == 1) == self.male)
        )

    def candidates(self, today: date) -> int:
        """How many valid ID numbers fit. Listed one by one when the space is small; otherwise a
        lower bound (the check character, if known, keeps about one in eleven)."""
        counties = [c for c in SHANGHAI_COUNTIES if self._fits(c, 0)]
        days = sorted(self.births) or [
            EARLIEST_BIRTH + timedelta(days=n) for n in range((today - EARLIEST_BIRTH).days + 1)
        ]
        days = [d for d in days if self._fits(f"{d:%Y%m%d}", 6)]
        sequences = [
            f"{n:03d}"
            for n in range(1000)
            if self._fits(f"{n:03d}", 14) and (self.male is None or (n % 2 == 1) == self.male)
        ]
        space = len(counties) * len(days) * len(sequences)
        if space > ENUMERATE_UP_TO:
            return space // 11 if 17 in self.known else space
        count = 0
        for county in counties:
            for day in days:
                for sequence in sequences:
                    first17 = f"{county}{day:%Y%m%d}{sequence}"
                    count += self._fits(id_check_char(first17), 17)
        return count


async def _tables(conn: Any) -> list[str]:
    if dialect() == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    else:
        rows = await conn.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    return sorted(str(r["name"]) for r in rows)


async def _dump() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the database returns it to someone who has no keys."""
    conn = connections.get("default")
    return {table: await conn.execute_query_dict(f'SELECT * FROM "{table}"') for table in await _tables(conn)}


_REFERS_TO_PERSON = ("person_id", "guardian_id", "ward_person_id")


def _clear_values_of(person_id: int, dump: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """The person's row and every row that points at the person, all columns."""
    values: list[Any] = []
    for table, rows in dump.items():
        for row in rows:
            mine = (table == "person" and row.get("id") == person_id) or any(
                row.get(column) == person_id for column in _REFERS_TO_PERSON
            )
            if mine:
                values += list(row.values())
    return values


async def test_a_dump_without_keys_leaves_at_least_1000_candidates_for_every_id_number(app, vault):
    today = local_today(app.services.clock)
    people = [
        await create_person(vault=vault, born=years_ago(today, age, plus_days=age * 37), gender=sex)
        for age, sex in ((9, "F"), (17, "M"), (34, "F"), (58, "M"), (81, "F"))
    ]
    people.append(await create_person(vault=vault, phone=None))
    await create_right(holders=[(people[2], "0.5"), (people[3], "0.5")])

    dump = await _dump()
    text = "\n".join(str(row) for rows in dump.values() for row in rows)
    for person in people:
        id_number = id_number_of(person, vault=vault)
        assert id_number not in text, "an ID number is stored in clear"
        assert not re.search(rf"{id_number[:4]}\*+{id_number[-4:]}", text), "a masked ID number is stored"
        clues = Clues()
        for value in _clear_values_of(person.id, dump):
            clues.read(value)
        assert clues.consistent(id_number), "the attacker model must not rule out the real number"
        left = clues.candidates(today)
        assert left >= 1000, f"person {person.id}: the clear data leaves only {left} candidates"


def test_the_attacker_model_finds_the_leak_the_report_found():
    """On the row issue 8 described (mask + birth date), the same model finds 1-3 candidates."""
    id_number = "310115199003071239"[:17]
    id_number += id_check_char(id_number)
    clues = Clues()
    for value in ("张三", mask_id_number(id_number), "1990-03-07", "M"):
        clues.read(value)
    assert clues.consistent(id_number)
    assert 1 <= clues.candidates(date(2026, 1, 1)) <= 3
    assert Clues().candidates(date(2026, 1, 1)) > 10**8


# --- no clear phone anywhere ---------------------------------------------------------------------


async def _redis_keys(settings: Any) -> list[str]:
    if not settings.redis_url:
        return []
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url)
    try:
        return [k.decode() async for k in client.scan_iter(match=f"{settings.redis_key_prefix}*")]
    finally:
        await client.aclose()


async def test_no_clear_phone_in_the_database_after_an_alert_and_a_sign_in(client, app, vault):
    phone, other = make_phone(), make_phone()
    holder = await create_person(vault=vault, phone=phone)
    co_holder = await create_person(vault=vault, phone=other)
    right = await create_right(holders=[(holder, "0.5"), (co_holder, "0.5")])
    await registry_changes.register_encumbrance(
        right_id=right.id,
        kind="seizure",
        authority="上海市浦东新区人民法院",
        document_number="(2026)沪0115执保1号",
        starts_on=date(2026, 1, 5),
        kv=app.services.kv,
        clock=app.services.clock,
    )
    assert len(await wait_for_sms(app, phone, "property_alert", 1)) == 1  # decrypted when sent
    assert len(await wait_for_sms(app, other, "property_alert", 1)) == 1
    headers = await sign_in_by_sms(client, app, phone)
    assert (await client.get("/api/v1/me", headers=headers)).json()["phone"] == mask_phone(phone)

    sms = [
        m.payload
        for m in await OutboxMessage.filter(topic=SMS_SEND.name)
        if m.payload.get("person_id") in (holder.id, co_holder.id)
    ]
    assert len(sms) == 2 and all(set(p) == {"person_id", "phone_enc", "template", "params"} for p in sms)
    assert all(p["phone_enc"] is None for p in sms)  # a reference to the person, no phone
    stored = (await _database_text(app.services.settings)).decode("utf-8", "replace")
    stored += "\n".join(str(row) for rows in (await _dump()).values() for row in rows)
    keys = "\n".join(await _redis_keys(app.services.settings))
    for number in (phone, other):
        assert number not in stored, "a phone is stored in clear"
        assert number not in keys, "a phone is part of a Redis key"


async def test_a_person_without_a_phone_gets_no_sms_and_the_message_is_delivered(app, vault):
    person = await create_person(vault=vault)
    handlers = build_handlers(
        app.services.integrations,
        vault=vault,
        auth=app.services.auth,
        certificates=app.services.certificates,
        appointments=app.services.appointments,
        cases=app.services.cases,
    )
    sms_send = handlers.get(SMS_SEND.name)
    assert sms_send is not None
    await Person.filter(id=person.id).update(phone_enc=None, phone_index=None)  # removed meanwhile
    payload = sms_to_person(person_id=person.id, template="property_alert", params={"event": "x"})
    assert await sms_send.handler(payload, f"test-no-phone-{person.id}") == NO_PHONE


# --- migration 0005 on a database that has data --------------------------------------------------

OLD_PHONE, STRANGER_PHONE, SENT_PHONE = "13912340005", "13912340006", "13912340007"


class _Raw:
    """Plain SQL on a database, outside Tortoise, as an old version of the service left it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgres")

    async def __aenter__(self) -> _Raw:
        if self.postgres:
            import asyncpg

            self.pg = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
        else:
            self.lite = sqlite3.connect(self.url.removeprefix("sqlite://"), isolation_level=None)
            self.lite.row_factory = sqlite3.Row
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pg.close() if self.postgres else self.lite.close()

    def _sql(self, query: str) -> str:
        if not self.postgres:
            return query
        parts = query.split("?")
        return parts[0] + "".join(f"${n}{p}" for n, p in enumerate(parts[1:], start=1))

    async def run(self, query: str, *args: Any) -> None:
        if self.postgres:
            await self.pg.execute(self._sql(query), *args)
        else:
            self.lite.execute(query, args)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if self.postgres:
            return [dict(r) for r in await self.pg.fetch(self._sql(query), *args)]
        return [dict(r) for r in self.lite.execute(query, args)]

    async def columns(self, table: str) -> set[str]:
        if self.postgres:
            rows = await self.rows(
                "SELECT column_name AS name FROM information_schema.columns WHERE table_name = ?", table
            )
        else:
            rows = await self.rows(f'PRAGMA table_info("{table}")')
        return {str(r["name"]) for r in rows}


@asynccontextmanager
async def _database_of_this_backend(tmp_path: Path) -> AsyncIterator[str]:
    if TEST_DATABASE_URL:
        async with scratch_postgres(TEST_DATABASE_URL, prefix="pii_at_rest") as url:
            yield url
    else:
        yield f"sqlite://{tmp_path / 'before-0005.sqlite3'}"


async def _fill_as_of_0004(raw: _Raw, vault: PiiVault, id_number: str) -> None:
    now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    stamp: Any = now if raw.postgres else now.isoformat()
    born: Any = date(1990, 3, 7) if raw.postgres else "1990-03-07"
    await raw.run(
        "INSERT INTO person (id, name, id_number_enc, id_number_index, id_number_masked, phone, birth_date,"
        " gender, created_at) VALUES (1, '陈旧', ?, ?, ?, ?, ?, 'M', ?)",
        vault.encrypt(id_number),
        vault.blind_index(id_number),
        mask_id_number(id_number),
        OLD_PHONE,
        born,
        stamp,
    )
    # Children of the row: a copy of the table with foreign keys on would delete (CASCADE) or refuse.
    await raw.run(
        "INSERT INTO inbox_message (id, person_id, kind, title, body, data, created_at)"
        " VALUES (1, 1, 'property_change', 't', 'b', '{}', ?)",
        stamp,
    )
    await raw.run(
        "INSERT INTO real_estate_unit (id, unit_number, district_code, address, use, area_m2, created_at)"
        " VALUES (1, '310115001001GB00001F00010001', '310115', 'a', 'residential', 88.5, ?)",
        stamp,
    )
    await raw.run(
        'INSERT INTO "right" (id, certificate_number, unit_id, right_type, co_ownership, status,'
        " registered_at, district_code)"
        " VALUES (1, 'c-1', 1, 'house_ownership', 'sole', 'current', ?, '310115')",
        stamp,
    )
    await raw.run("INSERT INTO right_holder (id, right_id, person_id, share) VALUES (1, 1, 1, 1)")
    for n, (status, phone) in enumerate(
        (("pending", OLD_PHONE), ("pending", STRANGER_PHONE), ("delivered", SENT_PHONE)), start=1
    ):
        payload = json.dumps({"phone": phone, "template": "property_alert", "params": {"event": "转移登记"}})
        await raw.run(
            "INSERT INTO outbox_message (id, topic, payload, idempotency_key, status, attempts,"
            f" next_attempt_at, created_at) VALUES (?, 'sms.send', {'?::jsonb' if raw.postgres else '?'},"
            " ?, ?, 0, ?, ?)",
            n,
            payload,
            f"old-{n}",
            status,
            stamp,
            stamp,
        )


async def test_migration_0005_encrypts_what_an_older_version_stored(tmp_path: Path, vault: PiiVault):
    id_number = "310115199003071239"[:17]
    id_number += id_check_char(id_number)
    async with _database_of_this_backend(tmp_path) as url:
        config = tortoise_config(url)
        await apply_migrations(config, target="models.0004_sign_in_hardening")
        async with _Raw(url) as raw:
            await _fill_as_of_0004(raw, vault, id_number)

        with pytest.raises(MigrationNeedsKeys, match="PII keys"):
            await apply_migrations(config)  # no keys: nothing changes
        async with _Raw(url) as raw:
            assert {"phone", "birth_date"} <= await raw.columns("person")

        await apply_migrations(config, vault=vault)
        async with _Raw(url) as raw:
            assert await raw.columns("person") == {
                "id", "name", "id_number_enc", "id_number_index", "phone_enc", "phone_index", "created_at",
            }  # fmt: skip
            [person] = await raw.rows("SELECT * FROM person")
            assert vault.decrypt(person["id_number_enc"]) == id_number
            assert vault.decrypt_phone(person["phone_enc"]) == OLD_PHONE
            assert person["phone_index"] == vault.phone_index(OLD_PHONE)
            assert len(await raw.rows("SELECT id FROM inbox_message WHERE person_id = 1")) == 1
            assert len(await raw.rows("SELECT id FROM right_holder WHERE person_id = 1")) == 1
            messages = {
                r["idempotency_key"]: (
                    json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
                )
                for r in await raw.rows("SELECT idempotency_key, payload FROM outbox_message")
            }
            params = {"event": "转移登记"}
            assert messages["old-1"] == {"person_id": 1, "template": "property_alert", "params": params}
            assert vault.decrypt_phone(messages["old-2"].pop("phone_enc")) == STRANGER_PHONE
            assert messages["old-2"] == {"template": "property_alert", "params": params}
            assert messages["old-3"] == {
                "phone_masked": mask_phone(SENT_PHONE), "template": "property_alert", "params": params,
            }  # fmt: skip
            text = json.dumps(
                [await raw.rows(f'SELECT * FROM "{t}"') for t in ("person", "outbox_message")], default=str
            )
        for secret in (
            OLD_PHONE,
            STRANGER_PHONE,
            SENT_PHONE,
            id_number,
            mask_id_number(id_number),
            "1990-03-07",
        ):
            assert secret not in text
