"""The transactional outbox on a real database built by the real migrations: SQLite, and PostgreSQL
when TEST_DATABASE_URL is set (a scratch database per test, dropped afterwards)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import pytest
from prometheus_client import REGISTRY
from tortoise.transactions import in_transaction

from config.settings import tortoise_config
from integrations.errors import AdapterNotConfigured, RequestRejected, SystemTimeout, SystemUnavailable
from services.clock import Clock, FrozenClock, SystemClock
from services.db import apply_migrations, dialect
from services.outbox import HandlerTable, PayloadError, Topic, TopicWithoutHandler, declare, route
from services.outbox.handlers import Handler, handlers_registered
from services.outbox.models import OutboxMessage
from services.outbox.store import (
    OutboxKeyConflict,
    Outgoing,
    claim_batch,
    enqueue,
    enqueue_many,
    mark_delivered,
    outbox_stats,
    purge_delivered,
    redrive,
)
from services.outbox.worker import OutboxWorker, backoff_delay
from tests.support.postgres import scratch_postgres
from tests.support.tortoise_state import tortoise_for_this_test

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Numbered:
    """The test topics' payload."""

    n: int
    note: str = ""


# Test topics, declared as a domain declares its own. The app's in-process worker has no
# handler for them, and never claims rows in these tests' databases anyway.
TOPIC = declare("outbox_test.store_license", Numbered)
OTHER = declare("outbox_test.other", Numbered)
UNHANDLED = declare("outbox_test.unhandled", Numbered)  # declared, never given a handler
NEEDS_PG = "needs PostgreSQL: set TEST_DATABASE_URL"


# --- databases ---------------------------------------------------------------------------------


@asynccontextmanager
async def migrated_database(backend: str, directory: Path) -> AsyncIterator[str]:
    """The URL of a fresh database of `backend`, built by the real migrations."""
    if backend == "sqlite":
        url = f"sqlite://{directory / 'outbox.sqlite3'}"
        await apply_migrations(tortoise_config(url))
        yield url
        return
    base_url = os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        pytest.skip(NEEDS_PG)
    async with scratch_postgres(base_url, prefix="outbox_test") as url:
        await apply_migrations(tortoise_config(url))
        yield url


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class Db(NamedTuple):
    backend: str
    url: str


@pytest.fixture(scope="module", params=BACKENDS)
async def migrated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Db]:
    """One database per backend for this module (creating one per test costs ~0.5 s on PostgreSQL)."""
    async with migrated_database(request.param, tmp_path_factory.mktemp("outbox")) as url:
        yield Db(request.param, url)


@pytest.fixture
async def database(migrated: Db) -> AsyncIterator[Db]:
    """The module's database, emptied, open in this test's context."""
    async with tortoise_for_this_test(tortoise_config(migrated.url)):
        assert dialect() == migrated.backend
        await OutboxMessage.all().delete()
        yield migrated


async def _not_called(payload: Numbered, key: str) -> dict[str, Any] | None:
    raise AssertionError("only registered, so that enqueue accepts the test topics")


@pytest.fixture(autouse=True)
def test_topics_registered() -> Iterator[None]:
    """What the composition root does at start, for the test topics; undone afterwards."""
    with handlers_registered(HandlerTable(route(TOPIC, _not_called), route(OTHER, _not_called))):
        yield


@pytest.fixture
def frozen() -> FrozenClock:
    """Our own clock: the session `clock` of tests/conftest.py is shared and reset per test."""
    return FrozenClock(T0)


# --- helpers -----------------------------------------------------------------------------------


class Recorder:
    """A handler that records its calls and fails with the queued errors first."""

    def __init__(self, *errors: BaseException, delay_s: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[Numbered, str]] = []
        self.delay_s = delay_s

    async def __call__(self, payload: Numbered, key: str) -> dict[str, Any]:
        self.calls.append((payload, key))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.errors:
            raise self.errors.pop(0)
        return {"license_id": f"EL-{payload.n}"}


