"""The appointment rush: N distinct citizens try to book one slot of S seats in one burst.

    python -m bench.rush --database-url postgres://postgres@127.0.0.1:5432/estate_rush \\
        [--base-url http://127.0.0.1:8000] [--citizens 5000] [--seats 200] [--connections 500]

Against a server that is already running on the same database and keys (docs/appointments.md:
PostgreSQL + Redis, 2 workers). The bench, in this process and with the server's settings:
seeds the bench citizens (encrypted and blind-indexed like every person row; reused on the next
run), mints their access tokens with the server's signing key (no SMS), opens a fresh slot of
`--seats` seats released now, then fires one booking per citizen, all at once. It reports the
attempts per second, latency percentiles, every answer by status and problem code, and counts
the confirmed bookings in the database (must equal the seats exactly: never more, never fewer
while demand exceeds them). Then the same burst (client, tokens, body, connections) goes to
bench/ceiling_app.py with as many workers (`--workers`, 2): the framework, the client and one
SELECT on this machine, the ceiling the booking is measured against in the same run
(`--no-ceiling` skips it). Results go to bench/results/appointments-rush-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import require_loopback
from bench.scenarios import ceiling_app

ROOT = Path(__file__).resolve().parents[1]
BENCH_DISTRICT = "310151"  # 崇明区: bench persons get sequence numbers the demo never makes
SERVICE = "transfer"
BENCH_NAME = "压测"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rush", description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--citizens", type=int, default=5000)
    parser.add_argument("--seats", type=int, default=200)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--service", default=SERVICE)
    parser.add_argument("--workers", type=int, default=2, help="the server's; the ceiling app gets as many")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the burst against the ceiling app")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def _id_numbers(count: int, *, skip: int = 0) -> list[str]:
    """`count` valid ID numbers of the bench district, after the first `skip` (earlier runs')."""
    from services.identifiers import id_check_char

    numbers: list[str] = []
    day = dt.date(1960, 1, 1) + dt.timedelta(days=skip // 100 + 1)
    while len(numbers) < count:
        for sequence in range(800, 900):
            first17 = f"{BENCH_DISTRICT}{day:%Y%m%d}{sequence:03d}"
            numbers.append(first17 + id_check_char(first17))
        day += dt.timedelta(days=1)
    return numbers[:count]


async def _prepare(args: argparse.Namespace) -> tuple[list[str], int, dict[str, Any]]:
    """Seed the citizens, mint their tokens, open the slot: (tokens, slot id, setup facts)."""
    from tortoise.transactions import in_transaction

    from config.settings import load_settings
    from services.appointments.models import Slot
    from services.appointments.seats import add_stripes
    from services.clock import SystemClock
    from services.db import close_database, open_database
    from services.identity.install_keys import with_install_secrets
    from services.identity.tokens import TokenSigner
    from services.pii import PiiVault
    from services.registry.models import Office, Person

    overrides = {"database_url": args.database_url} if args.database_url else {}
    settings = with_install_secrets(load_settings(**overrides))
    vault, clock = PiiVault.from_settings(settings), SystemClock()
    signer = TokenSigner.from_settings(settings, clock)
    ctx = await open_database(settings.tortoise_config())
    started = time.perf_counter()
    try:
        # New citizens each run: one who booked in an earlier run has an active appointment for
        # the service and would be refused as APPOINTMENT_EXISTS, which is not what is measured.
        earlier = await Person.filter(name__startswith=BENCH_NAME).count()
        numbers = _id_numbers(args.citizens, skip=earlier)
        indexes = [vault.blind_index(n) for n in numbers]
        await Person.bulk_create(
            [
                Person(name=f"{BENCH_NAME}{i:05d}", id_number_enc=vault.encrypt(n), id_number_index=x)
                for i, (n, x) in enumerate(zip(numbers, indexes, strict=True))
            ],
            batch_size=1000,
            ignore_conflicts=True,
        )
        ids = await Person.filter(id_number_index__in=indexes).values_list("id", flat=True)
        office = await Office.all().order_by("code").first()
        if office is None:
            raise SystemExit("no office in the database: start the server with --demo data once")
        now = clock.now()
        # A fresh slot each run, off the demo's :00/:30 grid so it collides with none of them.
        fresh = int(time.time() * 1e6) % 1_000_000
        start = (now + dt.timedelta(days=3)).replace(second=17, microsecond=fresh)
        async with in_transaction() as conn:  # a slot and its seat stripes, as a release makes them
            slot = await Slot.create(
                office_id=office.code,
                service=args.service,
                starts_at=start,
                ends_at=start + dt.timedelta(minutes=30),
                capacity=args.seats,
                released_at=now,
                using_db=conn,
            )
            await add_stripes(conn, [(slot.id, slot.capacity)])
        tokens = [
            signer.issue(subject=f"person:{pid}", role="citizen", claims={"pid": pid})[0] for pid in ids
        ]
    finally:
        await close_database(ctx)
    setup = {
        "citizens": len(tokens),
        "seats": args.seats,
        "office": office.code,
        "slot_id": slot.id,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return tokens, slot.id, setup


async def _count(args: argparse.Namespace, slot_id: int) -> dict[str, int]:
    from config.settings import load_settings
    from services.appointments.models import Appointment, Slot, SlotStripe
    from services.db import close_database, open_database

    overrides = {"database_url": args.database_url} if args.database_url else {}
    ctx = await open_database(load_settings(**overrides).tortoise_config())
    try:
        confirmed = await Appointment.filter(slot_id=slot_id, status="booked").count()
        slot = await Slot.get(id=slot_id)
        stripes = await SlotStripe.filter(slot_id=slot_id).values_list("capacity", "booked")
        return {
            "confirmed_rows": confirmed,
            "slot_booked": sum(b for _, b in stripes),  # the seats taken, summed over the stripes
            "capacity": slot.capacity,
            "stripes": len(stripes),
            "stripes_over_capacity": sum(1 for c, b in stripes if b > c),
        }
    finally:
        await close_database(ctx)


async def _burst(
    url: str, body: dict[str, Any], tokens: list[str], connections: int
) -> dict[str, Any]:
    """One POST of `body` per token to `url`, all released at once, at most `connections` open."""
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    by_answer: dict[str, list[float]] = {}
    timeline: list[tuple[float, float, str]] = []  # (sent, after the release; latency; answer)
    gate = asyncio.Event()
    limit = asyncio.Semaphore(connections)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def attempt(session: aiohttp.ClientSession, token: str) -> None:
        await gate.wait()
        async with limit:
            began = time.perf_counter()
            try:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.post(url, json=body, headers=headers) as response:
                    raw = await response.read()
                    code = ""
                    if response.status >= 400:
                        try:
                            code = json.loads(raw).get("code", "")
                        except ValueError:
                            code = "not-json"
                    answer = f"{response.status} {code}".strip()
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer = f"transport {type(exc).__name__}"
            answers[answer] += 1
            latencies.append(time.perf_counter() - began)
            by_answer.setdefault(answer, []).append(latencies[-1])
            timeline.append((began - started, latencies[-1], answer))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(attempt(session, t)) for t in tokens]
        await asyncio.sleep(0.5)  # every request is waiting at the gate
        started = time.perf_counter()  # attempt() reads it once the gate opens
        gate.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float, values: list[float] = latencies) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)

    per_answer = {
        answer: {"p50": pct(0.5, sorted(v)), "p99": pct(0.99, sorted(v)), "max": pct(1.0, sorted(v))}
        for answer, v in by_answer.items()
    }

    slowest = sorted(timeline, key=lambda t: -t[1])[:10]
    return {
        "attempts": len(tokens),
        "seconds": round(elapsed, 3),
        "attempts_per_s": round(len(tokens) / elapsed, 1),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "answers": dict(answers.most_common()),
        "latency_ms_by_answer": per_answer,
        "slowest": [
            {"sent_ms": round(sent * 1000), "latency_ms": round(took * 1000), "answer": answer}
            for sent, took, answer in slowest
        ],
    }


