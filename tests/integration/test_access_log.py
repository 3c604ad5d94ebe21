"""The access log: every read path recorded, the citizen's view, the hash chain and its verifier."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from services.audit import log as audit
from services.audit.models import AccessLogEntry
from services.db import dialect
from services.identity.auth import hash_password
from services.identity.models import StaffUser
from services.identity.tokens import Principal
from tests.factories import create_organisation, create_person, create_right
from tests.integration.citizen_support import citizen_headers, shanghai_today, years_ago
from tests.integration.test_wards import WARDS, make_family

ROOT = Path(__file__).resolve().parents[2]
LIST = "/api/v1/me/properties"
LOG = "/api/v1/me/access-log"


def rid() -> str:
    return uuid.uuid4().hex


async def test_every_read_path_is_logged_and_shown_to_the_data_subject(client, app, vault):
    me = await create_person(vault=vault)
    mine = await create_right(holders=[(me, "1")])
    family = await make_family(app, vault)
    guardian, ward = family.guardians[0], family.minor
    link = family.links[guardian.id]
    reads = {
        "own-list": (me, LIST),
        "own-detail": (me, f"{LIST}/{mine.id}"),
        "ward-list": (guardian, f"{WARDS}/{link}/properties"),
        "ward-detail": (guardian, f"{WARDS}/{link}/properties/{family.minor_right.id}"),
    }
    ids = {}
    for name, (person, path) in reads.items():
        ids[name] = rid()
        r = await client.get(path, headers={**citizen_headers(app, person), "X-Request-ID": ids[name]})
        assert r.status_code == 200, (name, r.text)
    entries = {e.request_id: e for e in await AccessLogEntry.filter(request_id__in=list(ids.values()))}
    assert set(entries) == set(ids.values()), "every read path writes one entry"

    def entry(name: str) -> AccessLogEntry:
        return entries[ids[name]]

    assert (entry("own-list").person_id, entry("own-list").reader_role) == (me.id, "citizen")
    assert (entry("own-list").action, entry("own-list").purpose) == ("property.list", "self_query")
    assert (entry("own-detail").object_type, entry("own-detail").object_id) == ("right", str(mine.id))
    assert entry("ward-list").person_id == ward.id and entry("ward-list").reader_role == "guardian"
    assert entry("ward-list").reader_subject == f"person:{guardian.id}"
    assert entry("ward-detail").object_id == str(family.minor_right.id)
    assert entry("ward-detail").purpose == "guardian_query"

    # A read that found nothing wrote nothing.
    missing = rid()
    r = await client.get(
        f"{LIST}/{family.minor_right.id}", headers={**citizen_headers(app, me), "X-Request-ID": missing}
    )
    assert r.status_code == 404
    assert await AccessLogEntry.filter(request_id=missing).count() == 0

    page = (await client.get(LOG, headers=citizen_headers(app, me))).json()
    assert [i["request_id"] for i in page["items"][:2]] == [ids["own-detail"], ids["own-list"]]
    assert page["items"][0]["by_self"] is True and page["items"][0]["reader"] == "本人"

    ward_log = (await client.get(LOG, headers=citizen_headers(app, ward))).json()["items"]
    guardian_reads = [i for i in ward_log if i["reader_role"] == "guardian"]
    assert [i["request_id"] for i in guardian_reads] == [ids["ward-detail"], ids["ward-list"]]
    assert guardian_reads[0]["reader"] == "王*" and guardian_reads[0]["by_self"] is False


async def test_clerk_and_bank_reads_are_recorded_with_their_names(client, app, vault):
    me = await create_person(vault=vault)
    staff = await StaffUser.create(
        username=f"clerk.{uuid.uuid4().hex[:8]}",
        display_name="赵敏",
        password_hash=hash_password("x" * 12),
        role="clerk",
        office_code="OFF-310115-01",
    )
    bank = await create_organisation(kind="bank", name="招商银行上海分行")
    clerk = Principal(
        subject=f"staff:{staff.id}", role="clerk", token_id="t1", expires_at=0, office_code="OFF-310115-01"
    )
    banker = Principal(
        subject="client:cmb-sh", role="bank", token_id="t2", expires_at=0, organisation_id=bank.id
    )
    for principal, purpose in ((clerk, "registration_review"), (banker, "mortgage_due_diligence")):
        await audit.record_access(
            reader=await audit.reader_for(principal),
            person_id=me.id,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            purpose=purpose,
            clock=app.services.clock,
        )
    headers = citizen_headers(app, me)
    assert (await client.get(LIST, headers=headers)).status_code == 200  # my own read
    everything = (await client.get(LOG, headers=headers)).json()["items"]
    assert [i["reader_role"] for i in everything] == ["citizen", "bank", "clerk"]
    others = (await client.get(LOG, params={"others_only": "true", "limit": 1}, headers=headers)).json()
    assert [(i["reader_role"], i["reader"], i["purpose"]) for i in others["items"]] == [
        ("bank", "招商银行上海分行", "mortgage_due_diligence")
    ]
    nxt = await client.get(
        LOG, params={"others_only": "true", "cursor": others["next_cursor"]}, headers=headers
    )
    assert [(i["reader_role"], i["reader"]) for i in nxt.json()["items"]] == [
        ("clerk", "登记工作人员 赵*（OFF-310115-01）")
    ]
    assert nxt.json()["next_cursor"] is None


async def test_reads_made_while_a_minor_are_shown_once_they_are_18(client, app, clock, vault):
    today = shanghai_today(app)
    # No register entry yet: the reads are logged under the ID number's blind index.
    family = await make_family(app, vault, ward_born=years_ago(today, 18, plus_days=2), in_register=False)
    guardian = family.guardians[0]
    read = rid()
    r = await client.get(
        f"{WARDS}/{family.links[guardian.id]}/properties",
        headers={**citizen_headers(app, guardian), "X-Request-ID": read},
    )
    assert r.status_code == 200
    clock.advance(days=2)
    adult = await create_person(vault=vault, id_number=family.ward_id_number, name="王小宝")
    items = (await client.get(LOG, headers=citizen_headers(app, adult))).json()["items"]
    assert [(i["request_id"], i["reader_role"], i["reader"]) for i in items] == [(read, "guardian", "王*")]


# --- the hash chain ------------------------------------------------------------------------------


async def _cli_verify(app) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": app.services.settings.database_url, "ESTATE_LOG_JSON": "false"}
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        "audit",
        "verify",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return int(proc.returncode or 0), out.decode()


async def _tamper(*statements: str) -> None:
    """Edit the log the only way left once migration 0003 made it append-only: as someone with DDL
    rights, who lifts the triggers, changes rows and puts the triggers back, in one transaction."""
    async with in_transaction() as conn:
        if dialect() == "postgres":
            await conn.execute_query("ALTER TABLE access_log DISABLE TRIGGER USER")
            for statement in statements:
                await conn.execute_query(statement)
            await conn.execute_query("ALTER TABLE access_log ENABLE TRIGGER USER")
            return
        # SQLite cannot disable a trigger: drop them and create them again from their own text.
        triggers = await conn.execute_query_dict(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'access_log'"
        )
        assert triggers, "access_log has no triggers: is migration 0003 applied?"
        for trigger in triggers:
            await conn.execute_query(f'DROP TRIGGER "{trigger["name"]}"')
        for statement in statements:
            await conn.execute_query(statement)
        for trigger in triggers:
            await conn.execute_query(trigger["sql"])


async def test_the_chain_verifies_and_an_edited_or_deleted_row_is_detected(app, vault):
    me = await create_person(vault=vault)
    for _ in range(3):
        await audit.record_access(
            reader=audit.Reader(f"person:{me.id}", "citizen", audit.SELF_DISPLAY),
            person_id=me.id,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            purpose=audit.PURPOSE_SELF,
            clock=app.services.clock,
        )
    report = await audit.verify_chain()
    assert report.ok and report.entries_checked == report.head_seq >= 3
    victim = await AccessLogEntry.get(seq=report.head_seq - 1)

    # An edited field: the row's own hash no longer matches.
    await _tamper(f"UPDATE access_log SET purpose = 'marketing' WHERE seq = {victim.seq}")
    try:
        bad = await audit.verify_chain()
        assert (bad.ok, bad.first_bad_seq, bad.problem) == (False, victim.seq, "hash_mismatch")
        code, output = await _cli_verify(app)
        assert code == 1, output
        assert f"first bad entry {victim.seq}" in output
        # Edited with its hash recomputed: the next entry's link breaks.
        forged = {**victim.__dict__, "purpose": "marketing"}
        await _tamper(f"UPDATE access_log SET hash = '{audit.entry_hash(forged)}' WHERE seq = {victim.seq}")
        bad = await audit.verify_chain()
        assert (bad.first_bad_seq, bad.problem) == (victim.seq + 1, "broken_link")
    finally:
        await _tamper(
            f"UPDATE access_log SET purpose = '{victim.purpose}', hash = '{victim.hash}' "
            f"WHERE seq = {victim.seq}"
        )
    assert (await audit.verify_chain()).ok

    # A deleted row leaves a gap.
    await _tamper(f"DELETE FROM access_log WHERE seq = {victim.seq}")
    try:
        bad = await audit.verify_chain()
        assert (bad.first_bad_seq, bad.problem) == (victim.seq, "missing_entries")
    finally:
        fields = {k: v for k, v in victim.__dict__.items() if not k.startswith("_") and k != "id"}
        await AccessLogEntry.create(**fields)
    assert (await audit.verify_chain()).ok
    code, output = await _cli_verify(app)
    assert code == 0, output


# --- append-only in the database (migration 0003) ------------------------------------------------

_CHANGES = {
    "sql-update": lambda conn, seq: conn.execute_query(
        f"UPDATE access_log SET purpose = 'marketing' WHERE seq = {seq}"
    ),
    "sql-delete": lambda conn, seq: conn.execute_query(f"DELETE FROM access_log WHERE seq = {seq}"),
    "sql-delete-all": lambda conn, seq: conn.execute_query("DELETE FROM access_log"),
    "orm-update": lambda conn, seq: AccessLogEntry.filter(seq=seq).using_db(conn).update(purpose="marketing"),
    "orm-delete": lambda conn, seq: AccessLogEntry.filter(seq=seq).using_db(conn).delete(),
    "truncate": lambda conn, seq: conn.execute_query("TRUNCATE access_log"),
}


async def _read_my_properties(client, app, person) -> AccessLogEntry:
    request_id = rid()
    r = await client.get(LIST, headers={**citizen_headers(app, person), "X-Request-ID": request_id})
    assert r.status_code == 200, r.text
    return await AccessLogEntry.get(request_id=request_id)


@pytest.mark.parametrize(
    "change",
    [
        *(name for name in _CHANGES if name != "truncate"),
        pytest.param("truncate", marks=pytest.mark.postgres),
    ],
)
async def test_the_database_rejects_changing_or_removing_a_logged_read(client, app, vault, change):
    if change == "truncate" and dialect() != "postgres":
        pytest.skip("SQLite has no TRUNCATE (its DELETE without WHERE is sql-delete-all)")
    me = await create_person(vault=vault)
    entry = await _read_my_properties(client, app, me)
    before = await AccessLogEntry.filter(seq=entry.seq).values()

    with pytest.raises(IntegrityError, match="access_log is append-only"):
        async with in_transaction() as conn:
            await _CHANGES[change](conn, entry.seq)
            raise AssertionError(f"the database allowed {change}")  # and this rolls it back

    assert await AccessLogEntry.filter(seq=entry.seq).values() == before
    # The head stays movable: reads are still logged, onto the same unbroken chain.
    later = await _read_my_properties(client, app, me)
    assert later.seq > entry.seq
    report = await audit.verify_chain()
    assert report.ok and report.head_seq >= later.seq


async def test_concurrent_appends_never_fork_the_chain(app, vault):
    me = await create_person(vault=vault)
    before = (await audit.verify_chain()).head_seq

    async def one(i: int) -> AccessLogEntry:
        return await audit.record_access(
            reader=audit.Reader(f"person:{me.id}", "citizen", audit.SELF_DISPLAY),
            person_id=me.id,
            action=audit.PROPERTY_DETAIL,
            object_type="right",
            object_id=i,
            purpose=audit.PURPOSE_SELF,
            clock=app.services.clock,
        )

    written = await asyncio.gather(*(one(i) for i in range(40)))
    assert sorted(e.seq for e in written) == list(range(before + 1, before + 41))
    report = await audit.verify_chain()
    assert report.ok and report.head_seq == before + 40


async def test_an_append_inside_a_transaction_shares_its_fate(app, vault):
    me = await create_person(vault=vault)

    async def append() -> AccessLogEntry:
        return await audit.record_access(
            reader=audit.Reader(f"person:{me.id}", "citizen", audit.SELF_DISPLAY),
            person_id=me.id,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            purpose=audit.PURPOSE_SELF,
            clock=app.services.clock,
        )

    async with in_transaction():
        kept = await append()
    assert await AccessLogEntry.filter(seq=kept.seq, person_id=me.id).exists()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await append()
            raise RuntimeError("the caller's change failed")
    assert await AccessLogEntry.filter(person_id=me.id).count() == 1
    report = await audit.verify_chain()
    assert report.ok and report.head_seq == kept.seq