def table(handlers: dict[Topic[Numbered], Handler[Numbered]]) -> HandlerTable:
    return HandlerTable(*(route(topic, handler) for topic, handler in handlers.items()))


def worker(
    handlers: dict[Topic[Numbered], Handler[Numbered]], clock: FrozenClock, **overrides: Any
) -> OutboxWorker:
    values: dict[str, Any] = {
        "worker_id": "worker-1",
        "batch_size": 10,
        "lease_s": 30.0,
        "poll_interval_s": 0.01,
        "max_attempts": 3,
        "backoff_base_s": 1.0,
        "backoff_cap_s": 8.0,
    }
    values.update(overrides)
    return OutboxWorker(handlers=table(handlers), clock=clock, **values)


async def put(
    clock: Clock, n: int = 1, *, topic: Topic[Numbered] = TOPIC, key: str | None = None
) -> OutboxMessage:
    async with in_transaction() as conn:
        return await enqueue(
            topic=topic,
            payload=Numbered(n),
            idempotency_key=key or f"key-{n}",
            connection=conn,
            clock=clock,
        )


def unavailable() -> SystemUnavailable:
    return SystemUnavailable("HTTP 503", system="elicense", operation="store_license", status=503)


def rejected() -> RequestRejected:
    return RequestRejected(
        "digest mismatch", system="elicense", operation="store_license", code="DIGEST_MISMATCH", status=422
    )


def metric(name: str, topic: Topic[Any] = TOPIC) -> float:
    return REGISTRY.get_sample_value(name, {"topic": topic.name}) or 0.0


# --- enqueue -----------------------------------------------------------------------------------


class Rollback(Exception):
    pass


async def test_enqueue_in_a_rolled_back_transaction_leaves_no_row(database: Db, frozen: FrozenClock) -> None:
    with pytest.raises(Rollback):
        async with in_transaction() as conn:
            await enqueue(
                topic=TOPIC, payload=Numbered(1), idempotency_key="k", connection=conn, clock=frozen
            )
            assert await OutboxMessage.all().using_db(conn).count() == 1
            raise Rollback
    assert await OutboxMessage.all().count() == 0
    assert await worker({TOPIC: Recorder()}, frozen).run_once() == 0


async def test_a_committed_message_is_delivered_with_its_key(database: Db, frozen: FrozenClock) -> None:
    handler = Recorder()
    message = await put(frozen, 7)
    assert (message.status, message.attempts, message.next_attempt_at) == ("pending", 0, T0)
    delivered_before = metric("outbox_delivered_total")

    assert await worker({TOPIC: handler}, frozen).run_once() == 1

    assert handler.calls == [(Numbered(7), "key-7")]
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts, row.result, row.delivered_at) == (
        "delivered",
        1,
        {"license_id": "EL-7"},
        T0,
    )
    assert (row.lease_owner, row.lease_until, row.last_error) == (None, None, None)
    assert metric("outbox_delivered_total") == delivered_before + 1
    assert await worker({TOPIC: handler}, frozen).run_once() == 0  # delivered is final


async def test_the_same_key_twice_is_one_row(database: Db, frozen: FrozenClock) -> None:
    first = await put(frozen, 1, key="same")
    second = await put(frozen, 1, key="same")
    assert second.id == first.id
    async with in_transaction() as conn:  # twice in one transaction as well
        third = await enqueue(
            topic=TOPIC, payload=Numbered(1), idempotency_key="same", connection=conn, clock=frozen
        )
        assert third.id == first.id
        await enqueue(
            topic=TOPIC, payload=Numbered(2), idempotency_key="other", connection=conn, clock=frozen
        )
    assert await OutboxMessage.all().count() == 2

    with pytest.raises(OutboxKeyConflict):  # a key reused for another call is a bug, not a dedupe
        await put(frozen, 99, key="same")
    handler = Recorder()
    assert await worker({TOPIC: handler}, frozen).run_once() == 2
    assert sorted(key for _, key in handler.calls) == ["other", "same"]


