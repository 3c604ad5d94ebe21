"""Switching a populated database from the international to the national cryptography profile
(issue 16): re-encryption and blind indexes in resumable batches, the access log's hash moving from
SHA-256 to SM3 with a marker, and nothing in clear afterwards. Runs on the session's backend
(SQLite, or a scratch PostgreSQL database with TEST_DATABASE_URL), in a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from services import audit
from services.audit.log import HASH_SWITCH, entry_hash, verify_chain
from services.audit.models import AccessLogEntry, AccessLogHead
from services.certificates.models import Certificate, CertificateSubject
from services.clock import AdjustableClock
from services.crypto import switch
from services.crypto.models import CryptoIndexAlias, CryptoState
from services.guardianship.models import GuardianshipLink
from services.outbox.models import OutboxMessage
from services.pii import PiiVault
from services.registry.models import Person
from tests import factories
from tests.integration.test_access_log import _tamper
from tests.support.profile_databases import international_vault, migrated_database
from tests.support.tortoise_state import queries_given_back

PERSONS = 240
BATCH = 40
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def intl() -> PiiVault:
    return international_vault()


@pytest.fixture(scope="module", autouse=True)
async def _queries_back_on_the_app_database(app: Any) -> AsyncIterator[None]:
    """As tests/integration/test_demo_data.py: this module's own context must not leave its
    queries to the session app's database."""
    async with queries_given_back(app):
        yield


@pytest.fixture(scope="module")
async def database(tmp_path_factory: pytest.TempPathFactory, intl: PiiVault) -> AsyncIterator[Path | None]:
    """A database of this module's own, built by the real migrations under the international
    profile; the SQLite file's path (None on PostgreSQL)."""
    async with migrated_database(tmp_path_factory, intl, prefix="estate_national") as path:
        yield path


async def _populate(intl: PiiVault, clock: AdjustableClock) -> dict[str, Any]:
    people = []
    for _ in range(PERSONS):
        number, phone = factories.make_id_number(), factories.make_phone()
        person = await factories.create_person(vault=intl, id_number=number, phone=phone)
        people.append((person, number, phone))
    # A ward with no row in the register, linked to a guardian, and read by index (no person_id).
    ward_number = factories.make_id_number(birth_date=date(2016, 5, 1))
    guardian = people[0][0]
    await GuardianshipLink.create(
        guardian=guardian,
        ward_id_number_enc=intl.encrypt(ward_number),
        ward_id_number_index=intl.blind_index(ward_number),
        access_ends_on=date(2034, 5, 1),
        linked_at=NOW,
        verified_at=NOW,
    )
    # Certificates: the holder, a spouse with a row, and a household member with no source at all.
    stranger = factories.make_id_number()
    for i in range(30):
        holder, spouse = people[i][0], people[i + 100][0]
        cert = await Certificate.create(
            serial=f"NH{uuid.uuid4().hex[:12]}",
            cert_type="no-housing",
            purpose="purchase",
            household_rule="household",
            person=holder,
            as_of=NOW,
            issued_at=NOW,
            valid_until=NOW + timedelta(days=30),
            kid="k",
            token="t",
        )
        subjects = [(holder.id_number_index, "self"), (spouse.id_number_index, "spouse")]
        subjects += [(intl.blind_index(ward_number), "child")] if i == 0 else []
        subjects += [(intl.blind_index(stranger), "child")] if i == 1 else []
        for index, relation in subjects:
            await CertificateSubject.create(certificate=cert, id_number_index=index, relation=relation)
    # Pending SMS and sign-in code payloads with sealed fields.
    for person, _, phone in people[:20]:
        await OutboxMessage.create(
            topic="auth.sms_code",
            payload={
                "phone_enc": intl.encrypt(phone, context="phone"),
                "code_enc": intl.encrypt("123456", context="otp"),
            },
            idempotency_key=f"otp-{uuid.uuid4().hex}",
            next_attempt_at=NOW,
            created_at=NOW,
        )
    reader = audit.Reader("staff:1", "clerk", "登记工作人员")
    for person, _, _ in people[:5]:
        await _record(
            reader=reader,
            person_id=person.id,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            purpose="clerk_query",
            clock=clock,
        )
    await _record(
        reader=reader,
        person_id=None,
        person_index=intl.blind_index(ward_number),
        action=audit.PROPERTY_LIST,
        object_type="property_list",
        purpose=audit.PURPOSE_GUARDIAN,
        clock=clock,
    )
    return {"people": people, "ward_number": ward_number, "stranger": stranger}


