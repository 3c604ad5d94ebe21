"""The KV store: reads from concurrent requests are coalesced into one MGET on Redis, and every
caller still gets its own values, or the failure."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.kv import MemoryStore, RedisStore


@pytest.fixture
async def store(redis_url: str | None) -> AsyncIterator[RedisStore]:
    if redis_url is None:
        pytest.skip("needs Redis (TEST_REDIS_URL)")
    kv = RedisStore.from_url(redis_url, prefix=f"test-kv-{secrets.token_hex(4)}:")
    yield kv
    await kv.close()


def count_mgets(kv: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = kv.client.mget

    async def counting(keys: list[str], *args: Any) -> Any:
        calls.append(list(keys))
        return await real(keys, *args)

    monkeypatch.setattr(kv.client, "mget", counting)
    return calls


@pytest.mark.redis
async def test_concurrent_reads_share_one_mget(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(0, 40, 2):  # even keys exist, odd ones do not
        await store.set(f"k{i}", f"v{i}".encode(), ttl_s=60)
    calls = count_mgets(store, monkeypatch)

    singles = [store.get(f"k{i}") for i in range(40)]
    pairs = [store.get_many([f"k{i}", f"k{i + 1}", f"k{i}"]) for i in range(0, 40, 5)]
    results = await asyncio.gather(*singles, *pairs)

    assert len(calls) == 1, "every read issued in the same loop turn goes in one MGET"
    assert sorted(calls[0]) == sorted({store._prefix + f"k{i}" for i in range(41)} - {store._prefix + "k40"})
    for i, value in enumerate(results[:40]):
        assert value == (f"v{i}".encode() if i % 2 == 0 else None)
    for j, value in enumerate(results[40:]):
        i = j * 5
        expected = [f"v{k}".encode() if k % 2 == 0 else None for k in (i, i + 1, i)]
        assert value == expected


@pytest.mark.redis
async def test_sequential_reads_each_see_the_latest_write(store: RedisStore) -> None:
    await store.set("counter", b"1")
    assert await store.get("counter") == b"1"
    await store.set("counter", b"2")
    assert await store.get("counter") == b"2", "a read after a write never gets a coalesced older answer"
    await store.delete("counter")
    assert await store.get_many(["counter"]) == [None]
    assert await store.get_many([]) == []


@pytest.mark.redis
async def test_a_cancelled_reader_does_not_disturb_the_others(store: RedisStore) -> None:
    await store.set("a", b"1")
    await store.set("b", b"2")
    first = asyncio.ensure_future(store.get("a"))
    second = asyncio.ensure_future(store.get("b"))
    await asyncio.sleep(0)  # both queued, the MGET scheduled
    first.cancel()
    assert await second == b"2"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_every_waiting_reader_gets_the_failure() -> None:
    kv = RedisStore.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        results = await asyncio.gather(*(kv.get(f"k{i}") for i in range(5)), return_exceptions=True)
        assert len(results) == 5
        assert all(isinstance(r, RedisConnectionError) for r in results), results
    finally:
        await kv.close()


async def test_memory_store_answers_the_same_way() -> None:
    kv = MemoryStore()
    await kv.set("x", b"1", ttl_s=60)
    assert await kv.get_many(["x", "y", "x"]) == [b"1", None, b"1"]
    await kv.set("gone", b"1", ttl_s=0.001)
    await asyncio.sleep(0.01)
    assert await kv.get("gone") is None
