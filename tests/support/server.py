"""Run the real app on a real port inside the test event loop."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sanic import Sanic

from api.app import create_app
from config.settings import Settings
from services.clock import Clock

_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningApp:
    app: Sanic
    base_url: str

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app.ctx.services


@asynccontextmanager
async def running_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[RunningApp]:
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings, clock=clock, name=f"estate_test_{next(_names)}")
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    await server.start_serving()
    try:
        yield RunningApp(app, f"http://127.0.0.1:{port}")
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