async def _ceiling(args: argparse.Namespace, tokens: list[str]) -> dict[str, Any]:
    """The same burst (same client, tokens, body and connections) against bench/ceiling_app.py
    with as many workers as the server: framework, client and one SELECT, no booking."""
    from config.settings import load_settings

    database_url = args.database_url or load_settings().database_url
    async with ceiling_app(database_url, workers=args.workers) as app:
        body = {"slot_id": 1, "service": args.service}
        burst = await _burst(f"{app.base_url}/ceiling/db", body, tokens, args.connections)
        return {"command": " ".join(app.command[1:]), "route": "POST /ceiling/db", "burst": burst}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    require_loopback(args.base_url)
    tokens, slot_id, setup = await _prepare(args)
    print(f"[rush] {setup['citizens']} citizens, slot {slot_id} with {args.seats} seats", flush=True)
    url = f"{args.base_url.rstrip('/')}/api/v1/me/appointments"
    burst = await _burst(url, {"slot_id": slot_id, "service": args.service}, tokens, args.connections)
    counted = await _count(args, slot_id)
    ceiling = None if args.no_ceiling else await _ceiling(args, tokens)
    only_full = set(burst["answers"]) <= {"201", "409 SLOT_FULL"}
    return {
        "scenario": "appointments-rush",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg": os.getloadavg()},
        "setup": setup,
        "burst": burst,
        "database": counted,
        "ceiling": ceiling,
        "share_of_ceiling": (
            {
                "attempts_per_s": round(burst["attempts_per_s"] / ceiling["burst"]["attempts_per_s"], 3),
                "p99_x": round(burst["latency_ms"]["p99"] / ceiling["burst"]["latency_ms"]["p99"], 2),
            }
            if ceiling
            else None
        ),
        "targets": {
            "exactly_the_seats_confirmed": counted["confirmed_rows"] == counted["slot_booked"] == args.seats
            and counted["stripes_over_capacity"] == 0,
            "only_clean_full_refusals": only_full,
            "attempts_per_s_at_least_1000": burst["attempts_per_s"] >= 1000,
            "p99_under_1s": burst["latency_ms"]["p99"] < 1000,
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    report = asyncio.run(_main(args))
    out = args.out or ROOT / "bench" / "results" / f"appointments-rush-{dt.date.today():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    shown = ("burst", "database", "share_of_ceiling", "targets")
    print(json.dumps({k: report[k] for k in shown}, ensure_ascii=False, indent=2))
    print(f"[rush] written to {out}")


if __name__ == "__main__":
    main()
