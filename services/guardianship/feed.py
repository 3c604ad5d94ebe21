"""Following the civil registry's guardianship change feed, so that a withdrawn guardianship stops
working at the next read instead of at the next 30-day re-verification.

Invariant: a ward's data is served only after a feed sync succeeded that *started* no earlier than
`max_age_s` before the read arrived (default 0: after the read arrived). By then every (guardian,
ward) pair the registry reported a change for has its links' `changes_reported` raised, and
`services/guardianship/links.py:open_ward` verifies such a link again before it serves anything; a
refusal suspends the link.

- **Flag, then move the cursor, in one transaction.** A crash between the two cannot happen; a
  sync that fails halfway leaves the cursor where the last committed page ended, so the next sync
  reads those changes again (at least once; a second flag only costs one more verification).
- **The flag is a counter, raised in one statement** (`changes_reported = changes_reported + 1`).
  A verification records the count it read *before* asking the registry (`changes_verified`), so
  a change reported while the registry was being asked stays pending: no lost flag.
- **The cursor moves by a conditional update** (`WHERE value = <the value this sync started
  from>`): of two processes syncing at once, one advances it and the other changes nothing (both
  flagged, which is harmless).
- **Single-flight within a process.** Concurrent reads share one feed call. A read that arrives
  while a call is in flight cannot use it (it may have been sent before the change the read must
  see): it waits for the next call, which every read that arrived meanwhile shares. So a burst of
  reads costs at most two feed calls. Across processes each process syncs on its own.
- **Fail closed.** A feed that cannot be read refuses the ward read (UpstreamUnavailable, 503):
  a minor's data is not served on the hope that nothing changed. `GET /me/wards` shows the last
  known state instead.

Not covered: a change the registry records but does not put in its feed, and a link created in
the instant between its verification and its insert, when the feed's entry for the pair may be
processed before the row exists. The second is why a new link starts with one pending change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from integrations.civil_registry.base import CivilRegistry, GuardianshipChanges
from integrations.errors import IntegrationError
from services.clock import Clock
from services.errors import UpstreamUnavailable
from services.guardianship.models import GuardianshipLink, IntegrationCursor
from services.pii import PiiVault
from services.registry.models import Person

log = logging.getLogger("estate.guardianship_feed")

FEED_NAME = "civil_registry.guardianship_changes"
MAX_PAGES_PER_SYNC = 1000


def _unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable(
        "户籍系统暂时无法确认监护关系变动，请稍后再试",
        "The civil registry cannot confirm guardianship changes now; try again later",
        system="civil_registry",
    )


@dataclass
class _Flight:
    started: float | None = None  # when the sync began reading the cursor; None: not yet
    task: asyncio.Task[int] = field(init=False)


class GuardianshipFeed:
    """Built once per process (the composition root); shared by the ward routes and the poller."""

    def __init__(
        self,
        *,
        civil_registry: CivilRegistry,
        vault: PiiVault,
        clock: Clock,
        max_age_s: float,
        page_size: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = civil_registry
        self._vault = vault
        self._clock = clock
        self._max_age_s = max_age_s
        self._page_size = page_size
        self._monotonic = monotonic
        self._flight: _Flight | None = None
        self._last_ok_started: float | None = None

    async def ensure_fresh(self) -> None:
        """Return once a sync that started no earlier than `max_age_s` before this call has
        succeeded; raise UpstreamUnavailable when the one this call waited for failed."""
        wanted = self._monotonic() - self._max_age_s
        while True:
            if self._last_ok_started is not None and self._last_ok_started >= wanted:
                return
            flight = self._flight
            if flight is None:
                flight = self._start()
            elif flight.started is not None and flight.started < wanted:
                # Already reading when this call arrived, so it may miss the change this call
                # must see: let it land, then share the next one.
                with contextlib.suppress(Exception):
                    await asyncio.shield(flight.task)
                continue
            await asyncio.shield(flight.task)
            return

    def _start(self) -> _Flight:
        flight = _Flight()
        flight.task = asyncio.get_running_loop().create_task(self._fly(flight), name="guardianship-feed-sync")
        flight.task.add_done_callback(_retrieve)
        self._flight = flight
        return flight

    async def _fly(self, flight: _Flight) -> int:
        started = flight.started = self._monotonic()
        try:
            flagged = await self._sync_once()
            if self._last_ok_started is None or started > self._last_ok_started:
                self._last_ok_started = started
            return flagged
        finally:
            if self._flight is flight:
                self._flight = None

    async def _sync_once(self) -> int:
        """Read the feed from the stored cursor to its end; return how many links were flagged."""
        cursor, _ = await IntegrationCursor.get_or_create(
            name=FEED_NAME, defaults={"value": None, "updated_at": self._clock.now()}
        )
        after = cursor.value
        flagged = 0
        for _ in range(MAX_PAGES_PER_SYNC):
            try:
                page = await self._registry.guardianship_changes(after, self._page_size)
            except IntegrationError as exc:
                if not exc.retryable:
                    log.error(
                        "the civil registry refused the guardianship feed cursor: %s",
                        exc,
                        extra={"event": "guardianship_feed_refused"},
                    )
                raise _unavailable() from exc
            flagged += await self._apply(page, after)
            if not page.changes or page.cursor == after:
                return flagged
            after = page.cursor
        log.error("guardianship feed not drained after %d pages", MAX_PAGES_PER_SYNC)
        raise _unavailable()

    async def _apply(self, page: GuardianshipChanges, after: str | None) -> int:
        if not page.changes and page.cursor == after:
            return 0  # nothing new: the common case on the read path, no transaction
        by_ward: dict[str, set[str]] = defaultdict(set)  # ward index -> guardian indexes
        for change in page.changes:
            ward_index = self._vault.blind_index(change.ward_id_number.upper())
            by_ward[ward_index].add(self._vault.blind_index(change.guardian_id_number.upper()))
        flagged = 0
        async with in_transaction() as conn:
            guardian_ids: dict[str, list[int]] = defaultdict(list)
            indexes = {g for guardians in by_ward.values() for g in guardians}
            if indexes:
                rows = (
                    await Person.filter(id_number_index__in=sorted(indexes))
                    .using_db(conn)
                    .values_list("id", "id_number_index")
                )
                for person_id, index in rows:
                    guardian_ids[str(index)].append(int(person_id))
            for ward_index, guardians in by_ward.items():
                ids = sorted(i for g in guardians for i in guardian_ids.get(g, []))
                if ids:
                    flagged += (
                        await GuardianshipLink.filter(guardian_id__in=ids, ward_id_number_index=ward_index)
                        .using_db(conn)
                        .update(changes_reported=F("changes_reported") + 1)
                    )
            if page.cursor != after:
                expected = Q(value__isnull=True) if after is None else Q(value=after)
                await (
                    IntegrationCursor.filter(Q(name=FEED_NAME) & expected)
                    .using_db(conn)
                    .update(value=page.cursor, updated_at=self._clock.now())
                )
        if flagged:
            log.info(
                "guardianship feed flagged %d link(s) for re-verification",
                flagged,
                extra={"event": "guardianship_feed_flagged", "links": flagged},
            )
        return flagged


def _retrieve(task: asyncio.Task[int]) -> None:
    """Mark a flight's error as seen even when every waiting read was cancelled meanwhile."""
    if not task.cancelled():
        task.exception()


async def poll_guardianship_feed(
    feed: GuardianshipFeed,
    *,
    interval_s: float,
    stop: asyncio.Event,
    after_sync: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Sync every `interval_s` until `stop` is set, so links are flagged (and, through
    `after_sync`, verified again) even when nobody reads. Errors are logged and retried."""
    log.info("guardianship feed poller started", extra={"event": "guardianship_feed_poller_started"})
    while not stop.is_set():
        try:
            await feed.ensure_fresh()
            if after_sync is not None:
                await after_sync()
        except UpstreamUnavailable:
            log.warning("guardianship feed poll: the civil registry is unavailable")
        except Exception:
            log.exception("guardianship feed poll failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
