"""Pure rules of guardians' links: alert periods, how a ward is named, the feed's single flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from services.clock import SystemClock
from services.errors import UpstreamUnavailable
from services.guardianship.alerts import alert_period, ward_label
from services.guardianship.feed import GuardianshipFeed

DAY = 86400


def test_alert_periods_follow_shanghai_midnight():
    # 15:59:59 UTC is 23:59:59 in Shanghai; a second later is the next Shanghai day.
    before = datetime(2025, 3, 1, 15, 59, 59, tzinfo=UTC)
    after = datetime(2025, 3, 1, 16, 0, 0, tzinfo=UTC)
    assert alert_period(before, DAY) == "2025-03-01/0"
    assert alert_period(after, DAY) == "2025-03-02/0"
    assert alert_period(datetime(2025, 3, 1, 0, 0, tzinfo=UTC), DAY) == "2025-03-01/0"  # 08:00 local
    assert alert_period(before, 3600) == "2025-03-01/23"
    assert alert_period(after, 3600) == "2025-03-02/0"
    # A period that does not divide a day ends early at midnight.
    assert alert_period(before, 7 * 3600) == "2025-03-01/3"
    assert alert_period(after, 7 * 3600) == "2025-03-02/0"


def test_a_ward_is_named_by_masked_name_only():
    assert ward_label("王小宝") == "王**"
    assert ward_label(None) == "（未登记姓名）"


class CountingFeed(GuardianshipFeed):
    """The single-flight logic, with the database and the registry replaced by a counter."""

    def __init__(self, *, max_age_s: float = 0.0, fail: bool = False) -> None:
        super().__init__(
            civil_registry=Any,  # type: ignore[arg-type]
            vault=Any,  # type: ignore[arg-type]
            clock=SystemClock(),
            max_age_s=max_age_s,
            page_size=10,
        )
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def _sync_once(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise UpstreamUnavailable("down", "down")
        return 0


async def test_concurrent_reads_share_one_feed_call():
    feed = CountingFeed()
    waiting = [asyncio.ensure_future(feed.ensure_fresh()) for _ in range(50)]
    await asyncio.sleep(0)
    feed.release.set()
    await asyncio.gather(*waiting)
    assert feed.calls == 1


async def test_a_read_arriving_during_a_call_waits_for_the_next_one():
    feed = CountingFeed()
    first = asyncio.ensure_future(feed.ensure_fresh())
    await asyncio.sleep(0.01)  # the first call is now reading the feed
    late = [asyncio.ensure_future(feed.ensure_fresh()) for _ in range(10)]
    await asyncio.sleep(0.01)
    assert feed.calls == 1
    feed.release.set()
    await asyncio.gather(first, *late)
    assert feed.calls == 2, "the late reads shared one more call"


async def test_within_max_age_a_recent_sync_is_enough():
    feed = CountingFeed(max_age_s=60)
    feed.release.set()
    await feed.ensure_fresh()
    await feed.ensure_fresh()
    assert feed.calls == 1
    fresh = CountingFeed(max_age_s=0)
    fresh.release.set()
    await fresh.ensure_fresh()
    await fresh.ensure_fresh()
    assert fresh.calls == 2


async def test_a_failed_sync_fails_every_read_that_waited_for_it():
    feed = CountingFeed(fail=True)
    waiting = [asyncio.ensure_future(feed.ensure_fresh()) for _ in range(5)]
    await asyncio.sleep(0)
    feed.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert feed.calls == 1
    feed.fail = False
    await feed.ensure_fresh()  # the next read tries again
    assert feed.calls == 2
