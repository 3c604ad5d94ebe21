"""The per-process admission of bookings to one slot (services/appointments/admission.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.appointments.admission import SlotAdmission
from services.errors import SlotFull


async def _hold(admission: SlotAdmission, slot: int, inside: list[int], release: asyncio.Event) -> str:
    try:
        async with admission.admitted(slot):
            inside.append(1)
            await release.wait()
            inside.pop()
            return "booked"
    except SlotFull:
        return "full"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_per_slot_run_and_a_release_lets_the_next_in() -> None:
    admission = SlotAdmission(per_slot=3)
    inside: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(admission, 7, inside, release)) for _ in range(10)]
    await _settle()
    assert len(inside) == 3 and admission.waiting(7) == 7
    other = asyncio.create_task(_hold(admission, 8, [], asyncio.Event()))  # another slot: its own gate
    await _settle()
    assert not other.done() and admission.waiting(8) == 0
    other.cancel()
    release.set()
    assert await asyncio.gather(*tasks) == ["booked"] * 10
    assert admission._gates == {}  # nothing kept once idle


async def test_found_full_turns_every_waiter_and_newcomer_away_at_once() -> None:
    admission = SlotAdmission(per_slot=2)
    inside: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_hold(admission, 7, inside, release)) for _ in range(50)]
    await _settle()
    assert admission.waiting(7) == 48
    admission.found_full(7)
    await _settle()
    done = [t for t in tasks if t.done()]
    assert len(done) == 48 and {t.result() for t in done} == {"full"}
    with pytest.raises(SlotFull):
        async with admission.admitted(7):
            pass
    release.set()
    assert sorted(await asyncio.gather(*tasks)) == ["booked"] * 2 + ["full"] * 48
    admission.freed(7)  # a seat given back in this process: it may be tried again
    async with admission.admitted(7):
        pass


async def test_a_cancelled_waiter_leaves_no_trace_and_a_woken_one_passes_its_turn_on() -> None:
    admission = SlotAdmission(per_slot=1)
    third_in = asyncio.Event()

    async def third_booking() -> None:
        async with admission.admitted(7):
            third_in.set()
            await asyncio.Event().wait()

    async with admission.admitted(7):
        gone = asyncio.create_task(_hold(admission, 7, [], asyncio.Event()))
        await _settle()
        gone.cancel()  # cancelled while it waits: no trace left
        await _settle()
        assert gone.cancelled() and admission.waiting(7) == 0
        second = asyncio.create_task(_hold(admission, 7, [], asyncio.Event()))
        third = asyncio.create_task(third_booking())
        await _settle()
        assert admission.waiting(7) == 2
    # Leaving woke `second` (its turn is set) but it has not run: cancelled now, before it runs,
    # it must hand the turn to `third` rather than lose it.
    second.cancel()
    await asyncio.wait_for(third_in.wait(), 1)
    assert second.cancelled() and admission._gates[7].running == 1
    third.cancel()
    await _settle()
    assert admission._gates == {}
