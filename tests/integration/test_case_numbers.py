"""The number allocator under concurrency (services/cases/numbers.py): numbers taken in concurrent
transactions never collide and leave no gaps, a series starts above what the register holds, and
concurrent openings of transfers on one right make one case. Run on SQLite and on PostgreSQL
(TEST_DATABASE_URL), where the row lock of the series is what keeps the numbers apart."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from tortoise.transactions import in_transaction

from services.cases.numbers import case_number
from tests.factories import create_case
from tests.integration.citizen_support import citizen_headers
from tests.integration.test_transfers import TRANSFERS, a_sale, application

# Each test its own year, so the series never meet across tests or reruns on one database.
_years = itertools.count(2300)


async def _allocate(year: int, district: str) -> str:
    async with in_transaction() as conn:
        return await case_number(conn, year=year, district_code=district)


async def test_concurrent_allocations_are_distinct_and_consecutive(app):
    year = next(_years)
    numbers = await asyncio.gather(*(_allocate(year, "310115") for _ in range(100)))
    assert len(set(numbers)) == 100
    prefix = f"{year}310115"
    assert all(n.startswith(prefix) and len(n) == 17 for n in numbers)
    assert sorted(int(n[len(prefix) :]) for n in numbers) == list(range(1, 101))


async def test_a_rolled_back_allocation_hands_its_number_out_again(app):
    year = next(_years)
    first = await _allocate(year, "310104")
    try:
        async with in_transaction() as conn:
            lost = await case_number(conn, year=year, district_code="310104")
            raise RuntimeError("the case step failed")
    except RuntimeError:
        pass
    again = await _allocate(year, "310104")
    assert int(again[-7:]) == int(first[-7:]) + 1 and again == lost


async def test_a_series_starts_above_the_highest_number_in_the_register(app):
    year = next(_years)
    await create_case(case_number=f"{year}310101{41:07d}")
    await create_case(case_number=f"{year}310101{7:07d}")
    numbers = await asyncio.gather(*(_allocate(year, "310101") for _ in range(10)))
    # Whole numbers compared: the sequence is the digits after year and district, not the number.
    assert sorted(numbers) == [f"{year}310101{n:07d}" for n in range(42, 52)]


OPENERS = 120  # a limit that holds one request at a time is not a limit


async def test_concurrent_openings_on_one_right_make_one_case(client, app, vault):
    sale = await a_sale(app, vault)
    headers = citizen_headers(app, sale["seller"])
    body = application(sale, vault)

    async def open_one() -> Any:
        return await client.post(TRANSFERS, json=body, headers=headers)

    responses = await asyncio.gather(*(open_one() for _ in range(OPENERS)))
    statuses = sorted(r.status_code for r in responses)
    unexpected = [r.text for r in responses if r.status_code not in (201, 409)]
    assert statuses == [201] + [409] * (OPENERS - 1), unexpected
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"TRANSFER_IN_PROGRESS"}
