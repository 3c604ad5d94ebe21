"""Runs the outbox worker, in the API process (a listener task) or as its own process."""

from __future__ import annotations

import os
import socket

from api.container import Services
from services.outbox_handlers import build_handlers
from services.outbox_worker import OutboxWorker


def make_worker(services: Services) -> OutboxWorker:
    return OutboxWorker.from_settings(
        services.settings,
        handlers=build_handlers(services.integrations),
        worker_id=f"{socket.gethostname()[:40]}-{os.getpid()}",
        clock=services.clock,
    )


async def run_outbox_worker(services: Services, *, once: bool = False) -> None:
    worker = make_worker(services)
    if once:
        await worker.run_once()
        return
    await worker.run_forever(services.stop_event)
