"""The city-sized register (demo/city, docs/scale.md) at a small size on real PostgreSQL: what the
bulk load writes is the register the rest of the code expects (sealed personal data, exact sizes,
unique numbers), it leaves the indexes and constraints as the migrations made them, and it is
deterministic and loads once."""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from config.settings import Settings
from demo.city import CityLoadRefused, CityLoadReport, seed_city
from demo.city.bulk import secondary_definitions
from demo.city.rows import BULK_TABLES
from demo.identities import FIXED_BY_KEY, FIXED_PERSONS, FIXED_UNITS
from demo.places import AS_OF
from services.db import apply_migrations
from services.identifiers import eighteenth_birthday, normalise_id_number
from services.pii import PiiVault
from tests.support.postgres import scratch_postgres

pytestmark = pytest.mark.postgres

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
NEEDS_PG = "needs PostgreSQL: set TEST_DATABASE_URL"
PERSONS, UNITS, RIGHTS = 3000, 4500, 6000
SEED = 7


@dataclass
class Loaded:
    url: str
    settings: Settings
    report: CityLoadReport


def _settings(database_url: str, key_dir: Path, keys: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, database_url=database_url, key_dir=key_dir, **keys)  # type: ignore[call-arg]


def _dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    """One set of keys for every database of the module, so their blind indexes compare."""
    return {
        "secret_key": secrets.token_urlsafe(32),
        "pii_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "pii_sm4_key": base64.b64encode(secrets.token_bytes(16)).decode(),
        "blind_index_key": secrets.token_urlsafe(32),
    }


async def _load(tmp: Path, keys: dict[str, str], *, worker_process: bool = False) -> AsyncIterator[Loaded]:
    async with scratch_postgres(TEST_DATABASE_URL, prefix="city_test") as url:
        settings = _settings(url, tmp, keys)
        report = await seed_city(
            settings,
            persons=PERSONS,
            units=UNITS,
            rights=RIGHTS,
            seed=SEED,
            progress=False,
            worker_process=worker_process,
        )
        yield Loaded(url, settings, report)


@pytest.fixture(scope="module")
async def city(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, str]) -> AsyncIterator[Loaded]:
    if not TEST_DATABASE_URL:
        pytest.skip(NEEDS_PG)
    async for loaded in _load(tmp_path_factory.mktemp("keys"), keys):
        yield loaded


@pytest.fixture
async def db(city: Loaded) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(_dsn(city.url))
    try:
        yield conn
    finally:
        await conn.close()


# --- sizes and proportions ---------------------------------------------------------------------------


async def test_the_requested_rows_are_loaded_beside_the_demo_base(
    city: Loaded, db: asyncpg.Connection
) -> None:
    loaded = city.report.rows_loaded
    assert city.report.loaded
    assert (loaded["person"], loaded["real_estate_unit"], loaded["right"]) == (PERSONS, UNITS, RIGHTS)
    assert loaded["right_holder"] > RIGHTS and loaded["mortgage"] > 0 and loaded["guardianship_link"] > 0
    for table, n in city.report.rows_in_tables.items():
        assert await db.fetchval(f'SELECT COUNT(*) FROM "{table}"') == n
    assert city.report.rows_in_tables["person"] == PERSONS + len(FIXED_PERSONS)
    phases = set(city.report.seconds)
    assert {"migrate", "demo_base", "drop_indexes", "load", "rebuild_indexes", "analyze"} <= phases
    assert city.report.total_seconds >= sum(city.report.seconds.values()) * 0.99


async def test_every_unit_has_one_current_right_and_the_rest_is_history(db: asyncpg.Connection) -> None:
    assert not await db.fetchval(
        """SELECT COUNT(*) FROM real_estate_unit u
           WHERE (SELECT COUNT(*) FROM "right" r WHERE r.unit_id = u.id AND r.status = 'current') <> 1"""
    )
    history = await db.fetch(
        """SELECT r.ended_at, r.registered_at,
                  (SELECT MIN(n.registered_at) FROM "right" n WHERE n.unit_id = r.unit_id
                   AND n.registered_at > r.registered_at) AS next_registered
           FROM "right" r WHERE r.status = 'historical'"""
    )
    assert history and all(
        h["ended_at"] is not None and h["ended_at"] == h["next_registered"] for h in history
    )