async def test_enqueue_many_writes_each_call_once_and_keeps_the_key_rules(
    database: Db, frozen: FrozenClock
) -> None:
    """One INSERT for several calls: rows in the order given, an existing key returns its row,
    a reused key with another payload is a conflict (and nothing of the batch is kept), and a
    scheduled one waits for its time."""
    existing = await put(frozen, 1, key="b")
    later = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    async with in_transaction() as conn:
        rows = await enqueue_many(
            [
                Outgoing(TOPIC, Numbered(0), "a"),
                Outgoing(TOPIC, Numbered(1), "b"),
                Outgoing(TOPIC, Numbered(2), "c", not_before=later),
            ],
            connection=conn,
            clock=frozen,
        )
    assert [r.idempotency_key for r in rows] == ["a", "b", "c"]
    assert rows[1].id == existing.id
    assert rows[2].next_attempt_at == later
    assert await OutboxMessage.all().count() == 3

    with pytest.raises(OutboxKeyConflict):
        async with in_transaction() as conn:
            await enqueue_many(
                [Outgoing(TOPIC, Numbered(3), "d"), Outgoing(TOPIC, Numbered(99), "a")],
                connection=conn,
                clock=frozen,
            )
    assert await OutboxMessage.filter(idempotency_key="d").count() == 0  # rolled back with it
    with pytest.raises(ValueError, match="own idempotency key"):
        twice = [Outgoing(TOPIC, Numbered(4), "e"), Outgoing(TOPIC, Numbered(4), "e")]
        await enqueue_many(twice, clock=frozen)

    handler = Recorder()
    assert await worker({TOPIC: handler}, frozen).run_once() == 2  # "c" is not due yet
    assert sorted(key for _, key in handler.calls) == ["a", "b"]


async def test_concurrent_transactions_enqueueing_one_key_make_one_row(
    database: Db, frozen: FrozenClock
) -> None:
    """On PostgreSQL the second INSERT waits on the unique index, then does nothing."""

    async def enqueue_slowly() -> int:
        async with in_transaction() as conn:
            message = await enqueue(
                topic=TOPIC, payload=Numbered(1), idempotency_key="race", connection=conn, clock=frozen
            )
            await asyncio.sleep(0.05)
            return message.id

    first, second = await asyncio.wait_for(asyncio.gather(enqueue_slowly(), enqueue_slowly()), 10)
    assert first == second
    assert await OutboxMessage.filter(idempotency_key="race").count() == 1


# --- failures ----------------------------------------------------------------------------------


async def test_system_unavailable_backs_off_then_succeeds(database: Db, frozen: FrozenClock) -> None:
    handler = Recorder(unavailable(), SystemTimeout("slow", system="elicense", operation="store_license"))
    message = await put(frozen)
    w = worker({TOPIC: handler}, frozen, backoff_base_s=1.0, backoff_cap_s=8.0)
    retried_before = metric("outbox_retried_total")

    assert await w.run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts, row.lease_owner, row.lease_until) == ("pending", 1, None, None)
    assert "SystemUnavailable" in (row.last_error or "")
    first_delay = (row.next_attempt_at - T0).total_seconds()
    assert 0.5 <= first_delay <= 1.0  # base 1 s with "equal jitter"
    assert await w.run_once() == 0  # not due yet

    frozen.advance(seconds=first_delay)
    assert await w.run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    second_delay = (row.next_attempt_at - frozen.now()).total_seconds()
    assert (row.status, row.attempts) == ("pending", 2)
    assert 1.0 <= second_delay <= 2.0  # doubled

    frozen.advance(seconds=second_delay)
    assert await w.run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts, row.result) == ("delivered", 3, {"license_id": "EL-1"})
    assert [key for _, key in handler.calls] == ["key-1"] * 3  # the same key every time
    assert metric("outbox_retried_total") == retried_before + 2


