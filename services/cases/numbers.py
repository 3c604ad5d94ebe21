"""The number allocator: case numbers (`2026310115` + 7 digits, the form the register already
uses) and certificate numbers (`沪(2026)浦东新区不动产权第0012345号`, `...不动产证明第...号`).

Invariant: see services/cases/models.py. A number is taken in the caller's transaction: if that
transaction rolls back, the number is not used and goes back with it (no gaps, no duplicates). A
series is seeded on first use from the highest number of its form already in the register, so
numbers written by the demo loader or migrated from an earlier system are never handed out again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from services.cases.models import NumberSeries
from services.identifiers import format_certificate_number
from services.registry.models import Mortgage, RegistrationCase, Right
from standards.gb2260 import SHANGHAI_DISTRICTS

_SEQUENCE_DIGITS = 7
_TRAILING_DIGITS = re.compile(r"(\d+)\D*$")


async def allocate(conn: BaseDBAsyncClient, series: str, seed: Callable[[], Awaitable[int]]) -> int:
    """The next number of `series`, taken in `conn`'s transaction."""
    bump = NumberSeries.filter(name=series).using_db(conn)
    if await bump.update(last_value=F("last_value") + 1) == 0:
        start = await seed()
        # Two first users race here: the loser's insert is ignored (PostgreSQL waits for the
        # winner's commit) and its update then sees the winner's row.
        await NumberSeries.bulk_create(
            [NumberSeries(name=series, last_value=start)], ignore_conflicts=True, using_db=conn
        )
        if await bump.update(last_value=F("last_value") + 1) == 0:  # pragma: no cover - the row exists
            raise RuntimeError(f"number series {series} vanished")
    row = await NumberSeries.get(name=series, using_db=conn)
    return int(row.last_value)


def _highest(values: list[str]) -> int:
    highest = 0
    for value in values:
        match = _TRAILING_DIGITS.search(value)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest


async def case_number(conn: BaseDBAsyncClient, *, year: int, district_code: str) -> str:
    prefix = f"{year}{district_code}"

    async def seed() -> int:
        # The range lets the unique index on case_number serve the look-up: a LIKE 'prefix%'
        # cannot use it under a non-C collation, and read the whole table. The prefix is digits,
        # whose order is the same in every collation.
        lowest, highest = prefix + "0" * _SEQUENCE_DIGITS, prefix + "9" * _SEQUENCE_DIGITS
        rows = (
            await RegistrationCase.filter(case_number__gte=lowest, case_number__lte=highest)
            .filter(case_number__startswith=prefix)
            .using_db(conn)
            .order_by("-case_number")
            .limit(1)
            .values_list("case_number", flat=True)
        )
        # The sequence is the digits after the prefix (the whole number is digits too).
        return _highest([str(r)[len(prefix) :] for r in rows])

    n = await allocate(conn, f"case:{year}:{district_code}", seed)
    return f"{prefix}{n:0{_SEQUENCE_DIGITS}d}"


async def certificate_number(conn: BaseDBAsyncClient, *, year: int, district_code: str, kind: str) -> str:
    """`kind` "right" (不动产权证书, a right's certificate) or "registration" (不动产登记证明, e.g. a
    mortgage's)."""
    place = SHANGHAI_DISTRICTS.get(district_code, district_code)
    prefix = format_certificate_number(year=year, place=place, kind=kind, sequence=0).split("第")[0] + "第"
    model: type[Right] | type[Mortgage] = Right if kind == "right" else Mortgage

    async def seed() -> int:
        rows = (
            await model.filter(certificate_number__startswith=prefix)
            .using_db(conn)
            .order_by("-certificate_number")
            .limit(1)
            .values_list("certificate_number", flat=True)
        )
        return _highest([str(r) for r in rows])

    n = await allocate(conn, f"certificate-{kind}:{year}:{district_code}", seed)
    return format_certificate_number(year=year, place=place, kind=kind, sequence=n)
