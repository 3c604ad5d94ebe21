"""Runs the outbox worker, in the API process (a listener task) or as its own process, and the
civil registry's guardianship feed poller (a listener task)."""

from __future__ import annotations

import asyncio
import os
import socket

from api.container import Services
from api.outbox_handlers import Handler, build_handlers, require_handlers
from services.guardianship import links as guardianship
from services.guardianship.feed import poll_guardianship_feed
from services.outbox.worker import OutboxWorker


def outbox_handlers(services: Services) -> dict[str, Handler]:
    """Every declared topic's handler; refuses to start if one is missing."""
    handlers = build_handlers(services.integrations, vault=services.vault, auth=services.auth)
    require_handlers(handlers)
    return handlers


def make_worker(services: Services) -> OutboxWorker:
    return OutboxWorker.from_settings(
        services.settings,
        handlers=outbox_handlers(services),
        worker_id=f"{socket.gethostname()[:40]}-{os.getpid()}",
        clock=services.clock,
    )


async def run_outbox_worker(services: Services, *, once: bool = False) -> None:
    worker = make_worker(services)
    if once:
        await worker.run_once()
        return
    await worker.run_forever(services.stop_event)


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