async def test_a_crashing_handler_is_logged_and_retried(
    database: Db, frozen: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(KeyError("license_type"))
    message = await put(frozen)
    w = worker({TOPIC: handler}, frozen, backoff_base_s=0.01, backoff_cap_s=0.01)
    with caplog.at_level(logging.ERROR, logger="services.outbox.store"):
        assert await w.run_once() == 1
    crash = [r for r in caplog.records if r.getMessage().startswith("outbox: handler for")]
    assert crash and crash[0].exc_info is not None  # with the traceback
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "pending" and "handler crashed: KeyError" in (row.last_error or "")
    frozen.advance(seconds=1)
    assert await w.run_once() == 1
    assert (await OutboxMessage.get(id=message.id)).status == "delivered"


async def test_a_hung_handler_is_cut_off_and_retried(database: Db, frozen: FrozenClock) -> None:
    handler = Recorder(delay_s=5.0)
    message = await put(frozen)
    w = worker({TOPIC: handler}, frozen, handler_timeout_s=0.05)
    assert await asyncio.wait_for(w.run_once(), 3) == 1
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "pending" and "did not finish within 0.05s" in (row.last_error or "")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(rejected(), id="rejected"),
        pytest.param(
            AdapterNotConfigured("no bank", system="banks", operation="notify"), id="not-configured"
        ),
    ],
)
async def test_a_refused_call_is_dead_at_once(database: Db, frozen: FrozenClock, error: Exception) -> None:
    handler = Recorder(error)
    message = await put(frozen)
    dead_before = metric("outbox_dead_total")
    assert await worker({TOPIC: handler}, frozen).run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts, row.lease_owner) == ("dead", 1, None)
    assert type(error).__name__ in (row.last_error or "")
    assert metric("outbox_dead_total") == dead_before + 1
    frozen.advance(hours=1)
    assert await worker({TOPIC: handler}, frozen).run_once() == 0
    assert len(handler.calls) == 1


async def stored_row(
    topic: str, payload: Any, frozen: FrozenClock, key: str = "written-elsewhere"
) -> OutboxMessage:
    """A row enqueue would refuse to write: another process's, or an older version's."""
    row = OutboxMessage(
        topic=topic,
        payload=payload,
        idempotency_key=key,
        next_attempt_at=frozen.now(),
        created_at=frozen.now(),
    )
    await OutboxMessage.bulk_create([row], ignore_conflicts=True)  # as enqueue inserts it
    return await OutboxMessage.get(idempotency_key=key)


async def test_an_unknown_topic_is_dead_not_skipped(database: Db, frozen: FrozenClock) -> None:
    message = await stored_row("tax.unheard_of", {"n": 1}, frozen)
    assert await worker({TOPIC: Recorder()}, frozen).run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "dead"
    assert "no handler for topic 'tax.unheard_of'" in (row.last_error or "")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        pytest.param({"number": 1}, "unknown field(s) number", id="misspelt"),
        pytest.param({}, "missing field(s) n", id="missing"),
        pytest.param({"n": "1"}, "outbox_test.store_license.n: expected int", id="wrong-type"),
    ],
)
async def test_a_payload_that_does_not_decode_is_dead_without_calling_the_handler(
    database: Db, frozen: FrozenClock, payload: Any, error: str
) -> None:
    message = await stored_row(TOPIC.name, payload, frozen)
    handler = Recorder()
    assert await worker({TOPIC: handler}, frozen).run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, handler.calls) == ("dead", [])
    assert (row.last_error or "").startswith("payload does not decode: ") and error in (row.last_error or "")


async def test_enqueue_refuses_a_topic_without_a_handler(database: Db, frozen: FrozenClock) -> None:
    """Refused in the use case, before anything is written, not dead at delivery."""
    with pytest.raises(TopicWithoutHandler, match=r"outbox_test\.unhandled"):
        await put(frozen, topic=UNHANDLED)
    undeclared = Topic("outbox_test.undeclared", Numbered)  # a look-alike of a declared topic
    with pytest.raises(TopicWithoutHandler):
        await put(frozen, topic=undeclared)
    with pytest.raises(TypeError):
        await enqueue(
            topic="outbox_test.store_license", payload=Numbered(1), idempotency_key="k", clock=frozen
        )  # type: ignore[misc]
    assert await OutboxMessage.all().count() == 0


