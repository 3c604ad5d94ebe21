"""Runs the outbox worker, in the API process (a listener task) or as its own process
(`python -m api worker`), and the civil registry's guardianship feed poller (a listener task).

A worker process normally delivers with the application's own handler table, built by the
composition root (`start_services`). `--handlers module:function` replaces it with another table
and opens only the database: the function takes the settings and returns a `HandlerTable`, or an
async context manager yielding one (to open and close HTTP sessions). The crash test uses it to
run workers whose handlers pause after the external effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from api.container import Services
from config.settings import Settings
from services.clock import Clock, SystemClock
from services.guardianship import links as guardianship
from services.guardianship.feed import poll_guardianship_feed
from services.outbox import HandlerTable, register_handlers
from services.outbox.worker import OutboxWorker


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    """Overrides of the settings' outbox values for one worker process (None: the setting)."""

    worker_id: str | None = None
    lease_s: float | None = None
    poll_interval_s: float | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None

    def overrides(self) -> dict[str, Any]:
        return {
            name: value for name, value in vars(self).items() if name != "worker_id" and value is not None
        }


def make_worker(
    settings: Settings, handlers: HandlerTable, *, clock: Clock, options: WorkerOptions | None = None
) -> OutboxWorker:
    options = options or WorkerOptions()
    return OutboxWorker.from_settings(
        settings,
        handlers=handlers,
        worker_id=options.worker_id or default_worker_id(),
        clock=clock,
        **options.overrides(),
    )


async def run_outbox_worker(services: Services, *, once: bool = False) -> None:
    worker = make_worker(services.settings, services.outbox_handlers, clock=services.clock)
    if once:
        await worker.run_once()
        return
    await worker.run_forever(services.stop_event)


async def deliver_until_stopped(worker: OutboxWorker, stop: asyncio.Event, *, once: bool) -> int:
    """Run `worker` until `stop` is set, or with `once` until nothing is due; messages claimed."""
    if not once:
        await worker.run_forever(stop)
        return 0
    processed = 0
    while not stop.is_set() and (claimed := await worker.run_once()):
        processed += claimed
    return processed


# --- another handler table (--handlers module:function) --------------------------------------------


def load_handler_factory(spec: str) -> Any:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"--handlers must look like module:function, not {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


@contextlib.asynccontextmanager
async def handlers_from(spec: str, settings: Settings) -> AsyncIterator[HandlerTable]:
    """The table `spec` builds, registered in this process like the application's own."""
    built = load_handler_factory(spec)(settings)
    if hasattr(built, "__aenter__"):
        async with built as table:
            register_handlers(_checked(table, spec))
            yield table
        return
    if inspect.isawaitable(built):
        built = await built
    register_handlers(_checked(built, spec))
    yield built


def _checked(table: Any, spec: str) -> HandlerTable:
    if not isinstance(table, HandlerTable) or not len(table):
        raise SystemExit(f"{spec} built no handlers (expected a non-empty HandlerTable)")
    return table


async def run_custom_worker(
    settings: Settings, spec: str, stop: asyncio.Event, *, once: bool, options: WorkerOptions
) -> int:
    """A worker with the table `spec` builds, on the settings' database only."""
    from services.db import close_database, open_database

    ctx = await open_database(settings.tortoise_config())
    try:
        async with handlers_from(spec, settings) as handlers:
            worker = make_worker(settings, handlers, clock=SystemClock(), options=options)
            return await deliver_until_stopped(worker, stop, once=once)
    finally:
        await close_database(ctx)


# --- the civil registry's guardianship feed ---------------------------------------------------------


async def run_guardianship_feed_poller(
    services: Services, *, interval_s: float | None = None, stop: asyncio.Event | None = None
) -> None:
    """Flag links the registry's feed names and verify them again, even when nobody reads."""

    async def reverify() -> int:
        return await guardianship.reverify_flagged(
            vault=services.vault, civil_registry=services.integrations.civil_registry, clock=services.clock
        )

    await poll_guardianship_feed(
        services.guardianship_feed,
        interval_s=interval_s
        if interval_s is not None
        else services.settings.guardianship_feed_poll_interval_s,
        stop=stop if stop is not None else services.stop_event,
        after_sync=reverify,
    )