async def test_the_proportions_are_those_of_a_city(db: asyncpg.Connection) -> None:
    kinds = dict(
        await db.fetch("""SELECT co_ownership, COUNT(*) FROM "right" WHERE status = 'current' GROUP BY 1""")
    )
    current = sum(kinds.values())
    assert kinds["sole"] > current / 2 and kinds["joint"] + kinds["shares"] > current / 5
    residential = await db.fetchval(
        """SELECT COUNT(*) FROM "right" r JOIN real_estate_unit u ON u.id = r.unit_id
           WHERE r.status = 'current' AND u.use = 'residential'"""
    )
    mortgaged = await db.fetchval(
        """SELECT COUNT(DISTINCT m.right_id) FROM mortgage m JOIN "right" r ON r.id = m.right_id
           JOIN real_estate_unit u ON u.id = r.unit_id WHERE r.status = 'current' AND u.use = 'residential'"""
    )
    assert 0.2 < mortgaged / residential < 0.4
    assert await db.fetchval("SELECT COUNT(*) FROM mortgage WHERE status = 'cancelled'")
    seized = await db.fetchval("SELECT COUNT(DISTINCT right_id) FROM encumbrance WHERE kind = 'seizure'")
    objected = await db.fetchval("SELECT COUNT(DISTINCT right_id) FROM encumbrance WHERE kind = 'objection'")
    assert 0 < seized < 0.01 * RIGHTS and objected < seized
    phones = await db.fetchval("SELECT COUNT(*) FROM person WHERE phone_index IS NOT NULL")
    assert 0.75 < phones / (PERSONS + len(FIXED_PERSONS)) < 0.85
    holdings = await db.fetch(
        """SELECT p.id, COUNT(h.id) AS n FROM person p LEFT JOIN right_holder h ON h.person_id = p.id
           AND h.right_id IN (SELECT id FROM "right" WHERE status = 'current') GROUP BY p.id"""
    )
    assert sum(1 for h in holdings if h["n"] <= 3) > 0.7 * len(holdings)


async def test_links_are_verified_guardians_of_minors_until_their_18th_birthday(
    city: Loaded, db: asyncpg.Connection
) -> None:
    vault = PiiVault.from_settings(city.settings)
    links = await db.fetch(
        """SELECT l.*, p.id_number_index AS ward_index, EXISTS (SELECT 1 FROM right_holder h
           WHERE h.person_id = l.ward_person_id) AS holds FROM guardianship_link l
           JOIN person p ON p.id = l.ward_person_id"""
    )
    assert links and any(link["holds"] for link in links)
    for link in links:
        ward = vault.decrypt(link["ward_id_number_enc"])
        assert vault.blind_index(ward) == link["ward_id_number_index"] == link["ward_index"]
        assert link["access_ends_on"] == eighteenth_birthday(ward) > AS_OF
        assert (link["status"], link["relation"] in ("father", "mother")) == ("active", True)
        assert link["verified_at"] >= link["linked_at"] and link["guardian_id"] != link["ward_person_id"]


# --- personal data ------------------------------------------------------------------------------------


async def test_every_id_number_and_phone_is_sealed_valid_and_indexed(
    city: Loaded, db: asyncpg.Connection
) -> None:
    vault = PiiVault.from_settings(city.settings)
    rows = await db.fetch("SELECT id_number_enc, id_number_index, phone_enc, phone_index FROM person")
    for row in rows:
        id_number = vault.decrypt(row["id_number_enc"])
        assert normalise_id_number(id_number, today=AS_OF) == id_number  # GB 11643: check digit, date
        assert vault.blind_index(id_number) == row["id_number_index"]
        if row["phone_enc"] is not None:
            assert vault.phone_index(vault.decrypt_phone(row["phone_enc"])) == row["phone_index"]
        else:
            assert row["phone_index"] is None


async def test_no_clear_id_number_or_phone_in_the_person_or_link_tables(
    city: Loaded, db: asyncpg.Connection
) -> None:
    vault = PiiVault.from_settings(city.settings)
    rows = await db.fetch("SELECT id_number_enc, phone_enc FROM person")
    clear = {vault.decrypt(r["id_number_enc"]) for r in rows}
    clear |= {vault.decrypt_phone(r["phone_enc"]) for r in rows if r["phone_enc"]}
    for table in ("person", "guardianship_link"):
        dump = (await db.fetchval(f"SELECT string_agg(t::text, E'\\n') FROM {table} t")).upper()
        runs = set(re.findall(r"[0-9X]{11,}", dump))
        assert not [value for value in clear if any(value in run for run in runs)], table


# --- indexes, constraints, sequences -------------------------------------------------------------------


async def _catalog(url: str) -> tuple[set[Any], set[Any]]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        indexes = {
            tuple(r)
            for r in await conn.fetch(
                """SELECT i.tablename, i.indexname, i.indexdef, x.indisvalid, x.indisready
                   FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname
                   JOIN pg_index x ON x.indexrelid = c.oid WHERE i.schemaname = 'public'"""
            )
        }
        constraints = {
            tuple(r)
            for r in await conn.fetch(
                """SELECT conrelid::regclass::text, conname, contype::text, convalidated,
                          pg_get_constraintdef(oid)
                   FROM pg_constraint WHERE connamespace = 'public'::regnamespace"""
            )
        }
    finally:
        await conn.close()
    return indexes, constraints