async def test_enqueue_refuses_a_payload_of_another_type(database: Db, frozen: FrozenClock) -> None:
    @dataclass(frozen=True)
    class Lookalike:
        n: int
        note: str = ""

    with pytest.raises(PayloadError, match="must be a Numbered"):
        await enqueue(topic=TOPIC, payload=Lookalike(1), idempotency_key="k", clock=frozen)  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="n: expected int"):
        await enqueue(topic=TOPIC, payload=Numbered("1"), idempotency_key="k", clock=frozen)  # type: ignore[arg-type]
    assert await OutboxMessage.all().count() == 0


async def test_a_row_in_an_older_form_of_the_same_payload_is_the_same_message(
    database: Db, frozen: FrozenClock
) -> None:
    """Rows written before a defaulted field existed still decode, and match on their key."""
    old = await stored_row(TOPIC.name, {"n": 5}, frozen, key="key-5")
    assert (await put(frozen, 5)).id == old.id
    with pytest.raises(OutboxKeyConflict):
        await put(frozen, 6, key="key-5")
    handler = Recorder()
    assert await worker({TOPIC: handler}, frozen).run_once() == 1
    assert handler.calls == [(Numbered(5), "key-5")]


async def test_exhausted_attempts_are_dead(database: Db, frozen: FrozenClock) -> None:
    handler = Recorder(unavailable(), unavailable(), unavailable(), unavailable())
    message = await put(frozen)
    w = worker({TOPIC: handler}, frozen, max_attempts=3, backoff_base_s=1.0, backoff_cap_s=1.0)
    for _ in range(3):
        assert await w.run_once() == 1
        frozen.advance(seconds=1)
    assert await w.run_once() == 0
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts) == ("dead", 3)
    assert (row.last_error or "").startswith("gave up after 3 attempts: SystemUnavailable")
    assert len(handler.calls) == 3


async def test_redrive_brings_dead_messages_back_and_they_are_delivered(
    database: Db, frozen: FrozenClock
) -> None:
    handler = Recorder(rejected(), rejected())
    one, two = await put(frozen, 1), await put(frozen, 2)
    await put(frozen, 3, topic=OTHER)
    w = worker({TOPIC: handler, OTHER: Recorder(rejected())}, frozen)
    assert await w.run_once() == 3
    assert await OutboxMessage.filter(status="dead").count() == 3

    assert await redrive(ids=[]) == 0
    assert await redrive(ids=[one.id], clock=frozen) == 1
    assert await redrive(ids=[one.id], clock=frozen) == 0  # no longer dead
    row = await OutboxMessage.get(id=one.id)
    assert (row.status, row.attempts, row.next_attempt_at, row.lease_owner) == ("pending", 0, T0, None)
    assert await redrive(topic=TOPIC, clock=frozen) == 1  # only `two` is still dead on this topic

    assert await w.run_once() == 2
    for message in (one, two):
        row = await OutboxMessage.get(id=message.id)
        assert (row.status, row.attempts) == ("delivered", 1)
    assert [key for _, key in handler.calls] == ["key-1", "key-2", "key-1", "key-2"]
    assert await redrive(clock=frozen) == 1  # everything still dead: the other topic's message


# --- leases and concurrency ----------------------------------------------------------------------


async def test_an_expired_lease_is_delivered_again_with_the_same_key(
    database: Db, frozen: FrozenClock
) -> None:
    message = await put(frozen)
    [stale] = await claim_batch(worker_id="died-mid-delivery", limit=10, lease_s=30, clock=frozen)
    handler = Recorder()
    survivor = worker({TOPIC: handler}, frozen, worker_id="survivor")
    assert await survivor.run_once() == 0  # the lease still holds

    frozen.advance(seconds=31)
    assert await survivor.run_once() == 1
    assert handler.calls == [(Numbered(1), stale.idempotency_key)]
    row = await OutboxMessage.get(id=message.id)
    assert (row.status, row.attempts) == ("delivered", 2)
    # The first worker comes back to life: it no longer holds the claim and changes nothing.
    assert await mark_delivered(stale, result={"late": True}, clock=frozen) is False
    assert (await OutboxMessage.get(id=message.id)).result == {"license_id": "EL-1"}