async def test_a_populated_database_switches_to_national_interrupted_and_resumed(
    database: Path | None, intl: PiiVault, clock: AdjustableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = await _populate(intl, clock)
    national = intl.with_profile("national")
    assert (await switch.database_profile()) == ("international", None)
    with pytest.raises(switch.CryptoProfileMismatch):
        await switch.require_profile("national")

    # Interrupted twice: by a batch limit, then by a failure inside a batch (rolled back).
    first = await switch.switch_profile(vault=national, now=clock.now, batch_size=BATCH, max_batches=4)
    assert not first.complete and first.batches == 4
    for profile in ("international", "national"):  # neither may serve a half-converted database
        with pytest.raises(switch.CryptoProfileMismatch, match="under way"):
            await switch.require_profile(profile)
    with pytest.raises(switch.SwitchRefused):
        await switch.switch_profile(vault=intl, now=clock.now, batch_size=BATCH)
    real, calls = switch._Run.sealed_rows, {"n": 0}

    async def failing(self: Any, tx: Any, table: Any, rows: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected: the process dies in its third batch of sealed rows")
        return await real(self, tx, table, rows)

    monkeypatch.setattr(switch._Run, "sealed_rows", failing)
    with pytest.raises(RuntimeError, match="injected"):
        await switch.switch_profile(vault=national, now=clock.now, batch_size=BATCH)
    monkeypatch.setattr(switch._Run, "sealed_rows", real)
    state = await CryptoState.get(id=1)
    assert state.switching_to == "national" and state.checkpoint["phase"] == "person"

    seen: list[tuple[str, int, int]] = []
    done = await switch.switch_profile(
        vault=national, now=clock.now, batch_size=BATCH, progress=lambda *a: seen.append(a)
    )
    assert done.complete and done.audit_marker and done.unmapped_subjects == 0
    assert seen[-1][1] == seen[-1][2]
    await switch.require_profile("national")
    assert (await switch.database_profile()) == ("national", None)

    # Every row readable under the national profile, sealed with SM4, indexed with HMAC-SM3.
    for person, number, phone in data["people"]:
        row = await Person.get(id=person.id)
        assert row.id_number_enc.startswith("v2.sm4gcm.") and row.phone_enc.startswith("v2.sm4gcm.")
        assert national.decrypt(row.id_number_enc) == number
        assert row.id_number_index == national.blind_index(number)
        # Sign-in by SMS finds the citizen by the phone's new index.
        assert (await Person.get(phone_index=national.phone_index(phone))).id == person.id
    link = await GuardianshipLink.get(ward_id_number_index=national.blind_index(data["ward_number"]))
    assert national.decrypt(link.ward_id_number_enc) == data["ward_number"]
    # Certificate subjects follow their persons (revocation finds them); the one with no source stays.
    subjects = set(await CertificateSubject.all().values_list("id_number_index", flat=True))
    assert {national.blind_index(n) for _, n, _ in data["people"][:30]} <= subjects
    assert national.blind_index(data["ward_number"]) in subjects
    assert intl.blind_index(data["stranger"]) in subjects  # not recomputable: documented
    for message in await OutboxMessage.all():
        assert national.decrypt(message.payload["code_enc"], context="otp") == "123456"
        assert message.payload["phone_enc"].startswith("v2.sm4gcm.")

    # A rerun finds nothing to do.
    again = await switch.switch_profile(vault=national, now=clock.now, batch_size=BATCH)
    assert again.complete and sum(again.rows_changed.values()) == 0 and not again.audit_marker

    # The ward's read logged by the old index is still the ward's once the ward has a row.
    assert await CryptoIndexAlias.filter(new_index=national.blind_index(data["ward_number"])).exists()
    ward = await factories.create_person(vault=national, id_number=data["ward_number"], phone=None)
    page = await audit.access_log_for(person_id=ward.id, before_seq=None, limit=10)
    assert [i.purpose for i in page.items] == [audit.PURPOSE_GUARDIAN]

    # No ID number or phone in clear anywhere.
    await _assert_nothing_in_clear(database, data)

    # The access log: SHA-256 entries, the marker, SM3 entries; it verifies, and tampering shows.
    await _record(
        reader=audit.Reader("staff:1", "clerk", "登记工作人员"),
        person_id=data["people"][7][0].id,
        action=audit.PROPERTY_DETAIL,
        object_type="unit",
        purpose="clerk_query",
        clock=clock,
    )
    marker = await AccessLogEntry.get(action=HASH_SWITCH)
    assert marker.object_id == "sm3" and (await AccessLogHead.get(id=1)).hash_algorithm == "sm3"
    report = await verify_chain()
    assert report.ok and report.head_seq == marker.seq + 1
    last = await AccessLogEntry.get(seq=report.head_seq)
    assert last.hash == entry_hash(last.__dict__, "sm3") != entry_hash(last.__dict__, "sha256")
    for victim_seq in (marker.seq - 1, report.head_seq):  # one entry on each side of the change
        victim = await AccessLogEntry.get(seq=victim_seq)
        await _tamper(f"UPDATE access_log SET purpose = 'marketing' WHERE seq = {victim_seq}")
        try:
            bad = await verify_chain()
            assert (bad.ok, bad.first_bad_seq, bad.problem) == (False, victim_seq, "hash_mismatch")
        finally:
            await _tamper(f"UPDATE access_log SET purpose = '{victim.purpose}' WHERE seq = {victim_seq}")
    # Forging the marker (claiming the chain stayed on SHA-256) breaks it too.
    await _tamper(f"UPDATE access_log SET object_id = 'sha256' WHERE seq = {marker.seq}")
    try:
        assert (await verify_chain()).first_bad_seq == marker.seq
    finally:
        await _tamper(f"UPDATE access_log SET object_id = 'sm3' WHERE seq = {marker.seq}")
    assert (await verify_chain()).ok


async def _record(**kwargs: Any) -> None:
    """In a transaction: the group-commit writer runs in a fresh context, which would be the
    session app's database, not this module's."""
    async with in_transaction():
        await audit.record_access(**kwargs)


async def _assert_nothing_in_clear(path: Path | None, data: dict[str, Any]) -> None:
    secrets_ = {n for _, n, _ in data["people"]} | {p for _, _, p in data["people"]} | {data["ward_number"]}
    if path is not None:
        stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        found = [s for s in secrets_ if s.encode() in stored]
        assert not found, f"{len(found)} ID numbers or phones in clear in the database file"
    from tortoise import connections

    conn = connections.get("default")
    tables = [
        "person",
        "guardianship_link",
        "certificate_subject",
        "outbox_message",
        "access_log",
        "crypto_index_alias",
        "crypto_state",
    ]
    dump = ""
    for table in tables:
        dump += repr(await conn.execute_query_dict(f"SELECT * FROM {table}"))
    assert not [s for s in secrets_ if s in dump]
