"""Delivers outbox messages: claim a batch under a lease, call each topic's handler, record the outcome.

Outcomes: the handler returns -> delivered (result stored). `SystemUnavailable` (and so
`SystemTimeout`), any other retryable `IntegrationError`, a handler that overruns its deadline or
crashes with an unexpected exception -> retried later with exponential backoff and jitter.
`RequestRejected`, `AdapterNotConfigured` and other non-retryable errors, an unknown topic, a
payload that does not decode to its topic's dataclass, or attempts exhausted -> dead, until an
operator re-drives it.

The worker holds no transaction: each claim and each outcome is one statement, so delivery
tasks never outlive a transaction. A worker that dies mid-delivery leaves its lease to expire;
another worker then delivers the message again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from integrations.errors import IntegrationError
from services.clock import Clock
from services.outbox import store as outbox
from services.outbox.handlers import HandlerTable
from services.outbox.store import Claim
from services.outbox.topics import PayloadError

logger = logging.getLogger("services.outbox.store")

DELIVERED = Counter("outbox_delivered", "Outbox messages delivered", ["topic"])
RETRIED = Counter("outbox_retried", "Outbox deliveries that failed and were scheduled again", ["topic"])
DEAD = Counter("outbox_dead", "Outbox messages given up on (dead)", ["topic"])
DELIVERY_SECONDS = Histogram(
    "outbox_delivery_seconds", "Duration of one outbox delivery attempt", ["topic", "outcome"]
)
PENDING = Gauge("outbox_pending_messages", "Outbox messages waiting for delivery", ["topic"])


def backoff_delay(attempts: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failure: base*2^(n-1) capped, "equal jitter" in [d/2, d].

    Half of the delay is fixed so that a burst of failures does not retry at once; the random
    half spreads the retries of many messages that failed together.
    """
    delay = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


# --- decisions: pure, so the unit tier checks them without a database ----------------------------


@dataclass(frozen=True)
class Retry:
    """Deliver again after a backoff delay; `error` is recorded on the row."""

    error: str


@dataclass(frozen=True)
class GiveUp:
    """Mark the message dead until an operator re-drives it; `reason` is the log field."""

    error: str
    reason: str


def refusal_before_delivery(
    *, attempts: int, max_attempts: int, topic: str, known_topics: Collection[str], worker_id: str
) -> GiveUp | None:
    """Why a claimed message goes to no handler at all; None: deliver it."""
    if attempts > max_attempts:
        # Its lease expired on the last allowed attempt (e.g. the message crashes workers).
        return GiveUp(f"gave up after {attempts - 1} attempts; the last one never finished", "expired")
    if topic not in known_topics:
        return GiveUp(
            f"no handler for topic {topic!r} in worker {worker_id}; known topics: {sorted(known_topics)}",
            "unknown_topic",
        )
    return None


def after_failure(
    exc: Exception, *, attempts: int, max_attempts: int, handler_timeout_s: float
) -> Retry | GiveUp:
    """What the `attempts`-th attempt failing with `exc` leads to.

    A refusal that sending again cannot change (a non-retryable IntegrationError) is dead at once,
    labelled with the error's outcome. Anything else (a retryable IntegrationError, the handler
    overrunning its deadline, an unexpected crash) is retried until the attempts run out.
    """
    if isinstance(exc, TimeoutError):
        error = f"handler did not finish within {handler_timeout_s}s"
    elif isinstance(exc, IntegrationError):
        error = f"{type(exc).__name__}: {exc}"
        if not exc.retryable:
            return GiveUp(error, exc.outcome)
    else:
        error = f"handler crashed: {type(exc).__name__}: {exc}"
    if attempts >= max_attempts:
        return GiveUp(f"gave up after {attempts} attempts: {error}", "exhausted")
    return Retry(error)


