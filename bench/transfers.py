"""The utility-transfer drain: registered transfer cases whose utility messages two workers drain.

    python -m bench.transfers [--admin-url postgres://postgres@127.0.0.1:5432] \\
        [--redis-url redis://127.0.0.1:6379/14] [--cases 1000] [--workers 2] [--latency-ms 50] \\
        [--error-rate 0.10] [--drop-rate 0.02] [--out FILE]

Uses PostgreSQL and Redis on 127.0.0.1. The bench creates a fresh database on the server of
`--admin-url` (`estate_bench_transfers_<random>`, dropped at the end unless `--keep-database`),
migrates it with `python -m api migrate`, and starts the simulators in their own process
(`python -m integrations.simulators --port-base 0`). In this process it writes `--cases`
registered transfer cases in one transaction: for each, a unit, a seller and a buyer (ID numbers
encrypted and blind-indexed like every person row), the case and its parties, and the rows
`services/cases/transfers.register` writes, one `utility_transfer` row and one
`utilities.transfer_account` outbox message per utility (the provider chosen by the real
`UtilityRouter` from config/providers.toml; a third of the cases are in 310112/310116, whose water
company files tasks in a staff portal that does not deduplicate). Then it sets the utilities
simulator's faults (latency on every request, `error` 503 and `drop` after applying with the
given probabilities), starts `--workers` `python -m api worker` processes with the production
outbox settings (batch, concurrency, lease, backoff; override with the flags) and times from
their start until every utility row is `confirmed`.

It reports the drain time, messages/s, the outbox's claims and retries and the handler's
attempts, the requests and faults the simulator saw, and, from the simulator's own records, that
every transfer was applied exactly once (keys applied == cases x 4, none twice). Results go to
bench/results/transfers-drain-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
# 310112 and 310116: water through a non-deduplicating staff portal; the others deduplicate.
DISTRICTS = ("310112", "310115", "310116", "310101", "310104", "310113")
KINDS = ("water", "electricity", "gas", "cable_tv")
TRANSFER_OPERATIONS = ("transfer_account", "portal_file_task")
BENCH_NAME = "压测"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.transfers", description=__doc__)
    parser.add_argument("--admin-url", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=50, help="on every utilities request")
    parser.add_argument("--error-rate", type=float, default=0.10, help="503, nothing applied")
    parser.add_argument("--drop-rate", type=float, default=0.02, help="applied, then no answer")
    parser.add_argument("--batch-size", type=int, help="default: the settings' outbox_batch_size")
    parser.add_argument("--concurrency", type=int, help="default: the settings' outbox_concurrency")
    parser.add_argument("--backoff-base-s", type=float, help="default: the settings' (production)")
    parser.add_argument("--backoff-cap-s", type=float, help="default: the settings' (production)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up waiting after this")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


# --- processes ---------------------------------------------------------------------------------


class Child:
    def __init__(self, process: asyncio.subprocess.Process, log: Path, handle: TextIO) -> None:
        self.process, self.log, self._handle = process, log, handle

    @classmethod
    async def start(cls, log: Path, *args: str, env: dict[str, str], stdout: Any = None) -> Child:
        handle = log.open("w")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=stdout, stderr=handle
        )
        return cls(process, log, handle)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    async def stop(self, within_s: float = 15) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within_s)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()
        finally:
            self._handle.close()


def _database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def _admin(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_database_url(admin_url, "postgres"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def _fresh_database(admin_url: str, keep: bool) -> Any:
    name = f"estate_bench_transfers_{uuid.uuid4().hex[:10]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield _database_url(admin_url, name)
    finally:
        if not keep:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(database_url: str, redis_url: str, key_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTATE_")}
    env.update({f"ESTATE_{name.upper()}": url for name, url in overrides.items()})
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ESTATE_KEY_DIR=str(key_dir),
        ESTATE_SIMULATORS_IN_PROCESS="false",
        ESTATE_OUTBOX_IN_PROCESS="false",
        ESTATE_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- the cases -----------------------------------------------------------------------------------


def _id_numbers(count: int) -> list[str]:
    from services.identifiers import id_check_char

    numbers: list[str] = []
    day = dt.date(1960, 1, 1)
    while len(numbers) < count:
        for sequence in range(800, 1000):
            first17 = f"310151{day:%Y%m%d}{sequence:03d}"
            numbers.append(first17 + id_check_char(first17))
        day += dt.timedelta(days=1)
    return numbers[:count]


async def _prepare(cases: int, overrides: dict[str, str], key_dir: Path) -> dict[str, Any]:
    """Write the registered cases and the utility rows and messages `register` writes, in one
    transaction. Returns setup facts (providers used, seconds taken)."""
    import aiohttp
    from tortoise.transactions import in_transaction

    import api.outbox_handlers  # noqa: F401  (declares every topic)
    from config.settings import load_settings
    from integrations.factory import build_integrations
    from services.cases.models import PENDING, UtilityTransferRecord
    from services.cases.topics import UTILITY_TRANSFER, UtilityAccountTransfer
    from services.cases.transfers import BUYER, SELLER, TRANSFER, holder_ref
    from services.clock import SystemClock
    from services.identity.install_keys import with_install_secrets
    from services.outbox import HandlerTable, enqueue, route
    from services.outbox.handlers import handlers_registered
    from services.outbox.topics import declared_topics
    from services.pii import PiiVault
    from services.registry.models import CaseParty, Person, RealEstateUnit, RegistrationCase

    started = time.perf_counter()
    settings = with_install_secrets(load_settings(key_dir=key_dir, **overrides))
    vault, clock = PiiVault.from_settings(settings), SystemClock()
    now = clock.now()
    effective = now.astimezone(dt.timezone(dt.timedelta(hours=8))).date()

    async def not_here(payload: Any, key: str) -> dict[str, Any]:
        raise AssertionError("the worker processes deliver")

    table = HandlerTable(*(route(topic, not_here) for topic in declared_topics().values()))
    ids = _id_numbers(2 * cases)
    providers: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
        router = build_integrations(settings, session=session, http_client=client).utilities
        with handlers_registered(table):
            async with in_transaction() as conn:
                await Person.bulk_create(
                    [
                        Person(
                            name=f"{BENCH_NAME}{n}",
                            id_number_enc=vault.encrypt(number),
                            id_number_index=vault.blind_index(number),
                        )
                        for n, number in enumerate(ids)
                    ],
                    batch_size=500,
                    using_db=conn,
                )
                person_ids = dict(
                    await Person.filter(id_number_index__in=[vault.blind_index(n) for n in ids])
                    .using_db(conn)
                    .values_list("id_number_index", "id")
                )
                people = [int(person_ids[vault.blind_index(n)]) for n in ids]
                districts = [DISTRICTS[n % len(DISTRICTS)] for n in range(cases)]
                unit_numbers = [
                    f"{d}900{1 + n // 9999:03d}GB{1 + n % 9999:05d}F0001{1 + n % 9999:04d}"
                    for n, d in enumerate(districts)
                ]
                await RealEstateUnit.bulk_create(
                    [
                        RealEstateUnit(
                            unit_number=number,
                            district_code=d,
                            address=f"上海市压测路{n}号",
                            use="residential",
                            area_m2="88.50",
                        )
                        for n, (number, d) in enumerate(zip(unit_numbers, districts, strict=True))
                    ],
                    batch_size=500,
                    using_db=conn,
                )
                units = {
                    str(u.unit_number): u
                    for u in await RealEstateUnit.filter(unit_number__in=unit_numbers).using_db(conn)
                }
                year = now.astimezone(dt.timezone(dt.timedelta(hours=8))).year
                case_numbers = [f"{year}{d}{9_000_000 + n:07d}" for n, d in enumerate(districts)]
                await RegistrationCase.bulk_create(
                    [
                        RegistrationCase(
                            case_number=number,
                            unit_id=units[unit].id,
                            kind=TRANSFER,
                            state="registered",
                            applied_at=now,
                            details={"price_fen": 350_000_000, "contract_number": f"BENCH-{n}"},
                            tax_status="assessed",
                        )
                        for n, (number, unit) in enumerate(zip(case_numbers, unit_numbers, strict=True))
                    ],
                    batch_size=500,
                    using_db=conn,
                )
                case_ids = dict(
                    await RegistrationCase.filter(case_number__in=case_numbers)
                    .using_db(conn)
                    .values_list("case_number", "id")
                )
                await CaseParty.bulk_create(
                    [
                        CaseParty(
                            case_id=case_ids[number],
                            role=role,
                            person_id=people[2 * n + i],
                            share=1 if role == BUYER else None,
                            confirmed_at=now,
                        )
                        for n, number in enumerate(case_numbers)
                        for i, role in enumerate((SELLER, BUYER))
                    ],
                    batch_size=1000,
                    using_db=conn,
                )
                records = []
                for n, number in enumerate(case_numbers):
                    unit = units[unit_numbers[n]]
                    for kind in KINDS:
                        provider = router.provider_for(kind, districts[n])
                        providers[provider.name] += 1
                        key = f"utility:{number}:{kind}"
                        records.append(
                            UtilityTransferRecord(
                                case_id=case_ids[number],
                                kind=kind,
                                provider=provider.name,
                                account_no="",
                                state=PENDING,
                                idempotency_key=key,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                        await enqueue(
                            topic=UTILITY_TRANSFER,
                            payload=UtilityAccountTransfer(
                                provider=provider.name,
                                account_no="",
                                from_holder_ref=holder_ref(people[2 * n]),
                                to_holder_ref=holder_ref(people[2 * n + 1]),
                                unit_number=str(unit.unit_number),
                                address=str(unit.address),
                                effective_date=effective,
                            ),
                            idempotency_key=key,
                            connection=conn,
                            clock=clock,
                        )
                await UtilityTransferRecord.bulk_create(records, batch_size=1000, using_db=conn)
    return {
        "cases": cases,
        "utility_transfers": cases * len(KINDS),
        "districts": list(DISTRICTS),
        "providers": dict(sorted(providers.items())),
        "prepare_s": round(time.perf_counter() - started, 2),
    }


# --- measuring -------------------------------------------------------------------------------------


async def _row_states() -> dict[str, int]:
    from tortoise.functions import Count

    from services.cases.models import UtilityTransferRecord

    rows = await UtilityTransferRecord.all().group_by("state").annotate(n=Count("id")).values("state", "n")
    return {str(r["state"]): int(r["n"]) for r in rows}


async def _outbox_figures() -> dict[str, Any]:
    from tortoise.functions import Count, Sum

    from services.cases.models import UtilityTransferRecord
    from services.outbox.models import OutboxMessage

    by_topic = (
        await OutboxMessage.all()
        .group_by("topic", "status")
        .annotate(n=Count("id"), claims=Sum("attempts"))
        .values("topic", "status", "n", "claims")
    )
    handler = await UtilityTransferRecord.all().annotate(attempts=Sum("attempts")).first().values("attempts")
    per_row = Counter(await UtilityTransferRecord.all().values_list("attempts", flat=True))
    return {
        "messages": [
            {"topic": r["topic"], "status": r["status"], "count": r["n"], "claims": int(r["claims"] or 0)}
            for r in by_topic
        ],
        "handler_attempts": int(handler["attempts"] or 0) if handler else 0,
        "rows_by_attempts": {str(k): v for k, v in sorted(per_row.items())},
    }


def _exactly_once(state: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    applied = {
        key: r["applied"]
        for key, r in state["idempotency"].items()
        if r["operation"] in TRANSFER_OPERATIONS and r["applied"]
    }
    return {
        "keys_applied": len(applied),
        "keys_applied_twice_or_more": sum(1 for v in applied.values() if v > 1),
        "applications": sum(state["applied"].get(op, 0) for op in TRANSFER_OPERATIONS),
        "our_keys_missing": len(keys - set(applied)),
        "foreign_keys": len(set(applied) - keys),
        "replays": sum(r["replays"] for r in state["idempotency"].values()),
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from config.settings import load_settings, tortoise_config
    from services.cases.models import UtilityTransferRecord
    from services.db import close_database, open_database

    defaults = load_settings()
    worker_options = {
        "batch_size": args.batch_size or defaults.outbox_batch_size,
        "concurrency": args.concurrency or defaults.outbox_concurrency,
        "lease_s": defaults.outbox_lease_s,
        "poll_s": defaults.outbox_poll_interval_s,
        "backoff_base_s": args.backoff_base_s or defaults.outbox_backoff_base_s,
        "backoff_cap_s": args.backoff_cap_s or defaults.outbox_backoff_cap_s,
        "max_attempts": defaults.outbox_max_attempts,
        "external_timeout_s": defaults.external_timeout_s,
    }
    async with AsyncExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-transfers-")))
        url = await stack.enter_async_context(_fresh_database(args.admin_url, args.keep_database))
        base_env = _env(url, args.redis_url, work / "keys", {})
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", "migrate", cwd=ROOT, env=base_env
        )
        if await migrate.wait() != 0:
            raise SystemExit("python -m api migrate failed")
        sims = await Child.start(
            work / "simulators.log",
            "-m",
            "integrations.simulators",
            "--port-base",
            "0",
            env=base_env,
            stdout=asyncio.subprocess.PIPE,
        )
        stack.push_async_callback(sims.stop)
        assert sims.process.stdout is not None
        line = await asyncio.wait_for(sims.process.stdout.readline(), 30)
        if not line:
            raise SystemExit("the simulators did not start:\n" + sims.tail())
        overrides: dict[str, str] = json.loads(line)
        utilities_url = overrides["utilities_simulator_url"]

        ctx = await open_database(tortoise_config(url))
        stack.push_async_callback(close_database, ctx)
        setup = await _prepare(args.cases, overrides, work / "keys")
        keys = {str(k) for k in await UtilityTransferRecord.all().values_list("idempotency_key", flat=True)}
        print(f"[transfers] {len(keys)} utility transfers written in {setup['prepare_s']} s", flush=True)

        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        faults = [
            {"mode": "latency", "latency_ms": args.latency_ms},
            {"mode": "error", "status": 503, "probability": args.error_rate},
            {"mode": "drop", "probability": args.drop_rate},
        ]
        for fault in faults:
            (await client.post(f"{utilities_url}/_sim/faults", json=fault)).raise_for_status()

        env = _env(url, args.redis_url, work / "keys", overrides)
        flags = [
            "--batch-size", str(worker_options["batch_size"]),
            "--concurrency", str(worker_options["concurrency"]),
            "--backoff-base-s", str(worker_options["backoff_base_s"]),
            "--backoff-cap-s", str(worker_options["backoff_cap_s"]),
        ]  # fmt: skip
        load_before = os.getloadavg()
        started = time.perf_counter()
        workers = [
            await Child.start(
                work / f"worker-{n}.log", "-m", "api", "worker", "--worker-id", f"bench-{n}", *flags, env=env
            )
            for n in range(1, args.workers + 1)
        ]
        for worker in workers:
            stack.push_async_callback(worker.stop)
        load_samples: list[float] = []
        states: dict[str, int] = {}
        while time.perf_counter() - started < args.timeout_s:
            states = await _row_states()
            if states.get("confirmed", 0) + states.get("refused", 0) == len(keys):
                break
            if any(w.process.returncode is not None for w in workers):
                raise SystemExit("a worker died:\n" + "\n".join(w.tail() for w in workers))
            load_samples.append(os.getloadavg()[0])
            await asyncio.sleep(0.2)
        drain_s = time.perf_counter() - started
        load_after = os.getloadavg()
        exits = [await w.stop() for w in workers]

        state = (await client.get(f"{utilities_url}/_sim/state")).json()
        outbox = await _outbox_figures()
        utility_messages = [m for m in outbox["messages"] if m["topic"].startswith("utilities.")]
        claims = sum(m["claims"] for m in utility_messages)
        messages = sum(m["count"] for m in utility_messages)
        once = _exactly_once(state, keys)
        all_confirmed = states.get("confirmed", 0) == len(keys)
        return {
            "scenario": "transfers-drain",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m bench.transfers " + " ".join(sys.argv[1:]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "loadavg_1m_max_during": max(load_samples, default=load_after[0]),
            },
            "setup": {
                **setup,
                "database": "postgresql (fresh, python -m api migrate)",
                "redis": args.redis_url,
                "workers": args.workers,
                "worker_options": worker_options,
                "faults": faults,
            },
            "drain": {
                "seconds": round(drain_s, 2),
                "row_states": states,
                "utility_messages": messages,
                "messages_per_s": round(messages / drain_s, 1),
                "outbox_claims": claims,
                "outbox_retries": claims - messages,
                "handler_attempts": outbox["handler_attempts"],
                "rows_by_handler_attempts": outbox["rows_by_attempts"],
                "outbox_messages": outbox["messages"],
                "worker_exit_codes": exits,
            },
            "simulator": {
                "requests": state["requests"],
                "applied": state["applied"],
                "faulted": state["faulted"],
                "faults_fired": [{"mode": f["mode"], "applied": f["applied"]} for f in state["faults"]],
                "exactly_once": once,
            },
            "targets": {
                "every_row_confirmed": all_confirmed,
                "applied_exactly_once": once["keys_applied"] == len(keys)
                and once["applications"] == len(keys)
                and once["keys_applied_twice_or_more"] == 0
                and once["our_keys_missing"] == 0,
                "drained_within_60s": all_confirmed and drain_s <= 60,
            },
        }
    raise AssertionError("unreachable")  # pragma: no cover


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    report = asyncio.run(_main(args))
    out = args.out or ROOT / "bench" / "results" / f"transfers-drain-{dt.date.today():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("drain", "targets")}, ensure_ascii=False, indent=2))
    print(f"[transfers] written to {out}")


if __name__ == "__main__":
    main()