async def test_a_message_whose_lease_keeps_expiring_goes_dead(database: Db, frozen: FrozenClock) -> None:
    """A message that kills every worker delivering it must not loop forever."""
    message = await put(frozen)
    for _ in range(2):
        assert len(await claim_batch(worker_id="crashing", limit=1, lease_s=5, clock=frozen)) == 1
        frozen.advance(seconds=6)
    handler = Recorder()
    assert await worker({TOPIC: handler}, frozen, max_attempts=2).run_once() == 1
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "dead" and "never finished" in (row.last_error or "")
    assert handler.calls == []


async def test_concurrent_claims_never_hand_out_a_message_twice(database: Db, frozen: FrozenClock) -> None:
    for n in range(12):
        await put(frozen, n)
    ids: list[int] = []
    for _ in range(10):
        batches = await asyncio.gather(
            *(claim_batch(worker_id=f"w{i}", limit=5, lease_s=30, clock=frozen) for i in range(4))
        )
        round_ids = [claim.id for batch in batches for claim in batch]
        if not round_ids:
            break
        ids += round_ids
    assert len(ids) == len(set(ids)) == 12


async def test_postgres_claim_skips_rows_locked_by_another_claim(database: Db, frozen: FrozenClock) -> None:
    if database.backend != "postgres":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite claims by conditional update")
    first, second = await put(frozen, 1), await put(frozen, 2)
    other = await asyncpg.connect(database.url.replace("postgres://", "postgresql://", 1))
    try:
        async with other.transaction():  # another worker, between its SELECT ... FOR UPDATE and its UPDATE
            await other.execute("SELECT id FROM outbox_message WHERE id = $1 FOR UPDATE", first.id)
            claims = await asyncio.wait_for(
                claim_batch(worker_id="w", limit=10, lease_s=30, clock=frozen), 5
            )  # does not wait for the lock
            assert [c.id for c in claims] == [second.id]
    finally:
        await other.close()
    assert [c.id for c in await claim_batch(worker_id="w", limit=10, lease_s=30, clock=frozen)] == [first.id]


async def test_two_workers_on_the_same_batch_deliver_each_message_once(
    database: Db, frozen: FrozenClock
) -> None:
    """PostgreSQL: SKIP LOCKED. SQLite: both read the same candidates, the conditional update decides."""
    calls: Counter[str] = Counter()

    async def handler(payload: Numbered, key: str) -> dict[str, Any]:
        calls[key] += 1
        await asyncio.sleep(0.005)
        return {}

    for n in range(30):
        await put(frozen, n)
    first = worker({TOPIC: handler}, frozen, worker_id="a", batch_size=7, concurrency=4)
    second = worker({TOPIC: handler}, frozen, worker_id="b", batch_size=7, concurrency=4)
    claimed = 0
    for _ in range(20):
        a, b = await asyncio.wait_for(asyncio.gather(first.run_once(), second.run_once()), 10)
        claimed += a + b
        if a == b == 0:
            break
    assert claimed == 30
    assert len(calls) == 30 and set(calls.values()) == {1}
    assert await OutboxMessage.filter(status="delivered").count() == 30


