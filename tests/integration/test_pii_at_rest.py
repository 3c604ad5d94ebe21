"""No resident ID number in plaintext: not in the database, not in the logs.

A guardian links a minor (the ID number travels in the request body and to the civil registry),
reads the ward's properties, and a bad ID number is refused; then the whole database and every
log record written meanwhile are searched for the ID numbers involved.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from tortoise import connections

from tests.integration.citizen_support import citizen_headers
from tests.integration.test_wards import WARDS, make_family


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
