"""The access log at city scale: how long `audit verify` takes, in full and from a checkpoint.

    python -m bench.audit --entries 10000000 --admin-url postgres://postgres@127.0.0.1:5432

Creates a scratch database `audit_bench_<random>` on that server, applies the real migrations
(so the log is partitioned by month), and writes N chained entries spread evenly over the last
`--months` months with COPY through asyncpg. The hashes are computed with the log's own
`canonical`/`entry_hash` (services/audit/log.py) in a child process that streams CSV to the COPY,
so hashing and PostgreSQL's ingest run on two cores. A checkpoint is then signed over the entry
that leaves the last `--after-checkpoint` (1%) after it, with a key made for the run, and the head
row set as appends would have left it. Then it measures `verify_log` in full (every entry from the
genesis) and from that checkpoint: seconds, entries/s and this process's peak RSS during each
(VmHWM, reset before each run). Writes bench/results/audit-verify-<date>.json and drops the
database (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import multiprocessing
import os
import platform
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [
    "id",
    "seq",
    "occurred_at",
    "reader_subject",
    "reader_role",
    "reader_display",
    "person_id",
    "person_index",
    "action",
    "object_type",
    "object_id",
    "purpose",
    "request_id",
    "prev_hash",
    "hash",
]
_CHUNK_ROWS = 20_000
_READERS = [  # (subject, role, display, action, object_type, purpose), roughly as the API writes them
    ("person:{p}", "citizen", "本人", "property.list", "property_list", "self_query"),
    ("person:{p}", "citizen", "本人", "property.detail", "right", "self_query"),
    (
        "staff:{s}",
        "clerk",
        "登记工作人员 赵*（OFF-310115-01）",
        "property.list",
        "property_list",
        "registration_review",
    ),
    (
        "client:icbc-sh-app",
        "bank",
        "中国工商银行上海市分行",
        "property.list",
        "property_list",
        "mortgage_due_diligence",
    ),
    ("person:{g}", "guardian", "王*", "property.list", "property_list", "guardian_query"),
]


def _generate(entries: int, start_us: int, span_us: int, checkpoint_seq: int, queue: Any, seed: int) -> None:
    """Child process: the chain as CSV chunks on `queue`, then ("done", facts)."""
    from services.audit.log import GENESIS_HASH, entry_hash

    rng = random.Random(seed)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    prev, checkpoint_hash = GENESIS_HASH, ""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    started = time.process_time()
    for seq in range(1, entries + 1):
        subject, role, display, action, object_type, purpose = _READERS[rng.randrange(len(_READERS))]
        person = rng.randrange(1, 2_000_000)
        fields = {
            "seq": seq,
            "occurred_at": epoch + dt.timedelta(microseconds=start_us + span_us * (seq - 1) // entries),
            "reader_subject": subject.format(
                p=person, s=rng.randrange(1, 400), g=rng.randrange(1, 2_000_000)
            ),
            "reader_role": role,
            "reader_display": display,
            "person_id": person,
            "person_index": None,
            "action": action,
            "object_type": object_type,
            "object_id": str(rng.randrange(1, 5_000_000)) if object_type == "right" else None,
            "purpose": purpose,
            "request_id": f"{rng.getrandbits(128):032x}",
            "prev_hash": prev,
        }
        prev = entry_hash(fields)
        if seq == checkpoint_seq:
            checkpoint_hash = prev
        out.writerow(
            [
                seq,
                seq,
                fields["occurred_at"].isoformat(),
                fields["reader_subject"],
                role,
                display,
                person,
                None,
                action,
                object_type,
                fields["object_id"],
                purpose,
                fields["request_id"],
                fields["prev_hash"],
                prev,
            ]
        )
        if seq % _CHUNK_ROWS == 0 or seq == entries:
            queue.put(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    queue.put(
        (
            "done",
            {"head_hash": prev, "checkpoint_hash": checkpoint_hash, "cpu_s": time.process_time() - started},
        )
    )


async def _chunks(queue: Any, facts: dict[str, Any]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    while True:
        item = await loop.run_in_executor(None, queue.get)
        if isinstance(item, tuple):
            facts.update(item[1])
            return
        yield item


def _peak_rss_reset() -> bool:
    """Reset this process's VmHWM (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def _measure(name: str, entries_expected: int, run: Any) -> dict[str, Any]:
    reset = _peak_rss_reset()
    started = time.perf_counter()
    cpu = time.process_time()
    report = await run()
    seconds = time.perf_counter() - started
    result = {
        "ok": report.ok,
        "problem": report.problem,
        "entries_checked": report.entries_checked,
        "seconds": round(seconds, 2),
        "entries_per_s": round(report.entries_checked / seconds) if seconds else None,
        "process_cpu_s": round(time.process_time() - cpu, 2),
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_is_since": "this measurement" if reset else "process start",
    }
    if report.entries_checked != entries_expected or not report.ok:
        raise SystemExit(f"{name}: {result} (expected {entries_expected} entries)")
    print(f"{name}: {result}", file=sys.stderr, flush=True)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    from config.settings import tortoise_config
    from services.audit.checkpoints import CheckpointKeys, verify_log
    from services.audit.models import AccessLogCheckpoint
    from services.audit.partitions import add_months, ensure_partitions, month_start, partition_spans
    from services.db import apply_migrations, close_database, open_database
    from standards.crypto_profile import EDDSA, generate_signing_key

    name = f"audit_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url_for(args.admin_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url_for(args.admin_url, name)
    phases: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        await apply_migrations(tortoise_config(url))
        phases["migrate_s"] = round(time.perf_counter() - started, 2)
        ctx = await open_database(tortoise_config(url))
        now = dt.datetime.now(dt.UTC)
        first_month = add_months(month_start(now), -(args.months - 1))
        await ensure_partitions(now=now, months_ahead=1, since=first_month)
        n = args.entries
        checkpoint_seq = n - max(1, int(n * args.after_checkpoint))
        start_us = int((first_month - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() * 1e6)
        span_us = int((now - first_month).total_seconds() * 1e6)

        queue = multiprocessing.get_context("spawn").Queue(maxsize=8)
        child = multiprocessing.get_context("spawn").Process(
            target=_generate, args=(n, start_us, span_us, checkpoint_seq, queue, 20261204)
        )
        started = time.perf_counter()
        child.start()
        facts: dict[str, Any] = {}
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = off")
            await conn.copy_to_table(
                "access_log", source=_chunks(queue, facts), columns=COLUMNS, format="csv"
            )
            child.join()
            generate_s = time.perf_counter() - started
            await conn.execute("SELECT setval('access_log_id_seq', $1)", n)
            await conn.execute(
                "INSERT INTO access_log_head (id, last_seq, last_hash, updated_at, hash_algorithm) "
                "VALUES (1, $1, $2, $3, 'sha256')",
                n,
                facts["head_hash"],
                now,
            )
            started = time.perf_counter()
            await conn.execute("VACUUM ANALYZE access_log")
            phases["vacuum_analyze_s"] = round(time.perf_counter() - started, 2)
            size = await conn.fetchval(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'access_log'::regclass"
            )
        finally:
            await conn.close()
        phases["generate_and_copy_s"] = round(generate_s, 2)
        phases["generate_child_cpu_s"] = round(facts["cpu_s"], 2)
        phases["entries_per_s"] = round(n / generate_s)

        keys = CheckpointKeys(generate_signing_key(EDDSA))
        checkpoint = keys.sign(
            seq=checkpoint_seq, hash_=facts["checkpoint_hash"], algorithm="sha256", created_at=now
        )
        await AccessLogCheckpoint.create(**checkpoint.__dict__)
        partitions = [p for p in await partition_spans() if p.min_seq is not None]

        full = await _measure("verify --full", n, lambda: verify_log(keys=keys, full=True))
        from_checkpoint = await _measure(
            "verify (from checkpoint)", n - checkpoint_seq, lambda: verify_log(keys=keys)
        )
        await close_database(ctx)
        return {
            "scenario": "audit-verify",
            "kind": "database",
            "started_at": now.isoformat(timespec="seconds"),
            "commit": _commit(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "postgres": await admin.fetchval("SHOW server_version"),
                "loadavg_at_end": list(os.getloadavg()),
                "note": "PostgreSQL on the same machine; other load shows in loadavg",
            },
            "parameters": {
                "entries": n,
                "months": args.months,
                "partitions_with_entries": len(partitions),
                "checkpoint_seq": checkpoint_seq,
                "entries_after_checkpoint": n - checkpoint_seq,
                "batch_size": 5000,
            },
            "setup": {**phases, "table_size_gib": round(int(size or 0) / 2**30, 2)},
            "verify_full": full,
            "verify_from_checkpoint": from_checkpoint,
        }
    finally:
        if args.keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def database_url_for(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--admin-url", required=True, help="a PostgreSQL server: postgres://user@host:port")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--after-checkpoint", type=float, default=0.01, help="share of entries after it")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the database (for a look with psql)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    out = args.out or ROOT / "bench" / "results" / f"audit-verify-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