async def test_graceful_stop_finishes_in_flight_and_releases_the_rest(
    database: Db, frozen: FrozenClock
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def handler(payload: Numbered, key: str) -> dict[str, Any]:
        started.set()
        await finish.wait()
        return {"n": payload.n}

    for n in range(3):
        await put(frozen, n)
    stop = asyncio.Event()
    w = worker({TOPIC: handler}, frozen, concurrency=1)
    running = asyncio.create_task(w.run_forever(stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.sleep(0.05)
    assert not running.done()  # waits for the delivery in flight
    finish.set()
    await asyncio.wait_for(running, 5)

    rows = await OutboxMessage.all().order_by("id")
    assert [r.status for r in rows] == ["delivered", "pending", "pending"]
    assert [(r.attempts, r.lease_owner) for r in rows[1:]] == [(0, None), (0, None)]  # released, uncounted


async def test_run_forever_delivers_until_stopped(database: Db) -> None:
    handler = Recorder()
    stop = asyncio.Event()
    w = OutboxWorker(
        handlers=table({TOPIC: handler}),
        worker_id="forever",
        poll_interval_s=0.01,
        gauge_interval_s=0,  # refresh the pending gauge every round
        clock=SystemClock(),
    )
    running = asyncio.create_task(w.run_forever(stop))
    try:
        for n in range(5):
            await put(SystemClock(), n)
        for _ in range(300):
            if await OutboxMessage.filter(status="delivered").count() == 5:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert await OutboxMessage.filter(status="delivered").count() == 5
    assert REGISTRY.get_sample_value("outbox_pending_messages", {"topic": TOPIC.name}) == 0


# --- operations --------------------------------------------------------------------------------


async def test_stats_count_by_status_and_topic(database: Db, frozen: FrozenClock) -> None:
    assert await outbox_stats(clock=frozen) == {
        "by_status": {"pending": 0, "delivered": 0, "dead": 0},
        "by_topic": {},
        "oldest_pending_age_s": None,
    }
    await put(frozen, 1)
    await put(frozen, 2, topic=OTHER)
    frozen.advance(seconds=90)
    await put(frozen, 3)
    handlers = {TOPIC: Recorder(), OTHER: Recorder(rejected())}
    await worker(handlers, frozen, batch_size=2).run_once()
    frozen.advance(seconds=10)
    assert await outbox_stats(clock=frozen) == {
        "by_status": {"pending": 1, "delivered": 1, "dead": 1},
        "by_topic": {TOPIC.name: {"delivered": 1, "pending": 1}, OTHER.name: {"dead": 1}},
        "oldest_pending_age_s": 10.0,
    }


async def test_purge_removes_only_delivered_messages_past_the_retention(
    database: Db, frozen: FrozenClock
) -> None:
    old, failed = await put(frozen, 1), await put(frozen, 2, topic=OTHER)
    handlers = {TOPIC: Recorder(), OTHER: Recorder(rejected())}
    assert await worker(handlers, frozen).run_once() == 2  # 1 delivered, 2 dead
    frozen.advance(days=31)
    recent, waiting = await put(frozen, 3), await put(frozen, 4, topic=OTHER)
    later = {TOPIC: Recorder(), OTHER: Recorder(unavailable())}
    assert await worker(later, frozen).run_once() == 2  # 3 delivered now; 4 waits for a retry

    with pytest.raises(ValueError):
        await purge_delivered(older_than_days=0, clock=frozen)
    assert await purge_delivered(older_than_days=30, clock=frozen, batch_size=1) == 1
    left = {m.id: m.status for m in await OutboxMessage.all()}
    assert left == {failed.id: "dead", recent.id: "delivered", waiting.id: "pending"}
    assert old.id not in left
    assert await purge_delivered(older_than_days=30, clock=frozen) == 0

    # Past the retention the key is free again: the same call would be sent once more.
    again = await put(frozen, 1)
    assert again.id != old.id and again.status == "pending"


async def test_a_worker_purges_on_its_own_schedule(database: Db, frozen: FrozenClock) -> None:
    await put(frozen, 1)
    assert await worker({TOPIC: Recorder()}, frozen).run_once() == 1
    frozen.advance(days=100)
    stop = asyncio.Event()
    w = worker({TOPIC: Recorder()}, frozen, retention_days=90, purge_interval_s=0.01)
    task = asyncio.create_task(w.run_forever(stop))
    for _ in range(200):
        if await OutboxMessage.all().count() == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert await OutboxMessage.all().count() == 0


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    for attempts, low, high in [(1, 0.5, 1.0), (2, 1.0, 2.0), (4, 4.0, 8.0), (12, 300.0, 600.0)]:
        for _ in range(50):
            assert low <= backoff_delay(attempts, base_s=1.0, cap_s=600.0) <= high
