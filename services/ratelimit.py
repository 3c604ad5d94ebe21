"""Rate limits on top of the `limits` library: Redis when configured, memory otherwise."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from services.errors import RateLimited


def per_seconds(amount: int, seconds: int) -> RateLimitItem:
    return RateLimitItemPerSecond(amount, seconds)


def per_hour(amount: int) -> RateLimitItem:
    return RateLimitItemPerHour(amount)


def per_day(amount: int) -> RateLimitItem:
    return RateLimitItemPerDay(amount)


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._moving = MovingWindowRateLimiter(storage)
        self._fixed = FixedWindowRateLimiter(storage)

    @classmethod
    def from_url(cls, redis_url: str | None, *, prefix: str = "estate:") -> RateLimiter:
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            return cls(RedisStorage(uri, implementation="redispy", key_prefix=prefix + "limits"))
        return cls(MemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str, moving: bool = True) -> None:
        """Consume one unit or raise RateLimited with the seconds until the next one is free."""
        limiter = self._moving if moving else self._fixed
        if not await limiter.hit(item, *identifiers):
            stats = await limiter.get_window_stats(item, *identifiers)
            raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        await self._moving.clear(item, *identifiers)

    async def close(self) -> None:
        # MemoryStorage runs an expiry timer task; clearing it stops the timer.
        if isinstance(self._storage, MemoryStorage):
            await self._storage.reset()
