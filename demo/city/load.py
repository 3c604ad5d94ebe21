"""`seed_city`: a city-sized register in PostgreSQL, bulk-loaded (docs/scale.md).

Invariants:
- All or nothing: the city rows, the dropped and remade indexes and constraints are one
  transaction on one connection; a failed load leaves the database as it was.
- Once only: the city rows are there when the first generated person of the seed is (found by
  blind index, whatever the sizes were), and a second call only counts. A register that holds
  other generated rows is refused rather than mixed with the city's (their keys and numbers were
  not chosen to stay apart).
- The demo's fixed identities, offices, banks and accounts are seeded first by the demo's own
  seeder, so the documented sign-ins work on the city register as on the small one.

Rows are made in this process by default, a block of households at a time, each block COPYed
before the next is made. `worker_process=True` makes them in a spawned process instead (one
process and one random stream: the register is one sequence of draws, which a pool of independent
tasks would change) and sends the blocks through a bounded queue, so generating overlaps COPY.
Measured on the two shared cores of docs/scale.md it is slower: once the indexes are dropped,
COPY is a small part of the load, less than pickling every row costs the worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from tortoise import connections
from tortoise.context import TortoiseContext
from tortoise.models import Model

from config.settings import Settings
from demo.city.bulk import copy_chunk, secondary_definitions, table_columns
from demo.city.progress import PhaseProgress
from demo.city.rows import BULK_MODELS, BULK_TABLES, Chunk, CityPlan, CityRegister, check_sizes
from demo.identities import FIXED_PERSONS
from demo.people import generated_households
from demo.seeder import seed_demo_data
from demo.writer import RegisterWriter, advance_sequences
from integrations.banks.config import load_banks
from services.clock import SystemClock
from services.db import apply_migrations
from services.filings import seed_banks
from services.guardianship.models import GuardianshipLink
from services.pii import PiiVault
from services.registry.models import Person

BLOCK_PERSONS = 20_000
_QUEUE_BLOCKS = 3  # blocks made ahead of COPY at most (each some 20 MB pickled)


class CityLoadRefused(RuntimeError):
    """The database cannot take the city register (not PostgreSQL, or other generated rows)."""


@dataclass(frozen=True)
class CityLoadReport:
    loaded: bool  # False: the city rows were there already and nothing was written
    seed: int
    persons: int
    units: int
    rights: int
    rows_loaded: Mapping[str, int]  # by this call, per table
    rows_in_tables: Mapping[str, int]  # afterwards, per table (the demo's fixed rows included)
    seconds: Mapping[str, float]  # per phase, in order
    total_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def seed_city(
    settings: Settings,
    *,
    persons: int,
    units: int,
    rights: int,
    seed: int = 1,
    progress: bool = True,
    worker_process: bool = False,
) -> CityLoadReport:
    """Migrate, seed the demo's fixed base, then bulk-load the city register (once).
    `worker_process=True` makes the rows in another process (see the module docstring)."""
    check_sizes(persons, units, rights)
    scheme = urlsplit(settings.database_url).scheme
    if scheme not in ("postgres", "postgresql", "asyncpg"):
        raise CityLoadRefused(
            "the city register is bulk-loaded with PostgreSQL's COPY: DATABASE_URL must be a "
            f"postgres:// URL, not {scheme}://"
        )
    load = _CityLoad(settings, persons, units, rights, seed, worker_process)
    with PhaseProgress(enabled=progress) as load.bar:
        return await load.run()


@dataclass
class _CityLoad:
    settings: Settings
    persons: int
    units: int
    rights: int
    seed: int
    worker_process: bool
    bar: PhaseProgress = field(init=False)
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.vault = PiiVault.from_settings(self.settings)

    def report(self, loaded: dict[str, int], counts: dict[str, int]) -> CityLoadReport:
        return CityLoadReport(
            loaded=any(loaded.values()),
            seed=self.seed,
            persons=self.persons,
            units=self.units,
            rights=self.rights,
            rows_loaded=loaded,
            rows_in_tables=counts,
            seconds=self.seconds,
            total_seconds=round(time.perf_counter() - self.started, 3),
        )

    @contextmanager
    def phase(self, name: str, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        start = time.perf_counter()
        try:
            with self.bar.phase(description, total) as step:
                yield step
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)

    async def run(self) -> CityLoadReport:
        with self.phase("migrate", "migrate"):
            await apply_migrations(self.settings.tortoise_config(), vault=self.vault)
        # A context of its own, not the process-wide fallback: a process that serves (or a test
        # session's app) may hold that one, and only one can exist.
        ctx = TortoiseContext()
        with ctx:
            await ctx.init(config=self.settings.tortoise_config())
            try:
                return await self.load_once()
            finally:
                await ctx.close_connections()

    async def load_once(self) -> CityLoadReport:
        with self.phase("demo_base", "demo base (fixed identities, accounts)"):
            banks = load_banks(self.settings.banks_file)
            clock = SystemClock()
            await seed_demo_data(
                vault=self.vault, seed=self.seed, persons=0, units=0, banks=banks, clock=clock
            )
            await seed_banks(banks, vault=self.vault, clock=clock)
        first = next(generated_households(self.seed, 1))[0].id_number
        if await Person.exists(id_number_index=self.vault.blind_index(first)):
            return self.report(dict.fromkeys(BULK_TABLES, 0), await _table_counts())
        if await Person.all().count() > len(FIXED_PERSONS):
            raise CityLoadRefused(
                "the register holds generated persons already (the small demo's?): "
                "load the city register into a database of its own"
            )
        with self.phase("prepare", "find free keys"):
            writer = RegisterWriter(
                conn=connections.get("default"), vault=self.vault, seed=self.seed, batch_size=1
            )
            await writer.prepare(banks)  # the banks' and companies' keys; nothing is written
            first_pk = {m._meta.db_table: writer.next_pk[m] for m in writer.next_pk}
            last_link = await GuardianshipLink.all().order_by("-id").first()
            first_pk[GuardianshipLink._meta.db_table] = (last_link.id if last_link else 0) + 1
        plan = CityPlan(
            settings=self.settings,
            seed=self.seed,
            persons=self.persons,
            units=self.units,
            rights=self.rights,
            block_persons=BLOCK_PERSONS,
            first_pk=first_pk,
            bank_pks=tuple(writer.bank_pks),
            company_pks=tuple(writer.company_pks),
            columns={},  # from the catalog, in bulk_load
        )
        loaded = await self.bulk_load(plan)
        with self.phase("sequences", "move sequences past the keys"):
            await advance_sequences(connections.get("default"), BULK_MODELS)
        with self.phase("count", "count rows"):
            counts = await _table_counts()
        return self.report(loaded, counts)

    async def bulk_load(self, plan: CityPlan) -> dict[str, int]:
        loaded = dict.fromkeys(BULK_TABLES, 0)
        conn = await asyncpg.connect(_asyncpg_dsn(self.settings.database_url))
        try:
            columns = await table_columns(conn, BULK_TABLES)
            now = datetime.now(UTC)
            plan = replace(
                plan,
                columns={
                    t: _column_defaults(m, columns[t], now) for m in BULK_MODELS if (t := m._meta.db_table)
                },
            )
            async with conn.transaction():
                # Index builds sort in memory and may use parallel workers; the commit need not
                # wait for the WAL flush (a crash before it loses the load, as a rollback would).
                await conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                await conn.execute("SET LOCAL max_parallel_maintenance_workers = 2")
                await conn.execute("SET LOCAL synchronous_commit = off")
                with self.phase("drop_indexes", "drop indexes and constraints"):
                    definitions = await secondary_definitions(conn, BULK_TABLES)
                    for d in definitions:
                        await conn.execute(d.drop)
                total = plan.persons + plan.units + plan.rights
                with self.phase("load", "generate and COPY persons, units, rights", total) as step:

                    async def copy(chunk: Chunk) -> None:
                        await copy_chunk(conn, chunk, columns)
                        for table, rows in chunk.items():
                            loaded[table] += len(rows)
                        step(sum(len(chunk[t]) for t in ("person", "real_estate_unit", "right")))

                    if self.worker_process:
                        await _generate_elsewhere(plan, copy)
                    else:
                        await CityRegister(plan, copy).write_all()
                with self.phase(
                    "rebuild_indexes", "rebuild indexes and constraints", len(definitions)
                ) as step:
                    for d in reversed(definitions):
                        await conn.execute(d.sql)
                        step(1)
            with self.phase("analyze", "ANALYZE", len(BULK_TABLES)) as step:
                for table in BULK_TABLES:
                    await conn.execute(f'ANALYZE "{table}"')
                    step(1)
        finally:
            await conn.close()
        return loaded


async def _generate_elsewhere(plan: CityPlan, copy: Callable[[Chunk], Any]) -> None:
    """Rows made by a spawned process, COPYed here as they come."""
    mp = multiprocessing.get_context("spawn")
    blocks: Any = mp.Queue(maxsize=_QUEUE_BLOCKS)
    process = mp.Process(target=_produce, args=(plan, blocks), name="city-register-rows", daemon=True)
    process.start()
    try:
        while (item := await asyncio.to_thread(_next_block, blocks, process)) is not None:
            await copy(item)
    finally:
        if process.is_alive():
            process.kill()
        process.join()


def _produce(plan: CityPlan, blocks: Any) -> None:
    """The worker process: every block into the queue, then None (or the error's traceback)."""

    async def put(chunk: Chunk) -> None:
        blocks.put(chunk)

    try:
        asyncio.run(CityRegister(plan, put).write_all())
    except BaseException:
        blocks.put(traceback.format_exc())
        raise
    blocks.put(None)


def _next_block(blocks: Any, process: Any) -> Chunk | None:
    while True:
        try:
            item = blocks.get(timeout=1.0)
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"the row generator stopped (exit code {process.exitcode})") from None
            continue
        if isinstance(item, str):
            raise RuntimeError(f"the row generator failed:\n{item}")
        return cast(Chunk, item)


def _column_defaults(model: type[Model], columns: list[str], now: datetime) -> tuple[tuple[str, Any], ...]:
    """Each column with the value a row gets when the generator gives none, as the model's
    field says (auto_now: the load's time; JSON defaults as JSON text)."""
    by_column: dict[str, Any] = {}
    for name, model_field in model._meta.fields_map.items():
        if name in model._meta.fetch_fields:
            continue  # the relation; its `<name>_id` column is a field of its own
        if getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            value: Any = now
        elif callable(model_field.default):
            value = orjson.dumps(model_field.default()).decode()
        else:
            value = model_field.default
        by_column[model_field.source_field or name] = value
    return tuple((c, by_column.get(c)) for c in columns)


def _asyncpg_dsn(database_url: str) -> str:
    """Tortoise's URL without Tortoise's query options (pool sizes ...), which asyncpg rejects."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))


async def _table_counts() -> dict[str, int]:
    conn = connections.get("default")
    out = {}
    for table in BULK_TABLES:
        rows = await conn.execute_query_dict(f'SELECT COUNT(*) AS n FROM "{table}"')  # noqa: S608 - our tables
        out[table] = int(rows[0]["n"])
    return out
