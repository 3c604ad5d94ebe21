"""The access log at scale (docs/decisions/0007): monthly partitions on PostgreSQL, signed
checkpoints, verification from a checkpoint, retention by dropping whole months.

Every test gets a database of its own built by the real migrations (a copy of one migrated
template: a SQLite file, or on PostgreSQL a `CREATE DATABASE ... TEMPLATE`), so forged checkpoints
and dropped partitions stay there. Entries are placed in past months with a FrozenClock.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tortoise import connections
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

from api.container import audit_checkpoint_keys
from config.settings import Settings, tortoise_config
from services.audit import log as audit
from services.audit.checkpoints import (
    Checkpoint,
    CheckpointKeys,
    last_published,
    publish,
    take_checkpoint,
    verify_log,
)
from services.audit.models import AccessLogCheckpoint, AccessLogEntry
from services.audit.partitions import drop_expired_partitions, ensure_partitions, partition_spans
from services.clock import FrozenClock
from services.db import apply_migrations, dialect
from services.pii import PiiVault
from standards.crypto_profile import generate_signing_key, signature_algorithm
from tests.conftest import TEST_DATABASE_URL
from tests.integration.test_access_log import _tamper
from tests.support.postgres import _admin, database_url_for
from tests.support.tortoise_state import queries_given_back

ROOT = Path(__file__).resolve().parents[2]
JAN, FEB, APR = (datetime(2025, m, 10, 8, 0, tzinfo=UTC) for m in (1, 2, 4))
LATER = datetime(2025, 10, 15, tzinfo=UTC)  # six months after April: January..March may go


@pytest.fixture(scope="module", autouse=True)
async def _queries_back_on_the_app_database(app: Any) -> AsyncIterator[None]:
    """As tests/integration/test_national_profile.py: our contexts must not keep the app's queries."""
    async with queries_given_back(app):
        yield


