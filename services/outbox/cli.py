"""Run outbox workers and operations as their own process (to be folded into `python -m api`).

    python -m services.outbox.cli worker --database-url URL --handlers module:function
        [--worker-id ID] [--lease-s S] [--poll-s S] [--batch-size N] [--concurrency N] [--once]
    python -m services.outbox.cli redrive --database-url URL (--id N [--id N ...] | --topic T | --all)
    python -m services.outbox.cli stats --database-url URL

`--handlers module:function` names a function taking the settings and returning the handler map
`{topic: handler}`, or an async context manager that yields it (to open and close HTTP sessions).
The worker stops gracefully on SIGTERM or SIGINT: deliveries in flight finish, then it exits 0.
`--once` delivers what is due now and exits. Migrations are not applied here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

from config.settings import Settings, load_settings, tortoise_config
from services.clock import SystemClock
from services.db import close_database, open_database
from services.outbox import store as outbox
from services.outbox.store import Handler
from services.outbox.worker import OutboxWorker


def _arguments(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.outbox.cli", description="Outbox workers and operations."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_)
        sub.add_argument("--database-url", default=settings.database_url)
        return sub

    worker = command("worker", "deliver outbox messages until stopped")
    worker.add_argument("--handlers", required=True, help="module:function building {topic: handler}")
    worker.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}"[:64])
    worker.add_argument("--lease-s", type=float, default=settings.outbox_lease_s)
    worker.add_argument("--poll-s", type=float, default=settings.outbox_poll_interval_s)
    worker.add_argument("--batch-size", type=int, default=settings.outbox_batch_size)
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--max-attempts", type=int, default=settings.outbox_max_attempts)
    worker.add_argument("--backoff-base-s", type=float)
    worker.add_argument("--backoff-cap-s", type=float)
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")

    redrive = command("redrive", "send dead messages again")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", type=int, action="append", help="a dead message id (repeatable)")
    which.add_argument("--topic")
    which.add_argument("--all", action="store_true", help="every dead message")

    command("stats", "counts by status and topic, oldest pending age")
    return parser.parse_args(argv)


def load_handler_factory(spec: str) -> Any:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"--handlers must look like module:function, not {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


@contextlib.asynccontextmanager
async def _handlers(spec: str, settings: Settings) -> Any:
    built = load_handler_factory(spec)(settings)
    if hasattr(built, "__aenter__"):
        async with built as handlers:
            yield _checked(handlers, spec)
        return
    if inspect.isawaitable(built):
        built = await built
    yield _checked(built, spec)


def _checked(handlers: Any, spec: str) -> Mapping[str, Handler]:
    if not isinstance(handlers, Mapping) or not handlers:
        raise SystemExit(f"{spec} built no handlers (expected a non-empty {{topic: handler}} mapping)")
    return handlers


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    async with _handlers(args.handlers, settings) as handlers:
        overrides = {
            name: value
            for name, value in {
                "lease_s": args.lease_s,
                "poll_interval_s": args.poll_s,
                "batch_size": args.batch_size,
                "max_attempts": args.max_attempts,
                "concurrency": args.concurrency,
                "backoff_base_s": args.backoff_base_s,
                "backoff_cap_s": args.backoff_cap_s,
            }.items()
            if value is not None
        }
        worker = OutboxWorker.from_settings(
            settings, handlers=handlers, worker_id=args.worker_id, clock=SystemClock(), **overrides
        )
        if args.once:
            processed = 0
            while claimed := await worker.run_once():
                processed += claimed
            print(json.dumps({"worker_id": args.worker_id, "processed": processed}), flush=True)
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await worker.run_forever(stop)
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = await open_database(tortoise_config(args.database_url))
    try:
        if args.command == "worker":
            return await _worker(args, settings)
        if args.command == "redrive":
            count = await outbox.redrive(ids=args.ids, topic=args.topic)
            print(json.dumps({"redriven": count}), flush=True)
            return 0
        print(json.dumps(await outbox.outbox_stats(), ensure_ascii=False, indent=2), flush=True)
        return 0
    finally:
        await close_database(ctx)


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    args = _arguments(argv, settings)
    settings = settings.model_copy(update={"database_url": args.database_url})
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return asyncio.run(_run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
