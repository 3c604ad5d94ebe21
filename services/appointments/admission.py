"""Who may try for a seat now, per process: a cheap "full" and a bound on bookings in flight.

Nothing here guarantees capacity: that is the conditional update of a stripe (seats.py). This
keeps a release-time rush cheap. `RecentlyFull` answers the attempts for a slot that filled a
moment ago without a database round trip. `SlotAdmission` lets at most `per_slot` bookings of
one slot run their transaction at once in this process; the others wait here, holding no pooled
connection, so one slot's rush cannot take every connection from the rest of the service. When
a booking finds the slot full, every waiter is told at once and answers `SLOT_FULL`, instead of
each queueing for a connection only to read a full slot (bench/rush.py: the early losers of a
burst waited 1.5 s in the pool's queue, after the last winner had committed).

Single-threaded asyncio: the counters and the waiters' futures need no lock. A waiter that is
woken and cancelled before it runs hands its turn to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from services.errors import SlotFull


class RecentlyFull:
    """Slots this process found full in the last `ttl_s` seconds. It can only say "full" for up to
    `ttl_s` after a seat was freed (the freed seat goes to the waitlist first anyway); it never
    lets a booking through."""

    def __init__(self, ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._until: dict[int, float] = {}

    def recently(self, slot_id: int) -> bool:
        until = self._until.get(slot_id)
        if until is None:
            return False
        if until < time.monotonic():
            self._until.pop(slot_id, None)
            return False
        return True

    def forget(self, slot_id: int) -> None:
        self._until.pop(slot_id, None)

    def saw(self, slot_id: int) -> None:
        if len(self._until) >= self.max_entries:
            self._until.clear()
        self._until[slot_id] = time.monotonic() + self.ttl_s


@dataclass
class _Gate:
    users: int = 0  # bookings between entering `admitted` and leaving it, waiting or running
    running: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class SlotAdmission:
    def __init__(self, *, per_slot: int = 8, full_ttl_s: float = 2.0) -> None:
        if per_slot < 1:
            raise ValueError("per_slot must be at least 1")
        self.per_slot = per_slot
        self.full = RecentlyFull(full_ttl_s)
        self._gates: dict[int, _Gate] = {}

    @contextlib.asynccontextmanager
    async def admitted(self, slot_id: int) -> AsyncIterator[None]:
        """Wait for a turn to book `slot_id`; SlotFull if it is (or, while waiting, is found) full."""
        gate = self._gates.setdefault(slot_id, _Gate())
        gate.users += 1
        try:
            while True:
                if self.full.recently(slot_id):
                    raise SlotFull(slot_id=slot_id)
                if gate.running < self.per_slot:
                    break
                await self._wait(gate)
            gate.running += 1
            try:
                yield
            finally:
                gate.running -= 1
                self._wake(gate, 1)
        finally:
            gate.users -= 1
            if gate.users == 0 and self._gates.get(slot_id) is gate:
                del self._gates[slot_id]

    def found_full(self, slot_id: int) -> None:
        """A booking read the slot full in the database: remember it and tell every waiter."""
        self.full.saw(slot_id)
        gate = self._gates.get(slot_id)
        if gate is not None:
            self._wake(gate, len(gate.waiters))

    def freed(self, slot_id: int) -> None:
        """A seat of `slot_id` was given back in this process: it is not full any more here."""
        self.full.forget(slot_id)

    def waiting(self, slot_id: int) -> int:
        gate = self._gates.get(slot_id)
        return len(gate.waiters) if gate is not None else 0

    async def _wait(self, gate: _Gate) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gate.waiters.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._wake(gate, 1)  # woken, then cancelled before it ran: the next one's turn
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    gate.waiters.remove(turn)
            raise

    @staticmethod
    def _wake(gate: _Gate, count: int) -> None:
        while count > 0 and gate.waiters:
            turn = gate.waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                count -= 1