async def test_indexes_and_constraints_are_those_of_the_migrations(
    city: Loaded, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, str]
) -> None:
    async with scratch_postgres(TEST_DATABASE_URL, prefix="city_test") as url:
        settings = _settings(url, tmp_path_factory.mktemp("keys"), keys)
        await apply_migrations(settings.tortoise_config(), vault=PiiVault.from_settings(settings))
        migrated = await _catalog(url)
        conn = await asyncpg.connect(_dsn(url))
        try:
            dropped = await secondary_definitions(conn, BULK_TABLES)
        finally:
            await conn.close()
    # The loader drops (and makes again) every unique and foreign-key constraint of its tables.
    kinds = {"u": "unique", "f": "foreign key"}
    bulk = {f'"{t}"' if t == "right" else t for t in BULK_TABLES}
    expected = {(c[0].strip('"'), c[1], kinds[c[2]]) for c in migrated[1] if c[2] in kinds and c[0] in bulk}
    assert {(d.table, d.name, d.kind) for d in dropped if d.kind != "index"} == expected
    assert {d.kind for d in dropped} == {"index", "unique", "foreign key"}
    loaded = await _catalog(city.url)
    assert loaded[0] == migrated[0]
    assert loaded[1] == migrated[1]
    assert any("id_number_index" in index[2] and "UNIQUE" in index[2] for index in loaded[0])


async def test_sequences_hand_out_keys_after_the_loaded_ones(db: asyncpg.Connection) -> None:
    for table in ("person", "real_estate_unit", "right", "right_holder", "mortgage", "guardianship_link"):
        highest = await db.fetchval(f'SELECT MAX(id) FROM "{table}"')
        following = await db.fetchval(f"SELECT nextval(pg_get_serial_sequence('\"{table}\"', 'id'))")
        assert following > highest, table


# --- once, deterministic, the demo still there ---------------------------------------------------------


async def test_a_second_call_writes_nothing(city: Loaded, db: asyncpg.Connection) -> None:
    again = await seed_city(
        city.settings, persons=PERSONS, units=UNITS, rights=RIGHTS, seed=SEED, progress=False
    )
    assert not again.loaded
    assert set(again.rows_loaded.values()) == {0}
    assert again.rows_in_tables == city.report.rows_in_tables
    assert await db.fetchval("SELECT COUNT(*) FROM person") == city.report.rows_in_tables["person"]


async def _fingerprint(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return {
            "persons": await conn.fetch(
                "SELECT id, name, id_number_index, phone_index FROM person ORDER BY id"
            ),
            "units": await conn.fetch(
                "SELECT id, unit_number, address, use, area_m2 FROM real_estate_unit ORDER BY id"
            ),
            "rights": await conn.fetch(
                "SELECT id, certificate_number, unit_id, co_ownership, status, registered_at, ended_at"
                ' FROM "right" ORDER BY id'
            ),
            "holders": await conn.fetch(
                "SELECT right_id, person_id, organisation_id, share FROM right_holder ORDER BY id"
            ),
            "mortgages": await conn.fetch(
                "SELECT certificate_number, right_id, amount_fen, status FROM mortgage ORDER BY id"
            ),
            "links": await conn.fetch(
                "SELECT guardian_id, ward_person_id, ward_id_number_index, access_ends_on"
                " FROM guardianship_link ORDER BY id"
            ),
        }
    finally:
        await conn.close()


async def test_the_same_seed_gives_the_same_register_wherever_it_is_made(
    city: Loaded, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, str]
) -> None:
    async for other in _load(tmp_path_factory.mktemp("keys"), keys, worker_process=True):
        assert await _fingerprint(other.url) == await _fingerprint(city.url)


async def test_the_demo_citizens_keep_their_demo_rights(city: Loaded, db: asyncpg.Connection) -> None:
    vault = PiiVault.from_settings(city.settings)
    for key in ("owner", "child"):
        person = await db.fetchval(
            "SELECT id FROM person WHERE id_number_index = $1", vault.blind_index(FIXED_BY_KEY[key].id_number)
        )
        held = await db.fetch(
            """SELECT r.certificate_number FROM "right" r JOIN right_holder h ON h.right_id = r.id
               WHERE h.person_id = $1 AND r.status = 'current'""",
            person,
        )
        expected = {
            u.rights[-1].certificate
            for u in FIXED_UNITS
            if u.rights[-1].ended is None and any(k == key for k, _ in u.rights[-1].holders)
        }
        assert {r["certificate_number"] for r in held} == expected and expected


# --- refusals -------------------------------------------------------------------------------------------


async def test_refuses_a_database_that_is_not_postgresql(tmp_path: Path, keys: dict[str, str]) -> None:
    settings = _settings(f"sqlite://{tmp_path / 'x.sqlite3'}", tmp_path, keys)
    with pytest.raises(CityLoadRefused, match="PostgreSQL"):
        await seed_city(settings, persons=10, units=10, rights=10, progress=False)
    with pytest.raises(ValueError, match="units <= rights"):
        await seed_city(settings, persons=10, units=10, rights=9, progress=False)
