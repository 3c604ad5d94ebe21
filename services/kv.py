"""Small key-value store for shared, expiring state: token denylist, caches.

Redis (`redis.asyncio`) when configured; an in-process dict in the single-process embedded
default. Both behave the same for the operations we use.

Reads against Redis are coalesced: every `get`/`get_many` issued by any request during one turn
of the event loop goes to Redis as a single MGET (a read-side "group commit"). Under load one
round trip and one trip through redis-py serve dozens of requests, and an idle server pays one
extra loop turn. Each caller still gets exactly its own values or the MGET's exception.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

MAX_KEYS_PER_MGET = 1024


class KeyValueStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        if len(self._data) > 100_000:
            self._evict_expired()
        self._data[key] = (value, time.monotonic() + ttl_s if ttl_s else None)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()

    def _evict_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]


class _CoalescedReads:
    """Collects the keys asked for during one loop turn and fetches them with one MGET."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        self._flush_scheduled = False

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bytes | None]] = loop.create_future()
        self._pending.append((keys, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, loop)  # after the callbacks already ready in this turn
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        batch: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        size = 0
        for item in pending:
            if batch and size + len(item[0]) > MAX_KEYS_PER_MGET:
                loop.create_task(self._fetch(batch), context=contextvars.Context())
                batch, size = [], 0
            batch.append(item)
            size += len(item[0])
        if batch:
            loop.create_task(self._fetch(batch), context=contextvars.Context())

    async def _fetch(self, batch: list[tuple[list[str], asyncio.Future[list[bytes | None]]]]) -> None:
        keys = list(dict.fromkeys(k for wanted, _ in batch for k in wanted))
        try:
            values = dict(zip(keys, await self._redis.mget(keys), strict=True))
        except BaseException as exc:  # every waiting caller gets the failure, as a plain GET would
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for wanted, future in batch:
            if not future.done():  # a caller that was cancelled meanwhile
                future.set_result([_as_bytes(values[k]) for k in wanted])


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


class RedisStore:
    def __init__(self, redis: Redis, *, prefix: str = "estate:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._reads = _CoalescedReads(redis)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "estate:") -> RedisStore:
        redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
        return cls(redis, prefix=prefix)

    @property
    def client(self) -> Redis:
        return self._redis

    async def get(self, key: str) -> bytes | None:
        return (await self._reads.get_many([self._prefix + key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._reads.get_many([self._prefix + k for k in keys])

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        await self._redis.set(self._prefix + key, value, px=int(ttl_s * 1000) if ttl_s else None)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*(self._prefix + k for k in keys))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