@pytest.fixture(scope="module")
async def template(tmp_path_factory: pytest.TempPathFactory, vault: PiiVault) -> AsyncIterator[str]:
    """A migrated database to copy: a SQLite file's path, or a PostgreSQL database's name."""
    if TEST_DATABASE_URL:
        name = f"audit_tpl_{uuid.uuid4().hex[:12]}"
        await _admin(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
        try:
            await apply_migrations(tortoise_config(database_url_for(TEST_DATABASE_URL, name)), vault=vault)
            yield name
        finally:
            await _admin(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path_factory.mktemp("audit-template") / "estate.sqlite3"
        await apply_migrations(tortoise_config(f"sqlite://{path}"), vault=vault)
        yield str(path)


@pytest.fixture
async def database(template: str, tmp_path: Path) -> AsyncIterator[str]:
    """This test's own copy of the template, open in this test's Tortoise context; its URL."""
    if TEST_DATABASE_URL:
        name = f"audit_{uuid.uuid4().hex[:12]}"
        await _admin(TEST_DATABASE_URL, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = database_url_for(TEST_DATABASE_URL, name)
    else:
        name, path = "", tmp_path / "estate.sqlite3"
        shutil.copyfile(template, path)
        url = f"sqlite://{path}"
    ctx = TortoiseContext()
    try:
        with ctx:
            await ctx.init(config=tortoise_config(url))
            try:
                yield url
            finally:
                await ctx.close_connections()
    finally:
        if name:
            await _admin(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def keys(key_dir: Path, database: str) -> CheckpointKeys:
    """The checkpoint keys the CLI of this test uses too (ESTATE_KEY_DIR), of the session's profile."""
    return audit_checkpoint_keys(_settings(database, key_dir), for_signing=True)


def _settings(url: str, key_dir: Path) -> Settings:
    return Settings(_env_file=None, database_url=url, key_dir=key_dir)  # type: ignore[call-arg]


async def _append(at: datetime, count: int = 1) -> list[int]:
    """`count` reads at `at`, a second apart, each committed in its own transaction (in this
    test's database: the group-commit writer would use the session app's)."""
    seqs = []
    for i in range(count):
        async with in_transaction():
            entry = await audit.record_access(
                reader=audit.Reader("staff:1", "clerk", "登记工作人员"),
                person_id=42,
                action=audit.PROPERTY_LIST,
                object_type="property_list",
                purpose="registration_review",
                clock=FrozenClock(at + timedelta(seconds=i)),
            )
        seqs.append(entry.seq)
    return seqs


async def _partition_of(seq: int) -> str:
    rows = await connections.get("default").execute_query_dict(
        "SELECT tableoid::regclass::text AS part FROM access_log WHERE seq = $1", [seq]
    )
    return str(rows[0]["part"])


async def _cli(url: str, key_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    full_env = {
        **os.environ,
        "DATABASE_URL": url,
        "ESTATE_KEY_DIR": str(key_dir),
        "ESTATE_LOG_JSON": "false",
        **env,
    }
    full_env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        "audit",
        *args,
        cwd=ROOT,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode()


def _json(out: str) -> Any:
    """The JSON document a command printed (log lines may surround it)."""
    lines = out.splitlines()
    start, end = lines.index("{"), len(lines) - lines[::-1].index("}")
    return json.loads("\n".join(lines[start:end]))


def needs_postgres() -> None:
    if dialect() != "postgres":
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL (partitions are PostgreSQL's)")


# --- partitions ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_appends_at_a_month_boundary_land_in_their_months_on_one_chain(database: str) -> None:
    needs_postgres()
    made = await ensure_partitions(now=JAN, months_ahead=1, since=JAN)
    assert made == ["access_log_y2025m01", "access_log_y2025m02"]
    assert await ensure_partitions(now=JAN, months_ahead=1, since=JAN) == []  # idempotent
    boundary = datetime(2025, 2, 1, tzinfo=UTC)
    before = await _append(boundary - timedelta(microseconds=1))
    after = await _append(boundary)
    march = await _append(datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC))  # no partition yet: made by the append
    assert [await _partition_of(s) for s in (*before, *after, *march)] == [
        "access_log_y2025m01",
        "access_log_y2025m02",
        "access_log_y2025m03",
    ]
    report = await audit.verify_chain()
    assert report.ok and report.entries_checked == 3
    # The append-only triggers hold on every partition, TRUNCATE of a partition included.
    conn = connections.get("default")
    for statement in (
        "UPDATE access_log_y2025m01 SET purpose = 'x'",
        "DELETE FROM access_log_y2025m02",
        "TRUNCATE access_log_y2025m03",
        "UPDATE access_log SET occurred_at = occurred_at + interval '40 days'",
    ):
        with pytest.raises(Exception, match="append-only"):
            await conn.execute_query(statement)
    # No DEFAULT partition: a month is made, never swallowed by a catch-all.
    rows = await conn.execute_query_dict(
        "SELECT count(*) AS n FROM pg_partitioned_table p WHERE p.partrelid = 'access_log'::regclass "
        "AND p.partdefid <> 0"
    )
    assert rows[0]["n"] == 0


# --- tampering, from the genesis and from a checkpoint ------------------------------------------


async def test_tampering_across_months_is_found_from_the_genesis_and_from_a_checkpoint(
    database: str, keys: CheckpointKeys
) -> None:
    jan = await _append(JAN, 3)
    feb = await _append(FEB, 3)
    _, checkpoint = await take_checkpoint(keys=keys, clock=FrozenClock(FEB + timedelta(hours=1)))
    assert checkpoint is not None and checkpoint.seq == feb[-1]
    apr = await _append(APR, 3)
    if dialect() == "postgres":
        assert await _partition_of(jan[1]) == "access_log_y2025m01"
        assert await _partition_of(apr[1]) == "access_log_y2025m04"
    ok = await verify_log(keys=keys)
    assert ok.ok and ok.anchor_seq == checkpoint.seq and ok.entries_checked == 3  # only April
    assert (await verify_log(keys=keys, full=True)).entries_checked == 9

    # An entry edited in January's partition: the full walk names it; from the checkpoint it is
    # before the trusted point, so the walk from there stays green.
    await _tamper(f"UPDATE access_log SET purpose = 'marketing' WHERE seq = {jan[1]}")
    bad = await verify_log(keys=keys, full=True)
    assert (bad.ok, bad.first_bad_seq, bad.problem) == (False, jan[1], "hash_mismatch")
    assert (await verify_log(keys=keys)).ok
    await _tamper(f"UPDATE access_log SET purpose = 'registration_review' WHERE seq = {jan[1]}")

    # Edited after the checkpoint: found by both.
    await _tamper(f"UPDATE access_log SET purpose = 'marketing' WHERE seq = {apr[1]}")
    for full in (False, True):
        bad = await verify_log(keys=keys, full=full)
        assert (bad.first_bad_seq, bad.problem) == (apr[1], "hash_mismatch")
    await _tamper(f"UPDATE access_log SET purpose = 'registration_review' WHERE seq = {apr[1]}")

    # The checkpoint's own entry edited with its hash recomputed: it disagrees with the signature.
    row = await AccessLogEntry.get(seq=checkpoint.seq).values()
    forged = audit.entry_hash({**row, "purpose": "marketing"}, checkpoint.algorithm)
    await _tamper(f"UPDATE access_log SET hash = '{forged}' WHERE seq = {checkpoint.seq}")
    bad = await verify_log(keys=keys)
    assert (bad.first_bad_seq, bad.problem) == (checkpoint.seq, "checkpoint_mismatch")
    await _tamper(f"UPDATE access_log SET hash = '{checkpoint.hash}' WHERE seq = {checkpoint.seq}")

    # A deleted entry in an older month leaves a gap; one after the checkpoint too.
    for victim, full in ((jan[2], True), (apr[0], False)):
        kept = await AccessLogEntry.get(seq=victim).values()
        await _tamper(f"DELETE FROM access_log WHERE seq = {victim}")
        bad = await verify_log(keys=keys, full=full)
        assert (bad.first_bad_seq, bad.problem) == (victim, "missing_entries")
        kept.pop("id")
        await AccessLogEntry.create(**kept)
    assert (await verify_log(keys=keys, full=True)).ok


# --- forged checkpoints --------------------------------------------------------------------------


def _forge(checkpoint: Checkpoint, how: str, keys: CheckpointKeys, chain_hash: str) -> Checkpoint:
    if how == "signature-altered":
        flipped = "A" if checkpoint.signature[0] != "A" else "B"
        return Checkpoint(**{**checkpoint.__dict__, "signature": flipped + checkpoint.signature[1:]})
    if how == "hash-altered":
        return Checkpoint(**{**checkpoint.__dict__, "hash": "f" * 64})
    if how == "validly-signed-wrong-hash":  # as if the key were stolen: the chain still disagrees
        return keys.sign(seq=checkpoint.seq, hash_="e" * 64, algorithm=checkpoint.algorithm, created_at=LATER)
    other = CheckpointKeys(generate_signing_key(keys.signing.algorithm))  # type: ignore[union-attr]
    return other.sign(seq=checkpoint.seq, hash_=chain_hash, algorithm=checkpoint.algorithm, created_at=LATER)


EXPECTED = {
    "signature-altered": "checkpoint_bad_signature",
    "hash-altered": "checkpoint_bad_signature",
    "validly-signed-wrong-hash": "checkpoint_mismatch",
    "other-key": "checkpoint_unknown_key",
}


@pytest.mark.parametrize("how", list(EXPECTED))
async def test_a_forged_checkpoint_is_refused_in_the_table_and_in_a_published_file(
    database: str, keys: CheckpointKeys, key_dir: Path, tmp_path: Path, how: str
) -> None:
    await _append(JAN, 2)
    _, real = await take_checkpoint(keys=keys, clock=FrozenClock(JAN + timedelta(hours=1)))
    assert real is not None
    await _append(FEB, 2)
    forged = _forge(real, how, keys, real.hash)
    published = tmp_path / "checkpoints.jsonl"
    publish(published, real)
    publish(published, forged)
    assert last_published(published) == forged

    report = await verify_log(keys=keys, published=forged)
    assert (report.ok, report.problem, report.first_bad_seq) == (False, EXPECTED[how], real.seq)
    code, out = await _cli(database, key_dir, "verify", "--checkpoint", str(published))
    assert code == 1 and EXPECTED[how] in out and "access log tampered" in out, out

    await AccessLogCheckpoint.create(**{**forged.__dict__})
    for full in (False, True):
        assert (await verify_log(keys=keys, full=full)).problem == EXPECTED[how]
    code, out = await _cli(database, key_dir, "verify")
    assert code == 1 and EXPECTED[how] in out, out
    if how != "other-key":
        return
    # Nothing is signed over it, and nothing is dropped on its word.
    code, out = await _cli(database, key_dir, "checkpoint")
    assert code == 1 and "no checkpoint" in out, out
    if dialect() == "postgres":
        code, out = await _cli(database, key_dir, "retain", ESTATE_ACCESS_LOG_RETENTION_MONTHS="6")
        assert code == 1 and "nothing dropped" in out and "refused" in out, out


async def test_the_checkpoint_command_publishes_and_verify_trusts_the_file(
    database: str, key_dir: Path, tmp_path: Path
) -> None:
    await _append(JAN, 3)
    published = tmp_path / "published" / "checkpoints.jsonl"
    published.parent.mkdir()
    code, out = await _cli(database, key_dir, "checkpoint", "--publish", str(published))
    assert code == 0, out
    line = json.loads(published.read_text().splitlines()[-1])
    algorithm = signature_algorithm(_settings(database, key_dir).crypto_profile)
    assert line["seq"] == 3 and len(line["signature"]) == 86, line  # 64 bytes, Ed25519 or SM2
    assert await AccessLogCheckpoint.filter(seq=3, signature=line["signature"]).exists()
    signing = audit_checkpoint_keys(_settings(database, key_dir), for_signing=True).signing
    assert signing is not None and signing.algorithm == algorithm
    await _append(FEB, 2)
    code, out = await _cli(database, key_dir, "verify", "--checkpoint", str(published))
    report = _json(out)
    assert code == 0 and report["anchor_seq"] == 3 and report["entries_checked"] == 2, out
    code, out = await _cli(database, key_dir, "verify", "--full")
    assert code == 0 and _json(out)["entries_checked"] == 5, out


# --- retention -----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_retention_drops_only_old_months_a_checkpoint_covers_and_verify_stays_green(
    database: str, keys: CheckpointKeys, key_dir: Path
) -> None:
    needs_postgres()
    await ensure_partitions(now=APR, months_ahead=0, since=JAN)  # March stays empty
    jan = await _append(JAN, 3)
    feb = await _append(FEB, 2)
    _, first = await take_checkpoint(keys=keys, clock=FrozenClock(FEB + timedelta(hours=1)))
    assert first is not None
    feb += await _append(FEB + timedelta(days=1), 1)  # after the checkpoint, in February
    apr = await _append(APR, 2)

    def drop(now: datetime, seq: int | None, dry_run: bool = False) -> Any:
        return drop_expired_partitions(now=now, retention_months=6, checkpoint_seq=seq, dry_run=dry_run)

    # Younger than the retention: nothing goes, whatever the checkpoints say.
    young = await drop(datetime(2025, 6, 15, tzinfo=UTC), first.seq)
    assert young.dropped == [] and "younger than the retention" in (young.kept_because or "")
    # No checkpoint: nothing goes.
    assert (await drop(LATER, None)).dropped == []
    # January is covered; February holds an entry after the checkpoint and stays.
    dry = await drop(LATER, first.seq, dry_run=True)
    assert [p.name for p in dry.dropped] == ["access_log_y2025m01"]
    assert "after the latest trusted checkpoint" in (dry.kept_because or "")
    assert await AccessLogEntry.filter(seq=jan[0]).exists()  # a dry run drops nothing
    done = await drop(LATER, first.seq)
    assert [(p.name, p.min_seq, p.max_seq) for p in done.dropped] == [
        ("access_log_y2025m01", jan[0], jan[-1])
    ]
    assert not await AccessLogEntry.filter(seq__in=jan).exists()

    # From the checkpoint, and in full from the first kept entry, anchored by that checkpoint
    # (its entry is still there and later than the first kept one).
    assert (await verify_log(keys=keys)).ok
    full = await verify_log(keys=keys, full=True)
    assert full.ok and full.start_seq == jan[-1] and full.anchor_seq == first.seq
    assert full.entries_checked == len(feb) + len(apr)
    # Without a checkpoint that covers the first kept entry, the full walk cannot be anchored.
    assert (
        await audit.verify_chain(start=audit.ChainStart(jan[-1], None, None))
    ).problem == "unanchored_start"

    # A second checkpoint covers February; the command (on today's clock, with a retention that
    # ends at April 2025) drops it and March (empty), and keeps April.
    code, out = await _cli(database, key_dir, "checkpoint")
    assert code == 0, out
    today = datetime.now(UTC)
    retention = str(today.year * 12 + today.month - (2025 * 12 + 4))
    code, out = await _cli(
        database, key_dir, "retain", "--dry-run", ESTATE_ACCESS_LOG_RETENTION_MONTHS=retention
    )
    assert code == 0 and "would drop" in out, out
    code, out = await _cli(database, key_dir, "retain", ESTATE_ACCESS_LOG_RETENTION_MONTHS=retention)
    assert code == 0 and "dropped: access_log_y2025m02, access_log_y2025m03" in out, out
    names = [p.name for p in await partition_spans()]
    assert "access_log_y2025m02" not in names and "access_log_y2025m04" in names
    for args in ((), ("--full",)):
        code, out = await _cli(database, key_dir, "verify", *args)
        assert code == 0, out
    # Entries still leave only with their partition.
    with pytest.raises(Exception, match="append-only"):
        await AccessLogEntry.filter(seq=apr[0]).delete()


async def test_retention_on_sqlite_explains_and_fails(database: str, key_dir: Path) -> None:
    if dialect() != "sqlite":
        pytest.skip("the SQLite pass's: PostgreSQL has partitions to drop")
    code, out = await _cli(database, key_dir, "retain", "--dry-run")
    assert code == 2 and "only PostgreSQL" in out, out


def test_the_retention_setting_refuses_less_than_six_months() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, access_log_retention_months=5)  # type: ignore[call-arg]
    assert Settings(_env_file=None, access_log_retention_months=6).access_log_retention_months == 6  # type: ignore[call-arg]