class OutboxWorker:
    def __init__(
        self,
        *,
        handlers: HandlerTable,
        worker_id: str,
        batch_size: int = 20,
        lease_s: float = 30.0,
        poll_interval_s: float = 0.5,
        max_attempts: int = 8,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 600.0,
        clock: Clock,
        concurrency: int = 8,
        handler_timeout_s: float | None = None,
        gauge_interval_s: float = 15.0,
        retention_days: float | None = None,
        purge_interval_s: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        """`handler_timeout_s` (default 80% of the lease) ends a hung handler before its lease
        runs out, so another worker rarely starts the same delivery while this one still runs."""
        if not worker_id or len(worker_id) > 64:
            raise ValueError("worker_id must be 1..64 characters")
        if batch_size < 1 or concurrency < 1 or max_attempts < 1:
            raise ValueError("batch_size, concurrency and max_attempts must be at least 1")
        if lease_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lease_s and poll_interval_s must be positive")
        self.handlers = handlers
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.handler_timeout_s = handler_timeout_s if handler_timeout_s is not None else lease_s * 0.8
        self.gauge_interval_s = gauge_interval_s
        self.retention_days = retention_days  # None: delivered messages are kept
        self.purge_interval_s = purge_interval_s
        self._clock = clock
        self._slots = concurrency
        self._concurrency = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self._stop: asyncio.Event | None = None
        self._known_topics: set[str] = set(self.handlers.names)  # reported as 0 when none are pending

    @classmethod
    def from_settings(
        cls, settings: Any, *, handlers: HandlerTable, worker_id: str, clock: Clock, **overrides: Any
    ) -> OutboxWorker:
        values: dict[str, Any] = {
            "batch_size": settings.outbox_batch_size,
            "lease_s": settings.outbox_lease_s,
            "poll_interval_s": settings.outbox_poll_interval_s,
            "max_attempts": settings.outbox_max_attempts,
            "backoff_base_s": settings.outbox_backoff_base_s,
            "backoff_cap_s": settings.outbox_backoff_cap_s,
            "concurrency": settings.outbox_concurrency,
            "retention_days": settings.outbox_retention_days,
        }
        values.update(overrides)
        return cls(handlers=handlers, worker_id=worker_id, clock=clock, **values)

    # --- running -------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim one batch and deliver it (at most `concurrency` at a time); the number claimed."""
        claims = await outbox.claim_batch(
            worker_id=self.worker_id, limit=self.batch_size, lease_s=self.lease_s, clock=self._clock
        )
        if not claims:
            return 0
        await asyncio.gather(*(self._deliver_recorded(c, bounded=True) for c in claims))
        return len(claims)

    async def _deliver_recorded(self, claim: Claim, *, bounded: bool = False) -> None:
        try:
            await (self._deliver_bounded(claim) if bounded else self._deliver(claim))
        except Exception:
            # Recording the outcome failed (e.g. the database is down): the lease expires and
            # the message is delivered again, under the same key.
            logger.exception(
                "outbox: could not record the outcome of message %d",
                claim.id,
                extra=_fields(claim, "outbox_record_failed"),
            )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; then finish the deliveries in flight and return.

        A pipeline, not batch by batch: up to `concurrency` deliveries run at once, and as soon as
        one ends the worker claims more, so one slow delivery (a provider retrying inside its call)
        does not hold up the others. It claims only what it can start at once, so no lease ticks
        away while its message waits in this process."""
        self._stop = stop
        next_gauge = 0.0
        next_purge = time.monotonic() + self.purge_interval_s * self._rng.random()  # workers spread out
        failures = 0
        in_flight: set[asyncio.Task[None]] = set()
        logger.info("outbox worker %s started", self.worker_id, extra={"event": "outbox_worker_started"})
        try:
            while not stop.is_set():
                wanted = min(self.batch_size, self._slots - len(in_flight))
                claimed = 0
                if wanted > 0:
                    try:
                        claims = await outbox.claim_batch(
                            worker_id=self.worker_id, limit=wanted, lease_s=self.lease_s, clock=self._clock
                        )
                        failures = 0
                    except Exception:
                        claims = []
                        failures += 1
                        logger.exception("outbox worker %s: poll failed", self.worker_id)
                    for claim in claims:
                        task = asyncio.create_task(self._deliver_recorded(claim))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    claimed = len(claims)
                if time.monotonic() >= next_gauge:
                    next_gauge = time.monotonic() + self.gauge_interval_s
                    await self._update_pending_gauge()
                if self.retention_days is not None and time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.purge_interval_s
                    await self._purge()
                if len(in_flight) >= self._slots:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                elif claimed < wanted or wanted <= 0:  # nothing more due now: wait, or a slot frees
                    idle = self.poll_interval_s * min(2**failures, 60)
                    stopping = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait(
                            {stopping, *in_flight}, timeout=idle, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        stopping.cancel()
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            await self._update_pending_gauge()  # the last deliveries' effect; never raises
            self._stop = None
            logger.info("outbox worker %s stopped", self.worker_id, extra={"event": "outbox_worker_stopped"})

    async def _purge(self) -> None:
        assert self.retention_days is not None
        try:
            await outbox.purge_delivered(older_than_days=self.retention_days, clock=self._clock)
        except Exception:  # housekeeping: the next interval tries again
            logger.exception("outbox worker %s: purge failed", self.worker_id)

    # --- one message ---------------------------------------------------------------------------------

    async def _deliver_bounded(self, claim: Claim) -> None:
        async with self._concurrency:
            if self._stop is not None and self._stop.is_set():
                await outbox.release(claim)  # not started: leave it to the next worker, uncounted
                return
            await self._deliver(claim)

    async def _deliver(self, claim: Claim) -> None:
        refusal = refusal_before_delivery(
            attempts=claim.attempts,
            max_attempts=self.max_attempts,
            topic=claim.topic,
            known_topics=self.handlers.names,
            worker_id=self.worker_id,
        )
        if refusal is not None:
            await self._give_up(claim, refusal.error, refusal.reason)
            return
        route = self.handlers.get(claim.topic)
        assert route is not None  # refusal_before_delivery gave up on unknown topics
        try:
            payload = route.decode(claim.payload)
        except PayloadError as exc:  # no retry decodes it: a bug, or a row of an incompatible version
            await self._give_up(claim, f"payload does not decode: {exc}", "bad_payload")
            return
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.handler_timeout_s):
                result = await route.handler(payload, claim.idempotency_key)
        except Exception as exc:
            if not isinstance(exc, TimeoutError | IntegrationError):
                logger.exception(
                    "outbox: handler for %s crashed on message %d",
                    claim.topic,
                    claim.id,
                    extra=_fields(claim, "outbox_handler_crashed"),
                )
            await self._failed(claim, exc, started)
        else:
            self._observe(claim, "delivered", started)
            await self._delivered(claim, result)

    async def _delivered(self, claim: Claim, result: Any) -> None:
        if result is not None and not isinstance(result, dict):
            logger.warning("outbox: handler for %s returned a %s, not a dict", claim.topic, type(result))
            result = {"value": str(result)}
        if await outbox.mark_delivered(claim, result=result, clock=self._clock):
            DELIVERED.labels(topic=claim.topic).inc()
            logger.info("outbox: message %d delivered", claim.id, extra=_fields(claim, "outbox_delivered"))
        else:
            self._lost_lease(claim, "delivered")

    async def _failed(self, claim: Claim, exc: Exception, started: float) -> None:
        decision = after_failure(
            exc,
            attempts=claim.attempts,
            max_attempts=self.max_attempts,
            handler_timeout_s=self.handler_timeout_s,
        )
        if isinstance(decision, GiveUp):
            self._observe(claim, "dead", started)
            await self._give_up(claim, decision.error, decision.reason)
            return
        self._observe(claim, "retry", started)
        delay = backoff_delay(
            claim.attempts, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, rng=self._rng
        )
        due = self._clock.now() + timedelta(seconds=delay)
        if await outbox.schedule_retry(claim, error=decision.error, next_attempt_at=due):
            RETRIED.labels(topic=claim.topic).inc()
            logger.warning(
                "outbox: message %d failed (attempt %d), retry in %.2fs: %s",
                claim.id,
                claim.attempts,
                delay,
                decision.error,
                extra={**_fields(claim, "outbox_retry"), "retry_in_s": round(delay, 3)},
            )
        else:
            self._lost_lease(claim, "retry")

    async def _give_up(self, claim: Claim, error: str, reason: str) -> None:
        if await outbox.mark_dead(claim, error=error):
            DEAD.labels(topic=claim.topic).inc()
            logger.error(
                "outbox: message %d is dead: %s",
                claim.id,
                error,
                extra={**_fields(claim, "outbox_dead"), "reason": reason},
            )
        else:
            self._lost_lease(claim, "dead")

    def _lost_lease(self, claim: Claim, outcome: str) -> None:
        logger.warning(
            "outbox: lease on message %d was lost before recording %s; another worker owns it",
            claim.id,
            outcome,
            extra=_fields(claim, "outbox_lease_lost"),
        )

    def _observe(self, claim: Claim, outcome: str, started: float) -> None:
        DELIVERY_SECONDS.labels(topic=claim.topic, outcome=outcome).observe(time.perf_counter() - started)

    async def _update_pending_gauge(self) -> None:
        try:
            counts = await outbox.pending_counts()
        except Exception:
            logger.warning("outbox: could not count pending messages", exc_info=True)
            return
        for topic in self._known_topics - counts.keys():
            PENDING.labels(topic=topic).set(0)
        for topic, count in counts.items():
            PENDING.labels(topic=topic).set(count)
        self._known_topics |= counts.keys()


def _fields(claim: Claim, event: str) -> dict[str, Any]:
    """Log fields; never the payload, which may carry personal data."""
    return {
        "event": event,
        "outbox_id": claim.id,
        "topic": claim.topic,
        "attempt": claim.attempts,
        "idempotency_key": claim.idempotency_key,
    }
